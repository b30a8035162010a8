"""The fused kernels as opaque custom ops (``rnnkit::rnn_kernel``) and ``torch.compile(fullgraph=True)`` over them."""

import pytest
import torch

import rnnkit
from rnnkit.kernels import lstm as lstm_kernels
from rnnkit.kernels import ops
from rnnkit.tools.bench_custom import MinimalTanhCell


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: dynamo's per-code-object recompile limit (8) is not shared across tests."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _weights(mode, d, u, directions, bias, seed=0):
    gates = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}[mode]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(directions):
        out += [torch.randn(gates * u, d, generator=g, dtype=torch.float64),
                torch.randn(gates * u, u, generator=g, dtype=torch.float64)]
        if bias:
            out += [torch.randn(gates * u, generator=g, dtype=torch.float64) for _ in range(2)]
    return out


def _case(mode, bidirectional, lengths, bias=True):
    b, t, d, u = 3, 5, 4, 3
    directions = 2 if bidirectional else 1
    x = torch.randn(b, t, d, dtype=torch.float64)
    n_states = 2 if mode == "lstm" else 1
    hx = [torch.randn(directions, b, u, dtype=torch.float64) for _ in range(n_states)]
    return x, hx, _weights(mode, d, u, directions, bias), mode, bias, bidirectional, lengths


CASES = [(mode, bi, lengths) for mode in ("lstm", "gru", "rnn_tanh", "rnn_relu") for bi in (False, True)
         for lengths in (None, torch.tensor([5, 2, 4]))]


@pytest.mark.parametrize("mode, bidirectional, lengths", CASES[:4] + CASES[-2:])
def test_opcheck(mode, bidirectional, lengths):
    """Schema, fake (meta) implementation and autograd registration, as torch checks them."""
    args = _case(mode, bidirectional, lengths)
    for t in [args[0], *args[1], *args[2]]:
        t.requires_grad_()
    torch.library.opcheck(torch.ops.rnnkit.rnn_kernel.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("mode, bidirectional, lengths", CASES)
def test_op_equals_the_kernel_and_its_gradients(mode, bidirectional, lengths):
    x, hx, weights, *rest = _case(mode, bidirectional, lengths)
    inputs = [x, *hx, *weights]
    for t in inputs:
        t.requires_grad_()
    expected = ops.kernel_call(x, hx, weights, *rest)
    got = ops.rnn_kernel(x, hx, weights, *rest)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)
    probes = [torch.randn_like(e) for e in expected]
    want = torch.autograd.grad(expected, inputs, probes)
    have = torch.autograd.grad(got, inputs, probes)
    for w, h in zip(want, have):
        torch.testing.assert_close(h, w, rtol=0, atol=1e-10)


def _compiled_matches_eager(layer, x, **kwargs):
    layer(x, **kwargs)
    compiled = torch.compile(layer, fullgraph=True)
    got, want = compiled(x, **kwargs), layer(x, **kwargs)
    got, want = (got[0], want[0]) if isinstance(got, list) else (got, want)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    params = list(layer.parameters())
    for g, w in zip(torch.autograd.grad(got.square().sum(), params), torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(5, return_sequences=True),
    lambda: rnnkit.GRU(5, return_state=True),
    lambda: rnnkit.SimpleRNN(5, activation="relu", go_backwards=True, return_sequences=True),
    lambda: rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True)),
], ids=["lstm", "gru-states", "simple-relu-backwards", "bidirectional"])
def test_compile_fullgraph_fused(make):
    torch.manual_seed(0)
    layer = make()
    assert rnnkit.explain(layer, torch.zeros(3, 6, 4)).path == "fused"
    _compiled_matches_eager(layer, torch.randn(3, 6, 4))


def test_compile_fullgraph_with_a_mask_with_holes():
    torch.manual_seed(1)
    mask = torch.tensor([[1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    _compiled_matches_eager(rnnkit.GRU(4, return_sequences=True), torch.randn(3, 6, 4), mask=mask)


RIGHT_PADDED = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
HOLES = torch.tensor([[1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)


@pytest.mark.parametrize("mask", [RIGHT_PADDED, HOLES], ids=["right-padded", "holes"])
@pytest.mark.parametrize("go_backwards, zero_output", [(False, False), (True, False), (False, True)])
def test_masked_op_opcheck_and_equals_the_loop(mask, go_backwards, zero_output):
    x, hx, weights, mode, bias, _, _ = _case("lstm", False, None)
    hx = [h[0] for h in hx]
    mask = mask[:, : x.shape[1]]
    args = (x, mask, hx, weights, mode, bias, go_backwards, zero_output)
    torch.library.opcheck(torch.ops.rnnkit.rnn_kernel_masked.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    got = ops.masked_kernel_call(*args)
    # the reference: rnnkit's generic loop with the same weights (Keras layout) and Keras's masking rules
    layer = rnnkit.LSTM(hx[0].shape[-1], return_sequences=True, return_state=True, go_backwards=go_backwards,
                        zero_output_for_mask=zero_output, use_fused=False).double()
    layer.build(tuple(x.shape))
    layer.set_weights([w.numpy() for w in lstm_kernels.lstm_from_torch(*weights)])
    want = layer(x, initial_state=hx, mask=mask)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mask", [RIGHT_PADDED, HOLES], ids=["right-padded", "holes"])
@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(4, return_sequences=True, go_backwards=True),
    lambda: rnnkit.GRU(4, return_state=True, zero_output_for_mask=True, return_sequences=True),
    lambda: rnnkit.Bidirectional(rnnkit.LSTM(4, return_sequences=True)),
], ids=["lstm-backwards", "gru-states-zero", "bidirectional"])
def test_compile_fullgraph_masked(make, mask):
    torch.manual_seed(2)
    _compiled_matches_eager(make(), torch.randn(3, 6, 4), mask=mask)


@pytest.mark.parametrize("masked", [False, True])
def test_export_with_dynamic_batch_and_time(masked):
    torch.manual_seed(3)
    layer = rnnkit.LSTM(5, return_sequences=True)
    x = torch.randn(3, 6, 4)
    kwargs = {"mask": HOLES} if masked else {}
    layer(x, **kwargs)
    batch, time = torch.export.Dim("batch", min=2), torch.export.Dim("time", min=2)
    shapes = {"sequences": {0: batch, 1: time}}
    if masked:
        shapes["mask"] = {0: batch, 1: time}
    program = torch.export.export(layer, (x,), kwargs, dynamic_shapes=shapes)
    x2 = torch.randn(5, 9, 4)
    mask2 = torch.rand(5, 9) > 0.3 if masked else None
    extra = {"mask": mask2} if masked else {}
    torch.testing.assert_close(program.module()(x2, **extra), layer(x2, **extra), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, shape", [
    (lambda: rnnkit.RNN(MinimalTanhCell(4), return_sequences=True), (2, 5, 3)),
    (lambda: rnnkit.ConvLSTM2D(2, 3, padding="same"), (2, 3, 4, 4, 2)),
], ids=["custom-cell", "conv-lstm"])
def test_compile_fullgraph_loops(make, shape):
    """The generic and hoisted loops compile too (the loop is unrolled for the traced length)."""
    torch.manual_seed(4)
    _compiled_matches_eager(make(), torch.randn(*shape))


class _Masked(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, mask):
        return self.layer(x, mask=mask)


@pytest.mark.parametrize("make", [lambda: rnnkit.LSTM(4, return_sequences=True),
                                  lambda: rnnkit.GRU(4, go_backwards=True)], ids=["lstm", "gru-backwards"])
def test_jit_trace_is_exact_for_every_mask(make):
    """A trace records the opaque masked op: a mask with holes, or another batch and length, stays exact."""
    torch.manual_seed(5)
    layer = make()
    x = torch.randn(3, 6, 3)
    layer(x)
    traced = torch.jit.trace(_Masked(layer), (x, RIGHT_PADDED), check_trace=False)
    for mask in (RIGHT_PADDED, HOLES):
        torch.testing.assert_close(traced(x, mask), layer(x, mask=mask), rtol=1e-5, atol=1e-6)
    x2, mask2 = torch.randn(2, 9, 3), torch.rand(2, 9) > 0.4
    torch.testing.assert_close(traced(x2, mask2), layer(x2, mask=mask2), rtol=1e-5, atol=1e-6)


def test_jit_trace_of_an_unbuilt_layer_is_refused():
    with pytest.raises(RuntimeError, match="build the layer before torch.jit.trace"):
        torch.jit.trace(rnnkit.LSTM(4), (torch.randn(2, 5, 3),), check_trace=False)


def test_jit_trace_of_a_loop_path_is_refused():
    layer = rnnkit.LSTM(4, recurrent_activation="hard_sigmoid")
    x = torch.randn(2, 5, 3)
    layer(x)
    with pytest.raises(RuntimeError, match=r"unrolled for 5 timesteps.*hard_sigmoid"):
        torch.jit.trace(layer, (x,), check_trace=False)


def test_dynamic_compile_does_not_recompile_for_new_batch_or_length():
    torch.manual_seed(6)
    layer = rnnkit.GRU(4, return_sequences=True)
    layer(torch.randn(2, 3, 3))
    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for batch, steps in [(2, 4), (5, 7), (6, 11)]:  # (dims equal to the feature size would be duck-sized)
        x = torch.randn(batch, steps, 3)
        torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-6)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames_before == 1


@pytest.mark.parametrize("lengths", [[6, 3, 0, 6, 1], [2, 2, 2, 2, 2], [0, 0, 0, 0, 1], [6, 6, 6, 6, 6]])
def test_right_padded_lstm_in_one_unmasked_call_equals_packing(lengths):
    """A right-padded LSTM runs as one unmasked call, its cell state held over the padding: packing's numbers."""
    torch.manual_seed(7)
    x, hx, weights, _, _, _, _ = _case("lstm", False, None)
    x = torch.randn(5, 6, x.shape[-1], dtype=torch.float64)
    hx = [torch.randn(5, h.shape[-1], dtype=torch.float64) for h in hx]
    lengths = torch.tensor(lengths)
    inputs = [x, *hx, *weights]
    for t in inputs:
        t.requires_grad_()
    mask = torch.arange(6) < lengths[:, None]
    out, *states = ops.masked_kernel_call(x, mask, hx, weights, "lstm", True, False, True)
    packed = ops.kernel_call(x, [h.unsqueeze(0) for h in hx], weights, "lstm", True, False, lengths)
    valid = (torch.arange(6) < lengths[:, None]).unsqueeze(-1)
    torch.testing.assert_close(torch.where(valid, out, 0.0), torch.where(valid, packed[0], 0.0), rtol=0, atol=1e-12)
    ran = (lengths > 0).unsqueeze(1)
    for s, p, h in zip(states, packed[1:], hx):
        torch.testing.assert_close(s, torch.where(ran, p[0], h), rtol=0, atol=1e-12)
    probe = torch.randn_like(out)
    got = torch.autograd.grad((out * probe * valid).sum() + sum(s.sum() for s in states), inputs, allow_unused=True)
    want = torch.autograd.grad((packed[0] * probe * valid).sum()
                               + sum(torch.where(ran, p[0], h).sum() for p, h in zip(packed[1:], hx)), inputs,
                               allow_unused=True)
    for g, w in zip(got, want):
        if g is None or w is None:
            assert (g is None or not g.abs().any()) and (w is None or not w.abs().any())
        else:
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("zero_output", [False, True])
def test_backwards_lstm_from_zero_states_runs_the_flipped_input_held(zero_output):
    """go_backwards + right padding + zero initial states: one held call on x.flip(1), exact with gradients."""
    torch.manual_seed(8)
    x, hx, weights, _, _, _, _ = _case("lstm", False, None)
    x = torch.randn(5, 6, x.shape[-1], dtype=torch.float64)
    hx = [torch.zeros(5, h.shape[-1], dtype=torch.float64) for h in hx]
    lengths = torch.tensor([6, 3, 0, 1, 5])
    mask = torch.arange(6) < lengths[:, None]
    inputs = [x, *weights]
    for t in inputs:
        t.requires_grad_()
    got = ops.right_padded_call(x, mask, lengths, hx, weights, "lstm", True, True, zero_output, zero_states=True)
    want = ops._masked_steps(x, mask, hx, weights, "lstm", True, True, zero_output)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
    probes = [torch.randn_like(t) for t in got]
    for g, w in zip(torch.autograd.grad(got, inputs, probes), torch.autograd.grad(want, inputs, probes)):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)


@pytest.mark.parametrize("make", [lambda: rnnkit.LSTM(128, return_sequences=True, return_state=True),
                                  lambda: rnnkit.GRU(8, return_sequences=True, return_state=True, use_fused=True)])
def test_an_empty_batch_with_a_mask_gives_empty_results(make, monkeypatch):
    """Batch 0 with a right-padded mask on torch's kernels (LSTM above 64 units; GRU with the native kernel
    unavailable): empty outputs and states, as without a mask."""
    from rnnkit.kernels import native

    monkeypatch.setattr(native, "_STATUS", ["turned off for this test"])
    layer = make()
    x = torch.randn(0, 5, 2)
    with torch.no_grad():
        out, *states = layer(x, mask=torch.ones(0, 5, dtype=torch.bool))
    assert out.shape == (0, 5, layer.cell.units) and all(s.shape == (0, layer.cell.units) for s in states)
