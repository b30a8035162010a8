"""``Dropout`` and ``SpatialDropout1D``: Keras 3 for inference and configs, statistics for training."""

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

X = np.random.default_rng(0).standard_normal((4, 50, 40)).astype("float32") + 3.0  # no zeros


@pytest.mark.parametrize("make", [lambda k: k.layers.Dropout(0.5), lambda k: k.layers.Dropout(0.3, (None, 1, 40)),
                                  lambda k: k.layers.SpatialDropout1D(0.4)])
def test_inference_is_the_identity_as_keras(keras, make):
    k = make(keras)
    r = getattr(rnnkit, type(k).__name__).from_config(k.get_config())
    r.eval()
    out = check_against_keras(k, r, X, call_kwargs={"training": False})
    np.testing.assert_array_equal(out, X)
    r.train()
    np.testing.assert_array_equal(to_numpy(r(X, training=False)), X)


@pytest.mark.parametrize("seed", [None, 3])
def test_dropout_training_statistics_and_scaling(seed):
    r = rnnkit.Dropout(0.25, seed=seed)
    assert r.training  # a fresh module is in train mode, as torch.nn.Dropout
    y = to_numpy(r(X))
    kept = y != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(y[kept], X[kept] / 0.75, rtol=1e-6)


def test_noise_shape_shares_the_mask_along_its_unit_axes():
    r = rnnkit.Dropout(0.5, noise_shape=(None, 1, 40), seed=1)
    kept = to_numpy(r(X)) != 0
    assert (kept == kept[:, :1, :]).all() and 0.3 < kept.mean() < 0.7
    assert not (kept == kept[:, :, :1]).all()
    with pytest.raises(ValueError, match="drop: noise_shape .* does not broadcast"):
        rnnkit.Dropout(0.5, noise_shape=(4, 7, 40), name="drop")(X)
    with pytest.raises(ValueError, match="drop2: noise_shape .* must have the input's rank"):
        rnnkit.Dropout(0.5, noise_shape=(4, 40), name="drop2")(X)


def test_spatial_dropout_drops_whole_channels():
    r = rnnkit.SpatialDropout1D(0.5, seed=0)
    y = to_numpy(r(X))
    kept = y != 0
    assert (kept == kept[:, :1, :]).all() and 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], X[kept] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"sd: expected inputs of rank 3 .*got shape \(4, 40\)"):
        rnnkit.SpatialDropout1D(0.5, name="sd")(X[:, 0])


def test_seed_reproduces_masks_and_rate_edges():
    a, b = rnnkit.Dropout(0.5, seed=42), rnnkit.Dropout(0.5, seed=42)
    first = to_numpy(a(X))
    np.testing.assert_array_equal(first, to_numpy(b(X)))
    assert not np.array_equal(first, to_numpy(a(X)))  # the next draw of the stream differs
    torch.manual_seed(0)
    unseeded = to_numpy(rnnkit.Dropout(0.5)(X))
    torch.manual_seed(0)
    np.testing.assert_array_equal(unseeded, to_numpy(rnnkit.Dropout(0.5)(X)))  # torch's global generator
    assert (to_numpy(rnnkit.Dropout(1.0)(X)) == 0).all()
    np.testing.assert_array_equal(to_numpy(rnnkit.Dropout(0.0)(X)), X)


def test_gradient_flows_through_kept_units_only():
    r = rnnkit.Dropout(0.5, seed=5)
    x = torch.tensor(X, requires_grad=True)
    y = r(x)
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), (to_numpy(y) != 0) * 2.0)


def test_mask_passes_through():
    x = torch.tensor(X)
    x._keras_mask = torch.ones(4, 50, dtype=torch.bool)
    for r in (rnnkit.Dropout(0.5), rnnkit.SpatialDropout1D(0.5)):
        assert r.supports_masking and r.compute_mask(x, x._keras_mask) is x._keras_mask
        assert r(x)._keras_mask is x._keras_mask


def test_configs_and_signatures(keras):
    d = rnnkit.Dropout(0.2, noise_shape=(None, 1, 3), seed=7, name="d")
    clone = assert_config_keys_match_keras(d, keras.layers.Dropout(0.2, noise_shape=(None, 1, 3), seed=7))
    assert (clone.rate, clone.noise_shape, clone.seed) == (0.2, (None, 1, 3), 7)
    s = rnnkit.SpatialDropout1D(0.1, seed=2, name="s")
    assert s.get_config() == keras.layers.SpatialDropout1D(0.1, seed=2, name="s").get_config()
    assert_config_keys_match_keras(s, keras.layers.SpatialDropout1D(0.1))
    assert_signature_matches_keras(rnnkit.Dropout, keras.layers.Dropout)
    assert_signature_matches_keras(rnnkit.SpatialDropout1D, keras.layers.SpatialDropout1D)


@pytest.mark.parametrize("kwargs, match", [({"rate": 1.5}, "rate must be a number in"),
                                           ({"rate": "a"}, "rate must be a number in"),
                                           ({"rate": 0.5, "noise_shape": "abc"}, "noise_shape must be a tuple"),
                                           ({"rate": 0.5, "noise_shape": (0, 1)}, "noise_shape entries must be"),
                                           ({"rate": 0.5, "seed": 1.5}, "seed must be an int")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"dd: {match}"):
        rnnkit.Dropout(name="dd", **kwargs)
