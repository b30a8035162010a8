"""``BatchNormalization`` and ``LayerNormalization`` with Keras 3's layers as the oracle."""

import copy

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(3)
X = (RNG.standard_normal((3, 6, 4)) * 2 + 1).astype("float32")


def _keras_bn(keras, **kwargs):
    """A Keras BatchNormalization with non-trivial weights (random gamma, beta and moving statistics)."""
    k = keras.layers.BatchNormalization(**kwargs)
    k.build(X.shape)
    k.set_weights([RNG.uniform(0.5, 1.5, w.shape).astype("float32") for w in k.get_weights()])
    return k


# ------------------------------------------------------- BatchNormalization
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False), (False, False)])
def test_batchnorm_inference_matches_keras(keras, axis, center, scale):
    k = _keras_bn(keras, axis=axis, center=center, scale=scale)
    r = rnnkit.BatchNormalization(axis=axis, center=center, scale=scale).eval()
    check_against_keras(k, r, X, call_kwargs={"training": False})
    assert [w.shape for w in r.get_weights()] == [w.shape for w in k.get_weights()]


@pytest.mark.parametrize("axis", [-1, 1])
def test_batchnorm_training_matches_keras_and_updates_moving_stats(keras, axis):
    k = _keras_bn(keras, axis=axis, momentum=0.9)
    r = rnnkit.BatchNormalization(axis=axis, momentum=0.9)
    check_against_keras(k, r, X, call_kwargs={"training": True}, rtol=1e-4, atol=1e-5)
    # rnnkit started from Keras's weights after its first call; each has made one update since
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_batchnorm_momentum_is_keras_convention():
    r = rnnkit.BatchNormalization(momentum=0.8, moving_mean_initializer="ones")
    x = torch.tensor(X)
    r(x)  # fresh module: train mode
    mean = X.reshape(-1, 4).mean(0)
    var = X.reshape(-1, 4).var(0)  # biased, as Keras
    np.testing.assert_allclose(r.get_weights()[2], 1.0 * 0.8 + mean * 0.2, rtol=1e-5)
    np.testing.assert_allclose(r.get_weights()[3], 1.0 * 0.8 + var * 0.2, rtol=1e-5)
    y = to_numpy(r(x, training=True))
    np.testing.assert_allclose(y.reshape(-1, 4).mean(0), 0, atol=1e-5)


@pytest.mark.parametrize("mask", [MASK_RIGHT_PADDED, MASK_HOLES], ids=["right_padded", "holes"])
def test_batchnorm_masked_training_statistics_as_keras(keras, mask):
    k = _keras_bn(keras, momentum=0.5)
    r = rnnkit.BatchNormalization(momentum=0.5)
    check_against_keras(k, r, X, call_kwargs={"training": True, "mask": mask}, rtol=1e-4, atol=1e-5)
    for a, b in zip(r.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    unmasked = X[mask]  # (n, 4): the statistics ignore masked steps
    fresh = rnnkit.BatchNormalization(momentum=0.0, center=False, scale=False)
    fresh(X, mask=mask)
    np.testing.assert_allclose(fresh.get_weights()[0], unmasked.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh.get_weights()[1], unmasked.var(0), rtol=1e-4, atol=1e-6)


def test_batchnorm_training_follows_module_mode_and_trainable():
    r = rnnkit.BatchNormalization(input_shape=(6, 4))
    before = r.get_weights()
    r.eval()
    y = r(X)
    np.testing.assert_allclose(to_numpy(y), X / np.sqrt(1 + 1e-3), rtol=1e-6)  # moving stats 0 / 1
    assert all(np.array_equal(a, b) for a, b in zip(before, r.get_weights()))
    r(X, training=True)
    assert not np.array_equal(before[2], r.get_weights()[2])
    frozen = rnnkit.BatchNormalization(trainable=False, input_shape=(6, 4))
    frozen.train()
    np.testing.assert_allclose(to_numpy(frozen(X)), X / np.sqrt(1 + 1e-3), rtol=1e-6)  # Keras: inference


def test_batchnorm_weights_are_keras_ordered_and_non_trainable_stats(keras):
    r = rnnkit.BatchNormalization(input_shape=(6, 4))
    k = _keras_bn(keras)
    assert [w.shape for w in r.get_weights()] == [w.shape for w in k.get_weights()] == [(4,)] * 4
    names = [n for n, _ in r.named_parameters()]
    assert names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [p.requires_grad for p in r.parameters()] == [True, True, False, False]
    assert len(r.trainable_weights) == 2 and len(r.non_trainable_weights) == 2
    r(X).sum().backward()
    assert r.gamma.grad is not None and r.beta.grad is not None and r.moving_mean.grad is None


def test_batchnorm_lazy_state_dict_copy_and_mask_passes():
    src = rnnkit.BatchNormalization(axis=1, input_shape=(6, 4))
    src(X)
    lazy = rnnkit.BatchNormalization(axis=1)
    lazy.load_state_dict(src.state_dict())
    src.eval(), lazy.eval()
    torch.testing.assert_close(lazy(X), src(X))
    twin = copy.deepcopy(src)
    torch.testing.assert_close(twin(X), src(X))
    mask = torch.tensor(MASK_HOLES)
    assert src.supports_masking and src.compute_mask(X, mask) is mask


def test_batchnorm_config_signature_and_errors(keras):
    r = rnnkit.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, name="bn")
    clone = assert_config_keys_match_keras(r, keras.layers.BatchNormalization(axis=1, momentum=0.9))
    assert (clone.axis, clone.momentum) == (1, 0.9)
    assert_signature_matches_keras(rnnkit.BatchNormalization, keras.layers.BatchNormalization)
    with pytest.raises(ValueError, match="bn1: batch renormalization"):
        rnnkit.BatchNormalization(renorm=True, name="bn1")
    with pytest.raises(ValueError, match="bn2: synchronized=True"):
        rnnkit.BatchNormalization(synchronized=True, name="bn2")
    built = rnnkit.BatchNormalization(input_shape=(6, 4), name="bn3")
    with pytest.raises(ValueError, match=r"bn3: expected inputs with 4 channels on axis -1 .* got shape \(3, 6, 5\)"):
        built(np.ones((3, 6, 5), "float32"))
    with pytest.raises(ValueError, match=r"bn3: the mask must have the inputs' shape without the last axis"):
        built(X, mask=np.ones((3, 5), bool))


# ------------------------------------------------------- LayerNormalization
@pytest.mark.parametrize("axis", [-1, [1, 2], [-2, -1]])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_layernorm_matches_keras(keras, axis, center, scale):
    k = keras.layers.LayerNormalization(axis=axis, center=center, scale=scale, beta_initializer="random_normal",
                                        gamma_initializer="random_normal")
    r = rnnkit.LayerNormalization(axis=axis, center=center, scale=scale)
    check_against_keras(k, r, X, rtol=1e-5, atol=1e-5)


def test_layernorm_non_trailing_axis_by_hand():
    x4 = RNG.standard_normal((2, 3, 4, 5)).astype("float32")
    r = rnnkit.LayerNormalization(axis=[1, 3], epsilon=1e-5)
    r.build(x4.shape)
    r.set_weights([RNG.standard_normal((3, 5)).astype("float32"), RNG.standard_normal((3, 5)).astype("float32")])
    gamma, beta = r.get_weights()
    mean = x4.mean(axis=(1, 3), keepdims=True)
    var = x4.var(axis=(1, 3), keepdims=True)
    expected = (x4 - mean) / np.sqrt(var + 1e-5) * gamma[:, None, :] + beta[:, None, :]
    np.testing.assert_allclose(to_numpy(r(x4)), expected, rtol=1e-5, atol=1e-5)


def test_layernorm_rms_scaling_as_keras(keras):
    with pytest.warns(UserWarning, match="rms_scaling"):
        k = keras.layers.LayerNormalization(rms_scaling=True, gamma_initializer="random_normal")
    with pytest.warns(UserWarning, match="rms_scaling"):
        r = rnnkit.LayerNormalization(rms_scaling=True)
    with pytest.warns(UserWarning, match="rms_scaling"):  # Keras warns at each call too
        check_against_keras(k, r, X, rtol=1e-5, atol=1e-5)
    assert [n for n, _ in r.named_parameters()] == ["gamma"]


def test_layernorm_is_per_sample_weights_mask_and_gradients():
    r = rnnkit.LayerNormalization()
    y = r(X)
    torch.testing.assert_close(r(X[:1]), y[:1])  # no batch dependence, in train mode too
    assert [n for n, _ in r.named_parameters()] == ["gamma", "beta"]
    mask = torch.tensor(MASK_HOLES)
    assert r.supports_masking and r.compute_mask(X, mask) is mask
    (y * torch.arange(4.0)).sum().backward()
    assert r.gamma.grad.abs().sum() > 0 and r.beta.grad.abs().sum() > 0
    lazy = rnnkit.LayerNormalization()
    lazy.load_state_dict(r.state_dict())
    torch.testing.assert_close(lazy(X), r(X))


def test_layernorm_config_signature_and_errors(keras):
    r = rnnkit.LayerNormalization(axis=[1, 2], epsilon=1e-6, name="ln")
    clone = assert_config_keys_match_keras(r, keras.layers.LayerNormalization(axis=[1, 2]))
    assert clone.axis == [1, 2]
    assert_signature_matches_keras(rnnkit.LayerNormalization, keras.layers.LayerNormalization)
    with pytest.raises(TypeError, match="ln1: axis must be an int or a list of ints"):
        rnnkit.LayerNormalization(axis="last", name="ln1")
    with pytest.raises(ValueError, match="ln2: axis 3 is out of range for inputs of rank 3"):
        rnnkit.LayerNormalization(axis=3, name="ln2")(X)
    built = rnnkit.LayerNormalization(input_shape=(6, 4), name="ln3")
    with pytest.raises(ValueError, match=r"ln3: expected the normalized axes -1 to have sizes \(4,\)"):
        built(np.ones((3, 6, 5), "float32"))
