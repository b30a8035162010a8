"""``rnnkit.kernels.held``: the held input and held outputs of masked LSTM batches, native passes vs torch twins.

The native passes must give the torch twins' numbers (forward exactly; gradients as the native backward defines
them, checked against the same formula in torch ops, by gradcheck, and end to end through a masked layer
against the twins and against the generic loop).
"""

import pytest
import torch

import rnnkit
from rnnkit.kernels import held, native

pytestmark = pytest.mark.skipif(native.unavailable() is not None, reason="the native kernel cannot be built here")

LENGTHS = torch.tensor([6, 2, 0, 4, 1])


def _padded(lengths=LENGTHS, steps=6):
    return torch.arange(steps) >= lengths[:, None]


def _out(dtype, time_major=True, lengths=LENGTHS, units=3):
    """A kernel-like output: a batch-first view of time-major memory (as torch's kernels return it) or contiguous;
    its padded steps hold values nothing may read."""
    padded = _padded(lengths)
    base = torch.randn(padded.shape[1], padded.shape[0], units, dtype=dtype)
    out = base.transpose(0, 1) if time_major else base.transpose(0, 1).contiguous()
    return out.requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("hold", [True, False])
def test_hold_input_is_its_twin(dtype, layout, hold):
    padded = _padded()
    x = torch.randn(6, 5, 4, dtype=dtype).transpose(0, 1)
    if layout == "contiguous":
        x = x.contiguous()
    x[padded] = float("nan")  # whatever the padding holds never reaches a result
    x.requires_grad_()
    ours, twin = held.hold_input(x, padded, hold), held.hold_input_torch(x, padded, hold)
    assert ours.shape[-1] == 4 + hold
    assert torch.equal(ours, twin) and torch.isfinite(ours).all()
    grad = torch.randn_like(ours)
    assert torch.equal(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(twin, x, grad)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("time_major", [True, False])
@pytest.mark.parametrize("repeat", [True, False])
def test_held_outputs_are_their_twin(dtype, time_major, repeat):
    padded, out = _padded(), _out(dtype, time_major)
    outputs, last = held.held_outputs(out, LENGTHS, padded, repeat)
    twin_outputs, twin_last = held.held_outputs_torch(out, LENGTHS, padded, repeat)
    assert torch.equal(outputs, twin_outputs) and torch.equal(last, twin_last)
    assert outputs.stride() == out.stride()  # laid out as the kernel's output
    g_outputs, g_last = torch.randn_like(outputs), torch.randn_like(last)
    for grads in ([g_outputs, g_last], [g_outputs, None], [None, g_last]):
        used = [(t, g) for t, g in zip((outputs, last), grads) if g is not None]
        ours = torch.autograd.grad([t for t, _ in used], out, [g for _, g in used], retain_graph=True)[0]
        expected = held._held_outputs_grad(*grads, LENGTHS, padded, repeat, out.shape)
        torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
        assert ours[padded].abs().max() == 0  # nothing flows into the held steps
        assert ours.stride() == out.stride()


def test_gradcheck_and_gradgradcheck():
    padded = _padded()
    x = torch.randn(5, 6, 2, dtype=torch.float64, requires_grad=True)
    for hold in (True, False):
        assert torch.autograd.gradcheck(lambda t: held.hold_input(t, padded, hold), (x,))
        assert torch.autograd.gradgradcheck(lambda t: held.hold_input(t, padded, hold), (x,))
    out = _out(torch.float64)
    for repeat in (True, False):
        assert torch.autograd.gradcheck(lambda t: held.held_outputs(t, LENGTHS, padded, repeat), (out,))
        assert torch.autograd.gradgradcheck(lambda t: held.held_outputs(t, LENGTHS, padded, repeat), (out,))


def _masked_lstm_results(go_backwards, zero_output, return_state=True, use_fused="auto"):
    torch.manual_seed(0)
    # (65 units: torch's kernel, not rnnkit's native loop, which reads masks itself)
    layer = rnnkit.LSTM(65, return_sequences=True, return_state=return_state, go_backwards=go_backwards,
                        zero_output_for_mask=zero_output, use_fused=use_fused)
    layer.build((5, 6, 3))
    layer.double()
    x = torch.randn(5, 6, 3, dtype=torch.float64, requires_grad=True)
    results = layer(x, mask=~_padded())
    results = results if return_state else [results]
    probes = [torch.randn(r.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
              for i, r in enumerate(results)]
    grads = torch.autograd.grad(results, [x, *layer.parameters()], probes)
    return [*results, *grads]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("return_state", [True, False])
def test_a_masked_lstm_layer_gives_the_twins_numbers(monkeypatch, go_backwards, zero_output, return_state):
    """End to end (outputs, states, gradients of inputs and weights), forward and backwards from zero states; without
    states to return the cell state is not held."""
    calls = []
    real = held._native
    monkeypatch.setattr(held, "_native", lambda t: calls.append(t.shape) or real(t))
    ours = _masked_lstm_results(go_backwards, zero_output, return_state)
    assert calls  # the held passes ran
    monkeypatch.setattr(held, "_native", lambda t: False)
    twins = _masked_lstm_results(go_backwards, zero_output, return_state)
    for a, b in zip(ours, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("return_state", [True, False])
def test_a_masked_lstm_layer_gives_the_generic_loops_numbers(go_backwards, zero_output, return_state):
    fused = _masked_lstm_results(go_backwards, zero_output, return_state)
    loop = _masked_lstm_results(go_backwards, zero_output, return_state, use_fused=False)
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("return_state", [True, False])
def test_backwards_from_zero_states_runs_the_flipped_input_as_it_is(monkeypatch, return_state):
    """The path note: a backwards right-padded LSTM from zero states holds its leading padding (one kernel call on
    the flipped input), whether or not it returns states; reversing each row's valid part is the slower way."""
    from rnnkit.kernels import ops

    def refuse(*args):
        raise AssertionError("reverse_valid ran")

    monkeypatch.setattr(ops, "reverse_valid", refuse)
    _masked_lstm_results(go_backwards=True, zero_output=False, return_state=return_state)


def test_held_outputs_of_an_output_whose_last_axis_is_strided():
    """(Not what torch's kernels return, but ``held_outputs`` takes it: read through a copy, the gradient laid
    out as the copy.)"""
    padded, base = _padded(), _out(torch.float64, time_major=False)
    out = base.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()  # last-axis stride != 1
    outputs, last = held.held_outputs(out, LENGTHS, padded, True)
    twin_outputs, twin_last = held.held_outputs_torch(out, LENGTHS, padded, True)
    assert torch.equal(outputs, twin_outputs) and torch.equal(last, twin_last)
    grad = torch.autograd.grad([outputs, last], out, [torch.ones_like(outputs), torch.ones_like(last)])[0]
    torch.testing.assert_close(grad, held._held_outputs_grad(torch.ones_like(outputs), torch.ones_like(last),
                                                             LENGTHS, padded, True, out.shape))
