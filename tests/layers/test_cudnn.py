"""``CuDNNLSTM`` / ``CuDNNGRU``: Keras 2's fused-only layers.

Same numbers as ``LSTM`` / ``GRU(reset_after=True)`` (and Keras 3's LSTM / GRU)
with the same weights; Keras 2's own CuDNN bias layouts accepted by
``set_weights``; Keras 2 arguments only; holes in the mask refused.
"""

import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, keras_output_and_grad, rnnkit_output_and_grad

import rnnkit

B, T, F, U = 3, 6, 4, 5
PAIRS = {"lstm": (rnnkit.CuDNNLSTM, rnnkit.LSTM, "LSTM", 2), "gru": (rnnkit.CuDNNGRU, rnnkit.GRU, "GRU", 1)}


def _x(seed=0, dtype="float32"):
    return np.random.RandomState(seed).randn(B, T, F).astype(dtype)


def _random_weights(layer, seed=1):
    rng = np.random.RandomState(seed)
    return [((1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3) * rng.randn(*w.shape)).astype(w.dtype)
            for w in layer.get_weights()]


def _pair(kind, **kwargs):
    cudnn_cls, base_cls, _, _ = PAIRS[kind]
    cudnn, base = cudnn_cls(U, **kwargs), base_cls(U, use_fused=False, **kwargs)
    cudnn.build((B, T, F))
    base.build((B, T, F))
    weights = _random_weights(base)
    base.set_weights(weights)
    cudnn.set_weights(weights)
    return cudnn, base


def _np(outs):
    return [o.detach().numpy() for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


@pytest.mark.parametrize("mask", [None, MASK_RIGHT_PADDED])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_same_numbers_as_base_layer(kind, go_backwards, mask):
    cudnn, base = _pair(kind, return_sequences=True, return_state=True, go_backwards=go_backwards)
    assert cudnn.use_fused is True
    x = _x()
    kw = {} if mask is None else {"mask": mask}
    got, g_got = rnnkit_output_and_grad(cudnn, x, **kw)
    want, g_want = rnnkit_output_and_grad(base, x, **kw)
    assert len(got) == 1 + PAIRS[kind][3]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_cudnn_is_fused(kind):
    layer = PAIRS[kind][0](U)
    plan = rnnkit.explain(layer, _x(), mask=MASK_RIGHT_PADDED)
    assert plan.path == "fused"


@pytest.mark.parametrize("mask", [None, MASK_RIGHT_PADDED])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_matches_keras3_with_copied_weights(keras, kind, mask):
    cudnn_cls, _, kname, _ = PAIRS[kind]
    klayer = getattr(keras.layers, kname)(U, return_sequences=True, return_state=True)
    klayer.build((B, T, F))
    klayer.set_weights(_random_weights(klayer, seed=3))
    layer = cudnn_cls(U, return_sequences=True, return_state=True)
    layer.build((B, T, F))
    layer.set_weights(klayer.get_weights())
    x = _x(4)
    kout, kgrad = keras_output_and_grad(klayer, x, **({} if mask is None else {"mask": torch.tensor(mask)}))
    rout, rgrad = rnnkit_output_and_grad(layer, x, **({} if mask is None else {"mask": mask}))
    assert len(kout) == len(rout)
    for a, b in zip(rout, kout):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rgrad, kgrad, rtol=1e-4, atol=1e-4)


def test_float64():
    cudnn, base = _pair("lstm", dtype="float64", return_sequences=True)
    x = _x(5, "float64")
    np.testing.assert_allclose(_np(cudnn(x))[0], _np(base(x))[0], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------- Keras 2 biases
def test_lstm_keras2_bias_layout_is_summed():
    layer, base = _pair("lstm", return_sequences=True)
    kernel, rec, bias = base.get_weights()
    rng = np.random.RandomState(6)
    b_in = rng.randn(4 * U).astype("float32")
    b_rec = (bias - b_in).astype("float32")
    layer.set_weights([kernel, rec, np.concatenate([b_in, b_rec])])
    got = layer.get_weights()
    assert got[2].shape == (4 * U,)
    np.testing.assert_allclose(got[2], b_in + b_rec, rtol=1e-6)
    x = _x(7)
    np.testing.assert_allclose(_np(layer(x))[0], _np(base(x))[0], rtol=1e-5, atol=1e-5)


def test_gru_keras2_bias_layout_is_reshaped():
    layer, base = _pair("gru", return_sequences=True)
    kernel, rec, bias = base.get_weights()
    assert bias.shape == (2, 3 * U)
    layer.set_weights([kernel, rec, bias.reshape(-1)])  # Keras 2 CuDNNGRU: input bias then recurrent bias
    np.testing.assert_array_equal(layer.get_weights()[2], bias)
    x = _x(8)
    np.testing.assert_allclose(_np(layer(x))[0], _np(base(x))[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_keras3_layout_still_accepted_and_wrong_shapes_refused(kind):
    layer, base = _pair(kind)
    layer.set_weights(base.get_weights())
    for a, b in zip(layer.get_weights(), base.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernel, rec, _ = base.get_weights()
    with pytest.raises(ValueError):
        layer.set_weights([kernel, rec, np.zeros(7 * U, "float32")])
    with pytest.raises(ValueError):
        layer.set_weights([kernel, rec])


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("arg, value", [
    ("activation", "relu"), ("recurrent_activation", "hard_sigmoid"), ("dropout", 0.1),
    ("recurrent_dropout", 0.1), ("use_fused", False), ("use_cudnn", True), ("unroll", True),
    ("use_bias", False), ("implementation", 1), ("seed", 1),
])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_unsupported_argument_raises_type_error_naming_class(kind, arg, value):
    cls = PAIRS[kind][0]
    with pytest.raises(TypeError, match=cls.__name__) as info:
        cls(U, **{arg: value})
    assert arg in str(info.value)
    assert PAIRS[kind][2] in str(info.value)  # points to LSTM / GRU


def test_gru_has_no_reset_after_argument_but_lstm_has_unit_forget_bias():
    with pytest.raises(TypeError, match="CuDNNGRU"):
        rnnkit.CuDNNGRU(U, reset_after=False)
    with pytest.raises(TypeError, match="CuDNNGRU"):
        rnnkit.CuDNNGRU(U, unit_forget_bias=True)
    layer = rnnkit.CuDNNLSTM(U, unit_forget_bias=False, bias_initializer="ones")
    layer.build((B, T, F))
    np.testing.assert_array_equal(layer.get_weights()[2], np.ones(4 * U, "float32"))
    layer = rnnkit.CuDNNLSTM(U)
    layer.build((B, T, F))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias[U: 2 * U], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[U: 2 * U]), 0.0)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_holes_mask_raises_value_error(kind):
    layer = PAIRS[kind][0](U)
    with pytest.raises(ValueError, match="not right-padded"):
        layer(_x(), mask=MASK_HOLES)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("kind", list(PAIRS))
def test_config_round_trip(kind):
    cls = PAIRS[kind][0]
    layer = cls(U, return_sequences=True, go_backwards=True, stateful=False, name="c2",
                kernel_regularizer="l2", bias_initializer="ones")
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    for key in ("activation", "dropout", "recurrent_dropout", "use_fused", "reset_after", "implementation"):
        assert key not in config
    assert config["units"] == U and config["name"] == "c2" and config["return_sequences"] is True
    assert config["go_backwards"] is True
    clone = cls.from_config(config)
    assert type(clone) is cls
    assert clone.get_config() == config
    clone.build((B, T, F))
    layer.build((B, T, F))
    layer.set_weights(_random_weights(layer))
    clone.set_weights(layer.get_weights())
    x = _x(9)
    np.testing.assert_allclose(_np(clone(x))[0], _np(layer(x))[0], rtol=1e-6, atol=1e-6)
    assert len(clone.losses) == 1  # the regularizer survived


@pytest.mark.parametrize("kind", list(PAIRS))
def test_stateful(kind):
    cudnn, base = _pair(kind, stateful=True, return_sequences=True)
    x = _x(10)
    for _ in range(2):
        np.testing.assert_allclose(_np(cudnn(x))[0], _np(base(x))[0], rtol=1e-5, atol=1e-5)
    cudnn.reset_states()
    base.reset_states()
    np.testing.assert_allclose(_np(cudnn(x))[0], _np(base(x))[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ Bidirectional
@pytest.mark.parametrize("kind", list(PAIRS))
def test_bidirectional_cudnn_same_numbers_as_base(kind):
    cudnn_cls, base_cls, _, n_states = PAIRS[kind]
    a = rnnkit.Bidirectional(cudnn_cls(U, return_sequences=True, return_state=True))
    b = rnnkit.Bidirectional(base_cls(U, return_sequences=True, return_state=True, use_fused=False))
    a.build((B, T, F))
    b.build((B, T, F))
    a.set_weights(_random_weights(a, seed=12))
    b.set_weights(a.get_weights())
    assert type(a.backward_layer) is cudnn_cls and a.backward_layer.go_backwards
    x = _x(12)
    got, want = _np(a(x, mask=MASK_RIGHT_PADDED)), _np(b(x, mask=MASK_RIGHT_PADDED))
    assert len(got) == 1 + 2 * n_states
    for u, v in zip(got, want):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not right-padded"):
        a(x, mask=MASK_HOLES)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_bidirectional_cudnn_accepts_keras2_bias_layout(kind):
    cudnn_cls = PAIRS[kind][0]
    a = rnnkit.Bidirectional(cudnn_cls(U))
    a.build((B, T, F))
    w = _random_weights(a, seed=13)
    if kind == "lstm":
        keras2 = [w[0], w[1], np.concatenate([w[2], np.zeros_like(w[2])]),
                  w[3], w[4], np.concatenate([w[5], np.zeros_like(w[5])])]
    else:
        keras2 = [w[0], w[1], w[2].reshape(-1), w[3], w[4], w[5].reshape(-1)]
    a.set_weights(keras2)
    for u, v in zip(a.get_weights(), w):
        np.testing.assert_allclose(u, v)
