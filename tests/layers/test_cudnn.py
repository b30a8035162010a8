"""``CuDNNLSTM`` / ``CuDNNGRU``: Keras 2's fused-only layers.

Same numbers as ``LSTM`` / ``GRU(reset_after=True)`` (and Keras 3's LSTM / GRU)
with the same weights; ``get_weights`` / ``set_weights`` in tf.keras 2's CuDNN
layout, checked independently against ``torch.nn.LSTM`` / ``GRU`` (cuDNN's
per-gate matrices are torch's); the plain layout still accepted by
``set_weights``; Keras 2 arguments only; holes in the mask refused.
"""

import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, keras_output_and_grad, rnnkit_output_and_grad

import rnnkit
from rnnkit.io import keras_to_cudnn_weights

B, T, F, U = 3, 6, 4, 5
PAIRS = {"lstm": (rnnkit.CuDNNLSTM, rnnkit.LSTM, "LSTM", 2), "gru": (rnnkit.CuDNNGRU, rnnkit.GRU, "GRU", 1)}


def _to_cudnn(kind, weights):
    """Plain Keras weights in tf.keras 2's CuDNN layout."""
    return keras_to_cudnn_weights(PAIRS[kind][0].__name__, weights)


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
    cudnn.set_weights(_to_cudnn(kind, weights))
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
    layer.set_weights(_to_cudnn(kind, klayer.get_weights()))
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


# ------------------------------------------------- tf.keras 2's CuDNN layout
def _torch_module(kind, seed=20):
    torch.manual_seed(seed)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(F, U, batch_first=True, dtype=torch.float64)


def _cudnn_layout_from_torch(module, kind):
    """tf.keras 2's CuDNN weights, built straight from cuDNN's (= torch's) per-gate matrices.

    cuDNN (and torch) hold one row-major ``(U, F)`` matrix per gate; tf.keras 2
    stores that memory as a ``(F, U)`` block of its kernel, unchanged (a
    reshape, no transpose), each ``(U, U)`` recurrent matrix as it is, and the
    biases input first, then recurrent. Its GRU blocks are in Keras's gate
    order ``z r h``; torch's are ``r z n``.
    """
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in
                              (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0))
    order = [0, 1, 2, 3] if kind == "lstm" else [1, 0, 2]  # Keras gate g is torch gate order[g]
    rows = [slice(g * U, (g + 1) * U) for g in order]
    kernel = np.concatenate([np.reshape(w_ih[r], (F, U)) for r in rows], axis=1)
    recurrent = np.concatenate([w_hh[r] for r in rows], axis=1)
    bias = np.concatenate([b_ih[r] for r in rows] + [b_hh[r] for r in rows])
    return [kernel, recurrent, bias]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_cudnn_layout_built_from_torch_gives_torch_numbers(kind, go_backwards):
    module = _torch_module(kind)
    weights = _cudnn_layout_from_torch(module, kind)
    layer = PAIRS[kind][0](U, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64")
    layer.build((B, T, F))
    layer.set_weights(weights)
    x = torch.tensor(_x(21, "float64"), requires_grad=True)
    x_t = x.flip(1) if go_backwards else x  # go_backwards: the sequence read from its end
    y_t, hn_t = module(x_t)
    out = layer(x)
    torch.testing.assert_close(out[0], y_t, rtol=1e-12, atol=1e-12)
    for got, want in zip(out[1:], hn_t if kind == "lstm" else [hn_t]):
        torch.testing.assert_close(got, want[0], rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(out[0].sum(), x)
    (g_t,) = torch.autograd.grad(y_t.sum(), x)
    torch.testing.assert_close(g, g_t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_get_weights_returns_the_cudnn_layout(kind):
    module = _torch_module(kind)
    weights = _cudnn_layout_from_torch(module, kind)
    layer = PAIRS[kind][0](U, dtype="float64")
    layer.build((B, T, F))
    layer.set_weights(weights)
    got = layer.get_weights()
    assert [w.shape for w in got] == [w.shape for w in weights]
    np.testing.assert_array_equal(got[0], weights[0])
    np.testing.assert_array_equal(got[1], weights[1])
    if kind == "gru":
        np.testing.assert_array_equal(got[2], weights[2])
    else:  # CuDNNLSTM holds the summed bias: get_weights splits it in halves, as tf.keras 2's converter does
        half = got[2][: 4 * U]
        np.testing.assert_array_equal(got[2][4 * U:], half)
        np.testing.assert_allclose(2 * half, weights[2][: 4 * U] + weights[2][4 * U:], rtol=1e-15)
    # inside, the parameters are the plain Keras layout: torch's weights transposed
    w_ih = module.weight_ih_l0.detach().numpy()
    kernel = layer.cell.kernel.detach().numpy()
    if kind == "lstm":
        np.testing.assert_array_equal(kernel, w_ih.T)
    else:
        np.testing.assert_array_equal(kernel[:, :U], w_ih[U: 2 * U].T)  # z
        np.testing.assert_array_equal(kernel[:, U: 2 * U], w_ih[:U].T)  # r
    again = PAIRS[kind][0](U, dtype="float64")
    again.build((B, T, F))
    again.set_weights(got)
    for a, b in zip(again.get_weights(), got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_plain_layout_still_accepted_and_wrong_shapes_refused(kind):
    layer, base = _pair(kind)
    layer.set_weights(base.get_weights())  # told apart from the CuDNN layout by the bias shape
    for a, b in zip(layer.get_weights(), _to_cudnn(kind, base.get_weights())):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(layer.weights, base.get_weights()):
        np.testing.assert_array_equal(a.detach().numpy(), b)
    x = _x(7)
    np.testing.assert_allclose(_np(layer(x))[0], _np(base(x))[0], rtol=1e-5, atol=1e-5)
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
    np.testing.assert_array_equal(layer.cell.bias.detach().numpy(), np.ones(4 * U, "float32"))
    layer = rnnkit.CuDNNLSTM(U)
    layer.build((B, T, F))
    bias = layer.cell.bias.detach().numpy()
    np.testing.assert_array_equal(bias[U: 2 * U], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[U: 2 * U]), 0.0)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_holes_mask_runs_exactly_on_the_fused_path(kind):
    """A mask never decides the path: a fused-only layer is exact for masks with holes too."""
    cudnn, base = _pair(kind, return_sequences=True, go_backwards=True)
    x = _x(3)
    assert rnnkit.explain(cudnn, x, mask=MASK_HOLES).path == "fused"
    for got, want in zip(_np(cudnn(x, mask=MASK_HOLES)), _np(base(x, mask=MASK_HOLES))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


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
    for u, v in zip(_np(a(x, mask=MASK_HOLES)), _np(b(x, mask=MASK_HOLES))):  # holes: exact too
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_bidirectional_cudnn_takes_the_cudnn_layout(kind):
    cudnn_cls, base_cls, _, _ = PAIRS[kind]
    a = rnnkit.Bidirectional(cudnn_cls(U, return_sequences=True))
    b = rnnkit.Bidirectional(base_cls(U, return_sequences=True))
    a.build((B, T, F))
    b.build((B, T, F))
    w = _random_weights(b, seed=13)
    b.set_weights(w)
    a.set_weights(_to_cudnn(kind, w))  # forward triple, then backward triple
    for half, plain in ((a.forward_layer, w[:3]), (a.backward_layer, w[3:])):
        for u, v in zip(half.get_weights(), _to_cudnn(kind, plain)):
            np.testing.assert_array_equal(u, v)
    x = _x(14)
    np.testing.assert_allclose(_np(a(x))[0], _np(b(x))[0], rtol=1e-5, atol=1e-5)
    # a container lists its layers' parameters: the plain layout (see rnnkit.layers.cudnn)
    for u, v in zip(a.get_weights(), w):
        np.testing.assert_array_equal(u, v)
