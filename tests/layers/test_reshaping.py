"""``Flatten``, ``Reshape``, ``Permute``, ``RepeatVector`` with Keras 3's layers as the oracle."""

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(1)
X3 = RNG.standard_normal((2, 3, 4)).astype("float32")
X4 = RNG.standard_normal((2, 3, 4, 5)).astype("float32")


@pytest.mark.parametrize("data_format", [None, "channels_first"])
@pytest.mark.parametrize("x", [X3, X4, X3[:, 0]])
def test_flatten_matches_keras(keras, x, data_format):
    out = check_against_keras(keras.layers.Flatten(data_format=data_format), rnnkit.Flatten(data_format), x)
    assert out.shape == (2, int(np.prod(x.shape[1:])))


def test_flatten_rank_one_and_shapes():
    r = rnnkit.Flatten()
    assert r(np.arange(3)).shape == (3, 1)
    assert r.compute_output_shape((None, 3, 4)) == (None, 12)
    assert r.compute_output_shape((None, None, 4)) == (None, None)


@pytest.mark.parametrize("target", [(12,), (4, 3), (-1, 2), (2, -1, 3)])
def test_reshape_matches_keras(keras, target):
    out = check_against_keras(keras.layers.Reshape(target), rnnkit.Reshape(target), X3)
    assert out.shape[0] == 2 and np.prod(out.shape) == X3.size
    assert rnnkit.Reshape(target).compute_output_shape((None, 3, 4)) == (None,) + out.shape[1:]


@pytest.mark.parametrize("dims", [(2, 1), (1, 2)])
def test_permute_matches_keras_rank3(keras, dims):
    check_against_keras(keras.layers.Permute(dims), rnnkit.Permute(dims), X3)


def test_permute_rank4_and_shape(keras):
    out = check_against_keras(keras.layers.Permute((3, 1, 2)), rnnkit.Permute((3, 1, 2)), X4)
    assert out.shape == (2, 5, 3, 4)
    assert rnnkit.Permute((3, 1, 2)).compute_output_shape((None, 3, 4, 5)) == (None, 5, 3, 4)


def test_repeat_vector_matches_keras(keras):
    out = check_against_keras(keras.layers.RepeatVector(5), rnnkit.RepeatVector(5), X3[:, 0])
    assert out.shape == (2, 5, 4)
    np.testing.assert_array_equal(out[:, 3], X3[:, 0])
    assert rnnkit.RepeatVector(5).compute_output_shape((None, 4)) == (None, 5, 4)


def test_dtypes_are_kept_and_masks_stop():
    ids = np.arange(12).reshape(2, 6)
    assert rnnkit.Reshape((3, 2))(ids).dtype == torch.int64
    assert rnnkit.Flatten()(torch.ones(2, 3, dtype=torch.float64)).dtype == torch.float64
    for layer in (rnnkit.Flatten(), rnnkit.Reshape((12,)), rnnkit.Permute((2, 1)), rnnkit.RepeatVector(2)):
        assert not layer.supports_masking and layer.compute_mask(X3, torch.ones(2, 3, dtype=torch.bool)) is None
        assert layer.get_weights() == []


def test_sequential_warns_when_the_mask_stops_at_flatten():
    model = rnnkit.Sequential([rnnkit.Masking(), rnnkit.Flatten()])
    with pytest.warns(UserWarning, match="does not support masking"):
        out, mask = model.forward_with_mask(torch.tensor(X3))
    assert mask is None and out.shape == (2, 12)


@pytest.mark.parametrize("make, keras_make", [
    (lambda: rnnkit.Flatten(data_format="channels_first", name="l"), lambda k: k.layers.Flatten("channels_first")),
    (lambda: rnnkit.Reshape((2, -1), name="l"), lambda k: k.layers.Reshape((2, -1))),
    (lambda: rnnkit.Permute((2, 1), name="l"), lambda k: k.layers.Permute((2, 1))),
    (lambda: rnnkit.RepeatVector(3, name="l"), lambda k: k.layers.RepeatVector(3)),
])
def test_configs_round_trip_and_signatures(keras, make, keras_make):
    r, k = make(), keras_make(keras)
    from_keras = assert_config_keys_match_keras(r, k)
    for key in ("data_format", "target_shape", "dims", "n"):
        if key in k.get_config():
            assert r.get_config()[key] == k.get_config()[key] == from_keras.get_config()[key]
    assert_signature_matches_keras(type(r), type(k))


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"rs: cannot reshape inputs of shape \(batch, 3, 4\) .* target_shape \(5,\)"):
        rnnkit.Reshape((5,), name="rs")(X3)
    with pytest.raises(ValueError, match="rs2: cannot reshape .* do not divide"):
        rnnkit.Reshape((5, -1), name="rs2")(X3)
    with pytest.raises(ValueError, match="rs3: target_shape may have one unknown entry"):
        rnnkit.Reshape((-1, -1), name="rs3")
    with pytest.raises(ValueError, match="rs4: target_shape entries must be"):
        rnnkit.Reshape((2, -3), name="rs4")
    with pytest.raises(ValueError, match=r"pm: dims must be a permutation of 1..2"):
        rnnkit.Permute((0, 1), name="pm")
    with pytest.raises(ValueError, match=r"pm2: expected inputs of rank 3 .*got shape \(2, 3, 4, 5\)"):
        rnnkit.Permute((2, 1), name="pm2")(X4)
    with pytest.raises(TypeError, match="rv: n must be an int"):
        rnnkit.RepeatVector(2.0, name="rv")
    with pytest.raises(ValueError, match="rv2: n must be a positive integer"):
        rnnkit.RepeatVector(0, name="rv2")
    with pytest.raises(ValueError, match=r"rv3: expected inputs of rank 2 \(batch, features\)"):
        rnnkit.RepeatVector(2, name="rv3")(X3)
    with pytest.raises(ValueError, match="fl: data_format must be"):
        rnnkit.Flatten("nchw", name="fl")
    with pytest.raises(TypeError, match="fl2: cannot build from an input of type str"):
        rnnkit.Flatten(name="fl2")("text")
    built = rnnkit.Flatten(name="fl3")
    built(X3)
    with pytest.raises(TypeError, match="fl3: inputs must be a tensor or numpy array, got str"):
        built("text")


def test_gradients_flow_through_views():
    x = torch.tensor(X3, requires_grad=True)
    y = rnnkit.RepeatVector(2)(rnnkit.Flatten()(rnnkit.Permute((2, 1))(x)))
    (y * torch.arange(12.0)).sum().backward()
    expected = (2 * torch.arange(12.0)).reshape(4, 3).t()  # x[b, t, f] lands at f * 3 + t, repeated twice
    np.testing.assert_allclose(to_numpy(x.grad[0]), to_numpy(expected))
