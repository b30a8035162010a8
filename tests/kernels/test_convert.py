"""Keras <-> torch.nn weight layouts (``rnnkit.kernels.convert``), with torch.nn as the oracle.

torch.nn weights go into an rnnkit layer through ``*_from_torch`` +
``set_weights`` and the outputs must equal torch.nn's (``batch_first``); rnnkit
weights go into torch.nn through ``*_to_torch`` the other way. Both rnnkit paths
(fused kernel and generic loop) are checked, so the conversion is tested
independently of the kernel that also uses it.
"""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.kernels import gru, lstm, simple_rnn
from rnnkit.kernels.spec import cell_to_torch

B, T, D, U = 3, 6, 4, 5
TOL = dict(rtol=1e-5, atol=1e-5)

# name -> (torch.nn factory, rnnkit class, rnnkit kwargs, from_torch, to_torch)
FAMILIES = {
    "lstm": (lambda bias: torch.nn.LSTM(D, U, batch_first=True, bias=bias), rnnkit.LSTM, {},
             lstm.lstm_from_torch, lstm.lstm_to_torch),
    "gru": (lambda bias: torch.nn.GRU(D, U, batch_first=True, bias=bias), rnnkit.GRU, {},
            gru.gru_from_torch, gru.gru_to_torch),
    "rnn_tanh": (lambda bias: torch.nn.RNN(D, U, batch_first=True, bias=bias), rnnkit.SimpleRNN, {},
                 simple_rnn.simple_rnn_from_torch, simple_rnn.simple_rnn_to_torch),
    "rnn_relu": (lambda bias: torch.nn.RNN(D, U, batch_first=True, bias=bias, nonlinearity="relu"),
                 rnnkit.SimpleRNN, {"activation": "relu"}, simple_rnn.simple_rnn_from_torch,
                 simple_rnn.simple_rnn_to_torch),
}


def torch_module(family, bias=True, seed=0):
    torch.manual_seed(seed)
    module = FAMILIES[family][0](bias)
    with torch.no_grad():  # random biases everywhere (torch's init is already random)
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    return module


def torch_params(module):
    names = ["weight_ih_l0", "weight_hh_l0"] + (["bias_ih_l0", "bias_hh_l0"] if module.bias else [])
    return [getattr(module, n).detach() for n in names]


def rnnkit_layer(family, use_fused, bias=True, **kwargs):
    _, cls, extra, _, _ = FAMILIES[family]
    layer = cls(U, return_sequences=True, return_state=True, use_bias=bias, use_fused=use_fused,
                **dict(extra, **kwargs))
    layer.build((B, T, D))
    return layer


def torch_run(module, x, h0=None):
    out, hn = module(torch.tensor(x), h0)
    hs = list(hn) if isinstance(hn, tuple) else [hn]
    return [out.detach().numpy()] + [h[0].detach().numpy() for h in hs]


def rnnkit_run(layer, x, initial_state=None, **kwargs):
    return [t.detach().numpy() for t in layer(x, initial_state=initial_state, **kwargs)]


def assert_all_close(a, b, **tol):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, **(tol or TOL))


# ------------------------------------------------------------ torch -> rnnkit
@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_from_torch_outputs_equal_torch_nn(family, bias, use_fused):
    module = torch_module(family, bias)
    layer = rnnkit_layer(family, use_fused, bias)
    weights = FAMILIES[family][3](*torch_params(module))
    assert len(weights) == (3 if bias else 2)
    layer.set_weights([w.numpy() for w in weights])
    rng = np.random.RandomState(1)
    x = rng.randn(B, T, D).astype("float32")
    n_states = 2 if family == "lstm" else 1
    h0 = [rng.randn(B, U).astype("float32") for _ in range(n_states)]
    expected = torch_run(module, x, tuple(torch.tensor(h)[None] for h in h0) if n_states == 2
                         else torch.tensor(h0[0])[None])
    assert_all_close(rnnkit_run(layer, x, h0), expected)
    # without an initial state too (zeros on both sides)
    assert_all_close(rnnkit_run(layer, x), torch_run(module, x))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_rnnkit_to_torch_outputs_equal(family):
    """rnnkit weights -> ``*_to_torch`` -> torch.nn parameters: the same outputs."""
    layer = rnnkit_layer(family, "auto")
    rng = np.random.RandomState(2)
    layer.set_weights([(0.5 * rng.randn(*w.shape)).astype("float32") for w in layer.get_weights()])
    module = torch_module(family)
    to_torch = FAMILIES[family][4]
    params = to_torch(*[torch.tensor(w) for w in layer.get_weights()])
    with torch.no_grad():
        for p, w in zip(torch_params(module), params):
            assert p.shape == w.shape
            p.copy_(w)
    x = rng.randn(B, T, D).astype("float32")
    assert_all_close(rnnkit_run(layer, x), torch_run(module, x))


def test_cell_to_torch_matches_family_functions():
    x = np.random.RandomState(3).randn(B, T, D).astype("float32")
    for family in FAMILIES:
        layer = rnnkit_layer(family, "auto")
        layer(x)
        got = cell_to_torch(layer.cell)
        want = FAMILIES[family][4](layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)
        assert len(got) == len(want) == 4
        for g, w in zip(got, want):
            assert torch.equal(g, w)
    no_bias = rnnkit_layer("gru", "auto", bias=False)
    assert len(cell_to_torch(no_bias.cell)) == 2


# ----------------------------------------------------------- the layouts
def test_lstm_layout_is_a_transpose_with_folded_bias():
    rng = np.random.RandomState(4)
    kernel, rec, bias = (torch.tensor(rng.randn(*s)) for s in [(D, 4 * U), (U, 4 * U), (4 * U,)])
    w_ih, w_hh, b_ih, b_hh = lstm.lstm_to_torch(kernel, rec, bias)
    assert w_ih.shape == (4 * U, D) and w_hh.shape == (4 * U, U)
    assert torch.equal(w_ih, kernel.t()) and torch.equal(w_hh, rec.t())
    assert torch.equal(b_ih, bias) and torch.equal(b_hh, torch.zeros(4 * U, dtype=bias.dtype))
    # back: bias_ih + bias_hh folded into one
    b2 = torch.tensor(rng.randn(4 * U))
    k, r, b = lstm.lstm_from_torch(w_ih, w_hh, b_ih, b2)
    assert torch.equal(k, kernel) and torch.equal(r, rec)
    assert torch.allclose(b, bias + b2)
    assert len(lstm.lstm_to_torch(kernel, rec)) == 2
    assert len(lstm.lstm_from_torch(w_ih, w_hh)) == 2


def test_gru_layout_swaps_z_and_r():
    """Keras ``z r h`` vs torch ``r z n``: the first two gate blocks trade places."""
    blocks = [torch.full((D, U), float(i)) for i in range(3)]  # z=0, r=1, h=2
    kernel = torch.cat(blocks, dim=1)
    rec = torch.cat([torch.full((U, U), 10.0 + i) for i in range(3)], dim=1)
    bias = torch.stack([torch.cat([torch.full((U,), 20.0 + i) for i in range(3)]),
                        torch.cat([torch.full((U,), 30.0 + i) for i in range(3)])])
    w_ih, w_hh, b_ih, b_hh = gru.gru_to_torch(kernel, rec, bias)
    assert w_ih.shape == (3 * U, D) and w_hh.shape == (3 * U, U)
    assert [w_ih[i * U: (i + 1) * U].unique().item() for i in range(3)] == [1.0, 0.0, 2.0]
    assert [w_hh[i * U: (i + 1) * U].unique().item() for i in range(3)] == [11.0, 10.0, 12.0]
    assert [b_ih[i * U: (i + 1) * U].unique().item() for i in range(3)] == [21.0, 20.0, 22.0]
    assert [b_hh[i * U: (i + 1) * U].unique().item() for i in range(3)] == [31.0, 30.0, 32.0]
    k, r, b = gru.gru_from_torch(w_ih, w_hh, b_ih, b_hh)
    assert torch.equal(k, kernel) and torch.equal(r, rec) and torch.equal(b, bias)
    assert b.shape == (2, 3 * U)


def test_lstm_gate_order_matches_torch_by_construction():
    """Only the forget-gate bias set: Keras block 1 lands in torch block 1 (both order ``i f . o``)."""
    kernel, rec = torch.zeros(D, 4 * U), torch.zeros(U, 4 * U)
    bias = torch.zeros(4 * U)
    bias[U: 2 * U] = 7.0
    _, _, b_ih, _ = lstm.lstm_to_torch(kernel, rec, bias)
    assert b_ih[U: 2 * U].eq(7.0).all() and b_ih[:U].eq(0).all() and b_ih[2 * U:].eq(0).all()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trips(family):
    rng = np.random.RandomState(5)
    from_torch, to_torch = FAMILIES[family][3], FAMILIES[family][4]
    module = torch_module(family, seed=6)
    tp = torch_params(module)
    back = to_torch(*from_torch(*tp))
    assert torch.equal(back[0], tp[0]) and torch.equal(back[1], tp[1])
    if family == "gru":  # exact: GRU keeps both biases
        assert torch.equal(back[2], tp[2]) and torch.equal(back[3], tp[3])
    else:  # LSTM / SimpleRNN fold the two biases: the sum survives
        assert torch.allclose(back[2] + back[3], tp[2] + tp[3])
        assert torch.equal(back[3], torch.zeros_like(back[3]))
    layer = rnnkit_layer(family, "auto")
    keras_w = [torch.tensor(rng.randn(*w.shape)) for w in layer.get_weights()]
    again = from_torch(*to_torch(*keras_w))
    for a, b in zip(again, keras_w):
        assert torch.equal(a, b)


def test_to_torch_is_differentiable():
    kernel = torch.randn(D, 3 * U, requires_grad=True)
    rec = torch.randn(U, 3 * U, requires_grad=True)
    bias = torch.randn(2, 3 * U, requires_grad=True)
    weights = gru.gru_to_torch(kernel, rec, bias)
    coef = [torch.randn(w.shape) for w in weights]
    loss = sum((w * c).sum() for w, c in zip(weights, coef))
    gk, gr, gb = torch.autograd.grad(loss, [kernel, rec, bias])
    # the gradient is the coefficients mapped back through the (linear) layout change
    ck, cr, cb = gru.gru_from_torch(*coef)
    assert torch.allclose(gk, ck) and torch.allclose(gr, cr) and torch.allclose(gb, cb)


def test_float64_round_trip_against_torch_nn():
    module = torch_module("lstm", seed=7).double()
    layer = rnnkit.LSTM(U, return_sequences=True, return_state=True, dtype="float64")
    layer.build((B, T, D))
    layer.set_weights([w.numpy() for w in lstm.lstm_from_torch(*torch_params(module))])
    x = np.random.RandomState(8).randn(B, T, D)
    assert_all_close(rnnkit_run(layer, x), torch_run(module, x), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------- masks vs packed sequences
LENGTHS = [6, 4, 1]


def _packed_torch(module, x, lengths, h0=None):
    packed = pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, hn = module(packed, h0)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    hs = list(hn) if isinstance(hn, tuple) else [hn]
    return out.detach().numpy(), [h.detach().numpy() for h in hs]


@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("family", ["lstm", "gru"])
def test_masked_equals_pack_padded_sequence(family, use_fused):
    module = torch_module(family, seed=9)
    layer = rnnkit_layer(family, use_fused, zero_output_for_mask=True)
    layer.set_weights([w.numpy() for w in FAMILIES[family][3](*torch_params(module))])
    x = np.random.RandomState(10).randn(B, T, D).astype("float32")
    mask = np.arange(T)[None] < np.array(LENGTHS)[:, None]
    assert rnnkit.explain(layer, x, mask=mask).path == ("fused" if use_fused == "auto" else "generic")
    out, hn = _packed_torch(module, x, LENGTHS)
    got = rnnkit_run(layer, x, mask=mask)
    np.testing.assert_allclose(got[0], out, **TOL)  # zero-padded outputs
    assert (got[0][1, 4:] == 0).all() and (got[0][2, 1:] == 0).all()
    for g, h in zip(got[1:], hn):
        np.testing.assert_allclose(g, h[0], **TOL)  # final states after each row's last valid step


@pytest.mark.parametrize("use_fused", ["auto", False])
def test_masked_without_zero_output_repeats_last_valid_output(use_fused):
    module = torch_module("lstm", seed=11)
    layer = rnnkit_layer("lstm", use_fused)
    layer.set_weights([w.numpy() for w in lstm.lstm_from_torch(*torch_params(module))])
    x = np.random.RandomState(12).randn(B, T, D).astype("float32")
    mask = np.arange(T)[None] < np.array(LENGTHS)[:, None]
    out, (h, c) = _packed_torch(module, x, LENGTHS)
    got = rnnkit_run(layer, x, mask=mask)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(got[0][b, :n], out[b, :n], **TOL)
        np.testing.assert_allclose(got[0][b, n:], np.broadcast_to(h[0, b], (T - n, U)), **TOL)
    np.testing.assert_allclose(got[1], h[0], **TOL)
    np.testing.assert_allclose(got[2], c[0], **TOL)


@pytest.mark.parametrize("use_fused", ["auto", False])
def test_masked_go_backwards_equals_torch_reverse_direction(use_fused):
    """go_backwards + right padding = torch's reverse direction of a packed bidirectional LSTM."""
    torch.manual_seed(13)
    module = torch.nn.LSTM(D, U, batch_first=True, bidirectional=True)
    rev = [module.weight_ih_l0_reverse, module.weight_hh_l0_reverse, module.bias_ih_l0_reverse,
           module.bias_hh_l0_reverse]
    layer = rnnkit_layer("lstm", use_fused, go_backwards=True, zero_output_for_mask=True)
    layer.set_weights([w.detach().numpy() for w in lstm.lstm_from_torch(*rev)])
    x = np.random.RandomState(14).randn(B, T, D).astype("float32")
    mask = np.arange(T)[None] < np.array(LENGTHS)[:, None]
    out, (h, c) = _packed_torch(module, x, LENGTHS)
    got = rnnkit_run(layer, x, mask=mask)
    np.testing.assert_allclose(got[1], h[1], **TOL)
    np.testing.assert_allclose(got[2], c[1], **TOL)
    # the reversed output sequence: padding first (zeros), then torch's backward outputs reversed
    backward = out[..., U:]
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(got[0][b, : T - n], 0.0)
        np.testing.assert_allclose(got[0][b, T - n:], backward[b, :n][::-1], **TOL)
