"""``Conv1D`` with Keras 3's ``keras.layers.Conv1D`` as the oracle."""

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(4)
X = RNG.standard_normal((2, 9, 4)).astype("float32")


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("kernel_size, strides, dilation_rate", [(3, 1, 1), (4, 2, 1), (2, 3, 1), (3, 1, 2),
                                                                 (1, 1, 1)])
def test_matches_keras(keras, padding, kernel_size, strides, dilation_rate):
    kwargs = dict(kernel_size=kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate)
    k = keras.layers.Conv1D(5, bias_initializer="random_normal", **kwargs)
    r = rnnkit.Conv1D(5, **kwargs)
    out = check_against_keras(k, r, X)
    assert out.shape == r.compute_output_shape(X.shape) == tuple(k.compute_output_shape(X.shape))


@pytest.mark.parametrize("groups", [2, 4])
def test_groups_and_channels_first_match_keras(keras, groups):
    k = keras.layers.Conv1D(8, 3, groups=groups, padding="same", activation="relu")
    r = rnnkit.Conv1D(8, 3, groups=groups, padding="same", activation="relu")
    check_against_keras(k, r, X)
    assert r.get_weights()[0].shape == (3, 4 // groups, 8)
    xt = np.ascontiguousarray(X.transpose(0, 2, 1))
    kf = keras.layers.Conv1D(6, 2, groups=2, data_format="channels_first", strides=2)
    rf = rnnkit.Conv1D(6, 2, groups=2, data_format="channels_first", strides=2)
    out = check_against_keras(kf, rf, xt)
    assert out.shape == (2, 6, 4) == rf.compute_output_shape(xt.shape)


def test_causal_output_sees_no_future_steps():
    r = rnnkit.Conv1D(3, 3, padding="causal", dilation_rate=2, input_shape=(None, 4))
    x = torch.tensor(X, requires_grad=True)
    y = r(x)
    y[:, 4].sum().backward()
    assert (x.grad[:, 5:] == 0).all() and (x.grad[:, [0, 2, 4]] != 0).all() and (x.grad[:, [1, 3]] == 0).all()


def test_kernel_layout_is_torch_weight_transposed():
    r = rnnkit.Conv1D(5, 3, input_shape=(None, 4))
    conv = torch.nn.Conv1d(4, 5, 3)
    with torch.no_grad():
        conv.weight.copy_(r.kernel.permute(2, 1, 0))
        conv.bias.copy_(r.bias)
    x = torch.tensor(X)
    torch.testing.assert_close(r(x), conv(x.transpose(1, 2)).transpose(1, 2))
    assert [n for n, _ in r.named_parameters()] == ["kernel", "bias"]
    assert [w.shape for w in rnnkit.Conv1D(2, 3, use_bias=False, input_shape=(None, 4)).get_weights()] == [(3, 4, 2)]


def test_lazy_state_dict_gradients_and_no_masking():
    src = rnnkit.Conv1D(3, 2, groups=1, input_shape=(9, 4))
    lazy = rnnkit.Conv1D(3, 2)
    lazy.load_state_dict(src.state_dict())
    torch.testing.assert_close(lazy(X), src(X))
    src(X).sum().backward()
    assert src.kernel.grad.abs().sum() > 0 and src.bias.grad.abs().sum() > 0
    assert not src.supports_masking and src.compute_mask(X, torch.ones(2, 9, dtype=torch.bool)) is None


def test_config_and_signature(keras):
    r = rnnkit.Conv1D(4, 3, strides=2, padding="CAUSAL", activation="tanh", name="c")
    assert r.padding == "causal" and r.get_config()["kernel_size"] == (3,)
    clone = assert_config_keys_match_keras(r, keras.layers.Conv1D(4, 3, padding="causal"))
    assert (clone.filters, clone.kernel_size, clone.padding) == (4, (3,), "causal")
    assert_signature_matches_keras(rnnkit.Conv1D, keras.layers.Conv1D)


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="c1: filters .6. must be divisible by groups .4."):
        rnnkit.Conv1D(6, 3, groups=4, name="c1")
    with pytest.raises(ValueError, match="c2: strides > 1 is not supported with dilation_rate > 1"):
        rnnkit.Conv1D(2, 3, strides=2, dilation_rate=2, name="c2")
    with pytest.raises(ValueError, match="c3: padding must be 'valid', 'same' or 'causal'"):
        rnnkit.Conv1D(2, 3, padding="full", name="c3")
    with pytest.raises(ValueError, match="c4: kernel_size must be an int or a tuple of 1 int"):
        rnnkit.Conv1D(2, (3, 3), name="c4")
    with pytest.raises(ValueError, match=r"c5: the input channels \(4\) must be divisible by groups \(3\)"):
        rnnkit.Conv1D(3, 2, groups=3, name="c5")(X)
    built = rnnkit.Conv1D(2, 3, input_shape=(None, 4), name="c6")
    with pytest.raises(ValueError, match=r"c6: expected 4 input channels .* got inputs of shape \(2, 9, 5\)"):
        built(np.ones((2, 9, 5), "float32"))
    with pytest.raises(ValueError, match=r"c6: expected inputs of rank 3"):
        built(np.ones((9, 4), "float32"))
    with pytest.raises(ValueError, match="c6: 2 steps are fewer than the window's span 3"):
        built(np.ones((1, 2, 4), "float32"))
    np.testing.assert_array_equal(to_numpy(rnnkit.Conv1D(2, 3, padding="same")(np.ones((1, 2, 4)))).shape, (1, 2, 2))
