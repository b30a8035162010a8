"""``Dense`` and ``Activation`` with Keras 3's layers (torch backend) as the oracle."""

import numpy as np
import pytest
import torch
from conftest import MASK_RIGHT_PADDED, to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((3, 6, 4)).astype("float32")


# ------------------------------------------------------------------- Dense
@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4), (2, 3, 2, 4)])
@pytest.mark.parametrize("activation, use_bias", [(None, True), ("tanh", True), ("relu", False), ("softmax", True)])
def test_dense_matches_keras(keras, shape, activation, use_bias):
    x = RNG.standard_normal(shape).astype("float32")
    k = keras.layers.Dense(3, activation=activation, use_bias=use_bias, bias_initializer="random_normal")
    r = rnnkit.Dense(3, activation=activation, use_bias=use_bias)
    out = check_against_keras(k, r, x)
    assert out.shape == shape[:-1] + (3,)
    assert r.compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:-1] + (3,)


def test_dense_weights_order_layout_and_names(keras):
    k = keras.layers.Dense(5)
    k.build((None, 4))
    r = rnnkit.Dense(5, input_shape=(4,))  # built at construction
    assert r.built and [w.shape for w in r.get_weights()] == [(4, 5), (5,)] == [w.shape for w in k.get_weights()]
    assert list(dict(r.named_parameters())) == ["kernel", "bias"]
    r.set_weights(k.get_weights())
    x = RNG.standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(to_numpy(r(x)), x @ k.get_weights()[0] + k.get_weights()[1], rtol=1e-6, atol=1e-6)
    no_bias = rnnkit.Dense(2, use_bias=False, input_dim=4)
    assert [w.shape for w in no_bias.get_weights()] == [(4, 2)]


def test_dense_lazy_state_dict_and_torch_linear_equivalence():
    src = rnnkit.Dense(3, activation="sigmoid", input_shape=(4,))
    lazy = rnnkit.Dense(3, activation="sigmoid")
    lazy.load_state_dict(src.state_dict())
    x = torch.randn(2, 4)
    torch.testing.assert_close(lazy(x), src(x))
    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(src.kernel.t())
        linear.bias.copy_(src.bias)
    torch.testing.assert_close(src(x), torch.sigmoid(linear(x)))


def test_dense_mask_passes_through_and_gradients_flow():
    r = rnnkit.Dense(2)
    assert r.supports_masking
    mask = torch.tensor(MASK_RIGHT_PADDED)
    assert r.compute_mask(torch.tensor(X3), mask) is mask
    x = torch.tensor(X3)
    x._keras_mask = mask
    y = r(x)
    assert y._keras_mask is mask  # the convenience attribute follows, as Keras's eager calls
    y.sum().backward()
    assert r.kernel.grad is not None and r.kernel.grad.abs().sum() > 0 and r.bias.grad.abs().sum() > 0


def test_dense_in_sequential_after_embedding_keeps_the_mask():
    model = rnnkit.Sequential([rnnkit.Embedding(9, 4, mask_zero=True), rnnkit.Dense(3)])
    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    _, mask = model.forward_with_mask(ids)
    np.testing.assert_array_equal(to_numpy(mask), to_numpy(ids) != 0)


def test_dense_regularizers_constraints_trainable_dtype():
    r = rnnkit.Dense(2, kernel_regularizer="l2", bias_regularizer="l1", kernel_constraint="non_neg",
                     activity_regularizer="l2", input_shape=(3,), dtype="float64")
    y = r(np.ones((2, 3)))
    assert y.dtype == torch.float64 and len(r.losses) == 3
    r.apply_constraints()
    assert r.get_weights()[0].min() >= 0
    frozen = rnnkit.Dense(2, trainable=False, input_shape=(3,))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_dense_config_round_trip_and_keras_config(keras):
    r = rnnkit.Dense(4, activation="relu", use_bias=False, kernel_initializer="he_normal", name="d")
    clone = assert_config_keys_match_keras(r, keras.layers.Dense(4, activation="relu", use_bias=False))
    assert clone.units == 4 and not clone.use_bias and clone.activation is rnnkit.activations.relu
    assert r.get_config()["activation"] == "relu" and r.get_config()["kernel_initializer"]["class_name"] == "HeNormal"


def test_dense_signature(keras):
    assert_signature_matches_keras(rnnkit.Dense, keras.layers.Dense)


def test_dense_errors_name_the_layer():
    with pytest.raises(ValueError, match="d1: units must be a positive integer"):
        rnnkit.Dense(0, name="d1")
    with pytest.raises(ValueError, match="d2: lora_rank=4 is not supported"):
        rnnkit.Dense(3, lora_rank=4, name="d2")
    with pytest.raises(TypeError, match="did you mean 'activation'"):
        rnnkit.Dense(3, activaton="relu")
    r = rnnkit.Dense(3, input_shape=(4,), name="d3")
    with pytest.raises(ValueError, match=r"d3: expected inputs with last axis 4 .* got shape \(2, 5\)"):
        r(torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"d4: .*rank 2 or more"):
        rnnkit.Dense(3, name="d4")(torch.ones(4))
    with pytest.raises(TypeError, match="d3: inputs must hold real numbers"):
        r(torch.ones(2, 4, dtype=torch.bool))


# -------------------------------------------------------------- Activation
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softmax", "gelu", "elu", "linear", "swish"])
def test_activation_matches_keras(keras, activation):
    check_against_keras(keras.layers.Activation(activation), rnnkit.Activation(activation), X3)


def test_activation_callable_mask_config_and_errors(keras):
    r = rnnkit.Activation(torch.tanh)
    torch.testing.assert_close(r(torch.tensor(X3)), torch.tanh(torch.tensor(X3)))
    a = rnnkit.Activation("relu", name="act")
    assert a.supports_masking and a.compute_mask(X3, "m") == "m"
    assert a.get_weights() == []
    clone = assert_config_keys_match_keras(a, keras.layers.Activation("relu"))
    assert clone.activation is rnnkit.activations.relu
    assert_signature_matches_keras(rnnkit.Activation, keras.layers.Activation)
    with pytest.raises(ValueError, match="relux"):
        rnnkit.Activation("relux")
