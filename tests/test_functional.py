"""rnnkit.functional: TF 1.x static/dynamic (bidirectional) rnn, against the cell stepped by hand."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.functional import (
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    reverse_sequence,
    static_bidirectional_rnn,
    static_rnn,
)

B, T, F = 4, 5, 3
LENGTHS = [T, 3, 0, 1]  # full, partial, empty, one step
ATOL = 1e-6


def make_cell(kind, units=4, seed=0):
    torch.manual_seed(seed)
    cell = {"lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell, "simple": rnnkit.SimpleRNNCell}[kind](units)
    cell.build((None, F))
    # non-zero biases so that a zero state or a skipped step shows up in the numbers
    with torch.no_grad():
        cell.bias.uniform_(-0.5, 0.5)
    return cell


def random_state(kind, units=4, seed=1, batch=B):
    g = torch.Generator().manual_seed(seed)
    if kind == "lstm":
        return [torch.randn(batch, units, generator=g), torch.randn(batch, units, generator=g)]
    return torch.randn(batch, units, generator=g)


def as_list(state):
    return list(state) if isinstance(state, (list, tuple)) else [state]


def row_state(state, b):
    return [s[b : b + 1] for s in as_list(state)]


def hand_run(cell, steps, state):
    """Step ``cell`` by hand over ``steps`` (list of (1, F) tensors); returns (outputs list, state list)."""
    outs = []
    state = list(state)
    for x_t in steps:
        y, state = cell(x_t, state)
        state = as_list(state)
        outs.append(y[0])
    return outs, state


def reference(cell, x, lengths, init, units):
    """Per row: outputs (B, T, U) zero past L, final state list; the TF forward rule by hand."""
    outs = torch.zeros(x.shape[0], x.shape[1], units)
    finals = []
    for b, L in enumerate(lengths):
        ys, st = hand_run(cell, [x[b : b + 1, t] for t in range(L)], row_state(init, b))
        for t, y in enumerate(ys):
            outs[b, t] = y
        finals.append(st)
    states = [torch.cat([f[i] for f in finals]) for i in range(len(finals[0]))]
    return outs, states


def reference_bw(cell, x, lengths, init, units):
    """Per row: reverse the valid part, run forward, put output of x[L-1-t..] back at position t."""
    outs = torch.zeros(x.shape[0], x.shape[1], units)
    finals = []
    for b, L in enumerate(lengths):
        ys, st = hand_run(cell, [x[b : b + 1, t] for t in reversed(range(L))], row_state(init, b))
        for k, y in enumerate(ys):
            outs[b, L - 1 - k] = y
        finals.append(st)
    states = [torch.cat([f[i] for f in finals]) for i in range(len(finals[0]))]
    return outs, states


def assert_close(a, b, atol=ATOL):
    a = a.detach() if isinstance(a, torch.Tensor) else torch.as_tensor(a)
    b = b.detach() if isinstance(b, torch.Tensor) else torch.as_tensor(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def assert_state(got, expected_list, kind):
    if kind == "lstm":
        assert isinstance(got, list) and len(got) == 2
    else:
        assert isinstance(got, torch.Tensor), "a single-state cell returns the tensor itself"
    for g, e in zip(as_list(got), expected_list):
        assert_close(g, e)


def inputs(seed=2, batch=B, steps=T):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, F, generator=g)


KINDS = ["lstm", "gru", "simple"]


# ------------------------------------------------------------------ dynamic_rnn
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_rnn_matches_hand_stepping(kind, time_major):
    cell, x, init = make_cell(kind), inputs(), random_state(kind)
    lengths = torch.tensor(LENGTHS)
    xin = x.transpose(0, 1).contiguous() if time_major else x
    out, state = dynamic_rnn(cell, xin, sequence_length=lengths, initial_state=init, time_major=time_major)
    ref_out, ref_state = reference(cell, x, LENGTHS, init, 4)
    if time_major:
        assert out.shape == (T, B, 4)
        out = out.transpose(0, 1)
    assert_close(out, ref_out)
    assert_state(state, ref_state, kind)
    # the zero-length row keeps its initial state exactly; padded outputs are exactly zero
    for s, s0 in zip(as_list(state), as_list(init)):
        assert torch.equal(s[2], s0[2])
    assert torch.count_nonzero(out[1, 3:]) == 0 and torch.count_nonzero(out[2]) == 0
    assert torch.count_nonzero(out[0]) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_rnn_without_sequence_length_runs_every_step(kind):
    cell, x = make_cell(kind), inputs()
    out, state = dynamic_rnn(cell, x)
    zeros = [torch.zeros(B, 4)] * (2 if kind == "lstm" else 1)
    ref_out, ref_state = reference(cell, x, [T] * B, zeros if kind == "lstm" else zeros[0], 4)
    assert_close(out, ref_out)
    assert_state(state, ref_state, kind)
    # a full-length sequence_length is the same as none
    out2, state2 = dynamic_rnn(cell, x, sequence_length=[T] * B)
    assert_close(out2, out)


def test_dynamic_rnn_state_is_state_at_last_valid_step_not_last_step():
    cell, x = make_cell("gru"), inputs()
    _, state = dynamic_rnn(cell, x, sequence_length=[2, 2, 2, 2])
    out_full, _ = dynamic_rnn(cell, x)
    assert_close(state, out_full[:, 1])
    assert not torch.allclose(state, out_full[:, -1])


def test_dynamic_rnn_agrees_with_rnn_layer_under_mask():
    cell = make_cell("lstm")
    layer = rnnkit.RNN(cell, return_sequences=True, return_state=True, zero_output_for_mask=True)
    x = inputs()
    mask = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]
    y, h, c = layer(x, mask=mask)
    out, (h2, c2) = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    assert_close(out, y, atol=1e-5)
    assert_close(h2, h, atol=1e-5)
    assert_close(c2, c, atol=1e-5)


# ------------------------------------------------------------------- static_rnn
@pytest.mark.parametrize("kind", KINDS)
def test_static_rnn_matches_hand_stepping(kind):
    cell, x, init = make_cell(kind), inputs(), random_state(kind)
    outs, state = static_rnn(cell, [x[:, t] for t in range(T)], initial_state=init,
                             sequence_length=torch.tensor(LENGTHS, dtype=torch.int32))
    assert isinstance(outs, list) and len(outs) == T
    assert all(o.shape == (B, 4) for o in outs)
    ref_out, ref_state = reference(cell, x, LENGTHS, init, 4)
    for t in range(T):
        assert_close(outs[t], ref_out[:, t])
    assert_state(state, ref_state, kind)


def test_static_rnn_equals_dynamic_rnn():
    cell, x = make_cell("lstm"), inputs()
    outs, (h, c) = static_rnn(cell, list(x.unbind(1)), sequence_length=np.array(LENGTHS, dtype=np.int64))
    out, (h2, c2) = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    assert_close(torch.stack(outs, 1), out)
    assert_close(h, h2)
    assert_close(c, c2)


def test_static_rnn_accepts_numpy_steps_and_tuple():
    cell, x = make_cell("simple"), inputs()
    outs, state = static_rnn(cell, tuple(x[:, t].numpy() for t in range(T)))
    ref_out, ref_state = reference(cell, x, [T] * B, torch.zeros(B, 4), 4)
    assert_close(torch.stack(outs, 1), ref_out)
    assert_close(state, ref_state[0])


# ------------------------------------------------------ bidirectional_dynamic_rnn
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("kinds", [("lstm", "gru"), ("gru", "simple"), ("simple", "lstm")])
def test_bidirectional_dynamic_rnn_matches_hand_stepping(kinds, time_major):
    kf, kb = kinds
    cell_fw, cell_bw = make_cell(kf, 4, seed=0), make_cell(kb, 3, seed=5)
    init_fw, init_bw = random_state(kf, 4, seed=1), random_state(kb, 3, seed=7)
    x = inputs()
    xin = x.transpose(0, 1).contiguous() if time_major else x
    (out_fw, out_bw), (st_fw, st_bw) = bidirectional_dynamic_rnn(
        cell_fw, cell_bw, xin, sequence_length=torch.tensor(LENGTHS),
        initial_state_fw=init_fw, initial_state_bw=init_bw, time_major=time_major,
    )
    if time_major:
        assert out_fw.shape == (T, B, 4) and out_bw.shape == (T, B, 3)
        out_fw, out_bw = out_fw.transpose(0, 1), out_bw.transpose(0, 1)
    ref_fw, ref_st_fw = reference(cell_fw, x, LENGTHS, init_fw, 4)
    ref_bw, ref_st_bw = reference_bw(cell_bw, x, LENGTHS, init_bw, 3)
    assert_close(out_fw, ref_fw)
    assert_close(out_bw, ref_bw)
    assert_state(st_fw, ref_st_fw, kf)
    assert_state(st_bw, ref_st_bw, kb)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_output_at_t_has_read_the_valid_part_from_its_end_down_to_t(kind):
    cell_fw, cell_bw = make_cell(kind, seed=0), make_cell(kind, seed=3)
    x, init = inputs(), random_state(kind, seed=9)
    (_, out_bw), _ = bidirectional_dynamic_rnn(cell_fw, cell_bw, x, sequence_length=LENGTHS,
                                               initial_state_bw=init)
    for b, L in enumerate(LENGTHS):
        for t in range(T):
            if t >= L:
                assert torch.count_nonzero(out_bw[b, t]) == 0
                continue
            ys, _ = hand_run(cell_bw, [x[b : b + 1, s] for s in range(L - 1, t - 1, -1)], row_state(init, b))
            assert_close(out_bw[b, t], ys[-1])
    # the valid-part reversal is not the plain flip of the whole padded row
    (_, flipped), _ = bidirectional_dynamic_rnn(cell_fw, cell_bw, x, initial_state_bw=init)
    assert not torch.allclose(out_bw[1, :3], flipped[1, :3], atol=1e-3)
    # with full lengths the rule is the plain flip
    assert_close(out_bw[0], flipped[0])


def test_bidirectional_dynamic_rnn_returns_nested_tuples_and_same_cell_twice():
    cell = make_cell("gru")
    x = inputs()
    result = bidirectional_dynamic_rnn(cell, cell, x, sequence_length=LENGTHS)
    assert isinstance(result, tuple) and len(result) == 2
    (out_fw, out_bw), (st_fw, st_bw) = result
    ref_bw, ref_st_bw = reference_bw(cell, x, LENGTHS, torch.zeros(B, 4), 4)
    assert_close(out_bw, ref_bw)
    assert_close(st_bw, ref_st_bw[0])


def test_bidirectional_dynamic_rnn_agrees_with_bidirectional_layer():
    cell = make_cell("lstm")
    layer = rnnkit.Bidirectional(rnnkit.RNN(cell, return_sequences=True))
    x = inputs()
    mask = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]
    y = layer(x, mask=mask)
    fw_cell, bw_cell = layer.forward_layer.cell, layer.backward_layer.cell
    (out_fw, out_bw), _ = bidirectional_dynamic_rnn(fw_cell, bw_cell, x, sequence_length=LENGTHS)
    assert_close(torch.cat([out_fw, out_bw], -1), y, atol=1e-5)


# ----------------------------------------------------------- static_bidirectional_rnn
@pytest.mark.parametrize("kinds", [("lstm", "lstm"), ("gru", "simple")])
def test_static_bidirectional_rnn_matches_hand_stepping(kinds):
    kf, kb = kinds
    cell_fw, cell_bw = make_cell(kf, 4, seed=0), make_cell(kb, 2, seed=4)
    init_fw, init_bw = random_state(kf, 4, seed=1), random_state(kb, 2, seed=8)
    x = inputs()
    outs, st_fw, st_bw = static_bidirectional_rnn(
        cell_fw, cell_bw, list(x.unbind(1)), initial_state_fw=init_fw, initial_state_bw=init_bw,
        sequence_length=LENGTHS,
    )
    assert len(outs) == T and all(o.shape == (B, 6) for o in outs)
    ref_fw, ref_st_fw = reference(cell_fw, x, LENGTHS, init_fw, 4)
    ref_bw, ref_st_bw = reference_bw(cell_bw, x, LENGTHS, init_bw, 2)
    for t in range(T):
        assert_close(outs[t][:, :4], ref_fw[:, t])
        assert_close(outs[t][:, 4:], ref_bw[:, t])
    assert_state(st_fw, ref_st_fw, kf)
    assert_state(st_bw, ref_st_bw, kb)


def test_static_bidirectional_rnn_without_lengths_is_full_flip():
    cell_fw, cell_bw = make_cell("simple", seed=0), make_cell("simple", seed=1)
    x = inputs()
    outs, _, st_bw = static_bidirectional_rnn(cell_fw, cell_bw, list(x.unbind(1)))
    ref_bw, ref_st = reference_bw(cell_bw, x, [T] * B, torch.zeros(B, 4), 4)
    assert_close(torch.stack(outs, 1)[..., 4:], ref_bw)
    assert_close(st_bw, ref_st[0])


# ----------------------------------------------------------------- states, cells
def test_single_state_accepted_as_tensor_or_list():
    cell, x, h0 = make_cell("gru"), inputs(), random_state("gru")
    out_a, st_a = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=h0)
    out_b, st_b = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=[h0])
    out_c, _ = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    assert isinstance(st_a, torch.Tensor) and isinstance(st_b, torch.Tensor)
    assert_close(out_a, out_b)
    assert_close(st_a, st_b)
    assert not torch.allclose(out_a[0], out_c[0])  # the initial state is used


def test_stacked_cells_nested_state():
    torch.manual_seed(0)
    cell = rnnkit.StackedRNNCells([rnnkit.LSTMCell(4), rnnkit.GRUCell(3)])
    x = inputs()
    init = [[torch.randn(B, 4), torch.randn(B, 4)], torch.randn(B, 3)]
    out, state = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=init)
    assert out.shape == (B, T, 3)
    assert isinstance(state, list) and len(state) == 2 and len(state[0]) == 2
    for b, L in enumerate(LENGTHS):
        st = [[init[0][0][b : b + 1], init[0][1][b : b + 1]], init[1][b : b + 1]]
        for t in range(L):
            y, st = cell(x[b : b + 1, t], st)
            assert_close(out[b, t], y[0])
        assert torch.count_nonzero(out[b, L:]) == 0
        assert_close(state[0][0][b], st[0][0][0])
        assert_close(state[0][1][b], st[0][1][0])
        assert_close(state[1][b], st[1][0])
    # a flat list of leaf states is accepted too
    out2, _ = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=[init[0][0], init[0][1], init[1]])
    assert_close(out2, out)


class MinimalRNNCell(torch.nn.Module):
    """A plain torch cell: state_size and (inputs, states) -> (output, states), no rnnkit base."""

    state_size = 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.w = torch.nn.Parameter(torch.randn(F, 2))
        self.u = torch.nn.Parameter(torch.randn(2, 2))

    def forward(self, x, states):
        h = torch.tanh(x @ self.w + states[0] @ self.u)
        return h, [h]


def test_user_cell_without_rnnkit_base():
    cell, x = MinimalRNNCell(), inputs()
    h0 = torch.randn(B, 2)
    out, state = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=h0)
    ref_out, ref_state = reference(cell, x, LENGTHS, h0, 2)
    assert_close(out, ref_out)
    assert_close(state, ref_state[0])


def test_cell_builds_lazily_on_first_call():
    cell = rnnkit.LSTMCell(5)
    assert not cell.built
    out, (h, c) = dynamic_rnn(cell, inputs(), sequence_length=LENGTHS)
    assert cell.built and tuple(cell.kernel.shape) == (F, 20)
    assert out.shape == (B, T, 5) and h.shape == (B, 5)
    cell2 = rnnkit.GRUCell(2)
    outs, _ = static_rnn(cell2, list(inputs().unbind(1)))
    assert cell2.built and len(outs) == T


def test_float64_cell_casts_inputs():
    torch.manual_seed(0)
    cell = rnnkit.SimpleRNNCell(3, dtype="float64")
    out, state = dynamic_rnn(cell, inputs().numpy(), sequence_length=LENGTHS)
    assert out.dtype == torch.float64 and state.dtype == torch.float64


def test_reverse_sequence():
    x = torch.arange(B * T, dtype=torch.float32).reshape(B, T)
    lengths = torch.tensor(LENGTHS)
    r = reverse_sequence(x, lengths)
    expected = torch.tensor([[4, 3, 2, 1, 0], [7, 6, 5, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19]],
                            dtype=torch.float32)
    assert torch.equal(r, expected)
    assert torch.equal(reverse_sequence(r, lengths), x)
    assert torch.equal(reverse_sequence(x.t(), lengths, time_axis=0), expected.t())
    assert torch.equal(reverse_sequence(x, None), x.flip(1))


# ------------------------------------------------------------------- gradients
def test_gradients_match_hand_stepping_and_stop_at_padding():
    cell, x = make_cell("lstm"), inputs()
    init = [s.requires_grad_() for s in random_state("lstm")]
    xg = x.clone().requires_grad_()
    out, (h, c) = dynamic_rnn(cell, xg, sequence_length=LENGTHS, initial_state=init)
    loss = (out ** 2).sum() + (h * 3).sum() + c.sum()
    gx, gh0, gk = torch.autograd.grad(loss, [xg, init[0], cell.kernel])
    xr = x.clone().requires_grad_()
    ref_out, (rh, rc) = reference(cell, xr, LENGTHS, init, 4)
    ref_loss = (ref_out ** 2).sum() + (rh * 3).sum() + rc.sum()
    rgx, rgh0, rgk = torch.autograd.grad(ref_loss, [xr, init[0], cell.kernel])
    assert_close(gx, rgx, atol=1e-5)
    assert_close(gh0, rgh0, atol=1e-5)
    assert_close(gk, rgk, atol=1e-5)
    assert gk.abs().sum() > 0 and gx[0].abs().sum() > 0
    assert torch.count_nonzero(gx[1, 3:]) == 0 and torch.count_nonzero(gx[2]) == 0
    # the zero-length row's state is its initial state: gradient 3 per unit of h
    assert_close(gh0[2], torch.full((4,), 3.0))


def test_gradients_flow_through_both_directions():
    cell_fw, cell_bw = make_cell("gru", seed=0), make_cell("simple", seed=1)
    x = inputs().requires_grad_()
    outs, st_fw, st_bw = static_bidirectional_rnn(cell_fw, cell_bw, list(x.unbind(1)), sequence_length=LENGTHS)
    torch.stack(outs).sum().backward()
    assert cell_fw.kernel.grad.abs().sum() > 0 and cell_bw.kernel.grad.abs().sum() > 0
    assert x.grad[0].abs().sum() > 0
    assert torch.count_nonzero(x.grad[1, 3:]) == 0 and torch.count_nonzero(x.grad[2]) == 0


# ---------------------------------------------------------------------- errors
def _raises(exc, *fragments):
    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *a):
            handled = self.ctx.__exit__(*a)
            msg = str(self.info.value)
            for f in fragments:
                assert f in msg, f"{f!r} not in {msg!r}"
            return handled

    return _Ctx()


@pytest.mark.parametrize(
    "lengths, fragments",
    [
        (torch.tensor([1, 2, 3]), ["shape (batch,) = (4,)", "got shape (3,)"]),
        (torch.tensor([[1], [2], [3], [4]]), ["shape (batch,) = (4,)", "got shape (4, 1)"]),
        (3, ["shape (batch,) = (4,)", "got shape ()"]),
        (torch.tensor([1.0, 2.0, 3.0, 4.0]), ["integer dtype", "torch.float32"]),
        (np.array([1.0, 2.0, 3.0, 4.0]), ["integer dtype", "float64"]),
        (torch.tensor([True, True, False, True]), ["integer dtype", "torch.bool"]),
        ([1.5, 2, 3, 4], ["integer dtype", "float64"]),
        (torch.tensor([1, -1, 2, 3]), ["[0, 5]", "[-1]"]),
        (torch.tensor([1, 6, 2, 3]), ["[0, 5]", "[6]"]),
        ("abcd", ["integer tensor", "str"]),
    ],
)
@pytest.mark.parametrize("fn", ["dynamic", "static", "bidi_dynamic", "bidi_static"])
def test_bad_sequence_length(fn, lengths, fragments):
    cell, x = make_cell("gru"), inputs()
    call = {
        "dynamic": lambda: dynamic_rnn(cell, x, sequence_length=lengths),
        "static": lambda: static_rnn(cell, list(x.unbind(1)), sequence_length=lengths),
        "bidi_dynamic": lambda: bidirectional_dynamic_rnn(cell, cell, x, sequence_length=lengths),
        "bidi_static": lambda: static_bidirectional_rnn(cell, cell, list(x.unbind(1)), sequence_length=lengths),
    }[fn]
    with _raises(ValueError, "sequence_length", *fragments):
        call()


def test_bad_input_rank_and_steps():
    cell = make_cell("gru")
    with _raises(ValueError, "dynamic_rnn", "rank 3", "(batch, max_time, features...)", "(4, 3)"):
        dynamic_rnn(cell, torch.zeros(4, 3))
    with _raises(ValueError, "(max_time, batch, features...)", "(4, 3)"):
        bidirectional_dynamic_rnn(cell, cell, torch.zeros(4, 3), time_major=True)
    with _raises(ValueError, "at least one timestep", "(4, 0, 3)"):
        dynamic_rnn(cell, torch.zeros(4, 0, 3))
    with _raises(ValueError, "static_rnn", "inputs[1]", "rank 2", "(4,)"):
        static_rnn(cell, [torch.zeros(4, 3), torch.zeros(4)])
    with _raises(ValueError, "same shape", "(4, 3)", "(2, 3)"):
        static_rnn(cell, [torch.zeros(4, 3), torch.zeros(2, 3)])
    with _raises(ValueError, "static_rnn", "non-empty", "empty list"):
        static_rnn(cell, [])
    with _raises(ValueError, "static_bidirectional_rnn", "empty list"):
        static_bidirectional_rnn(cell, cell, [])
    with _raises(TypeError, "list of T tensors", "Tensor"):
        static_rnn(cell, torch.zeros(4, 5, 3))


def test_bad_initial_state():
    x = inputs()
    gru, lstm = make_cell("gru"), make_cell("lstm")
    with _raises(ValueError, "dynamic_rnn", "initial_state[0]", "(4, 4)", "(3, 4)"):
        dynamic_rnn(gru, x, initial_state=torch.zeros(3, 4))
    with _raises(ValueError, "initial_state[0]", "(4, 4)", "(4, 5)"):
        static_rnn(gru, list(x.unbind(1)), initial_state=torch.zeros(4, 5))
    with _raises(ValueError, "2 state tensor(s)", "got 1"):
        dynamic_rnn(lstm, x, initial_state=torch.zeros(4, 4))
    with _raises(ValueError, "initial_state[1]", "(4, 4)", "(4, 2)"):
        dynamic_rnn(lstm, x, initial_state=[torch.zeros(4, 4), torch.zeros(4, 2)])
    with _raises(ValueError, "bidirectional_dynamic_rnn", "initial_state_bw[0]", "(4, 4)", "(1, 4)"):
        bidirectional_dynamic_rnn(gru, gru, x, initial_state_bw=torch.zeros(1, 4))
    with _raises(ValueError, "static_bidirectional_rnn", "initial_state_fw[0]", "(4, 4)", "(4, 1)"):
        static_bidirectional_rnn(gru, gru, list(x.unbind(1)), initial_state_fw=torch.zeros(4, 1))


def test_cell_without_state_size():
    with _raises(ValueError, "cell_bw", "state_size", "Linear"):
        bidirectional_dynamic_rnn(make_cell("gru"), torch.nn.Linear(3, 3), inputs())
    with _raises(ValueError, "dynamic_rnn", "state_size", "Linear"):
        dynamic_rnn(torch.nn.Linear(3, 3), inputs())
