"""``rnnkit.rnn``: the generic loop, checked against Keras 3's torch backend ``rnn``.

The oracle is ``keras.src.backend.torch.rnn.rnn`` called with the very same step
functions. Keras runs its step function once more than needed (a "time zero"
probe); that is not observable in the numbers, only in call counts.
"""

import itertools

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED

import rnnkit
from rnnkit.core.sequences import lengths_to_mask

B, T, F, U = 3, 6, 4, 5  # the conftest masks are (3, 6)
DT = torch.float64


@pytest.fixture(scope="module")
def keras_rnn(keras):
    from keras.src.backend.torch.rnn import rnn

    return rnn


def _w(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=DT) - 0.5) * 0.8


W = _w(F, U, seed=1)
W2 = _w(F, U, seed=2)
UU = _w(U, U, seed=3)
UC = _w(U, U, seed=4)
BIAS = _w(U, seed=5)
VC = _w(2, U, seed=6)  # constants (batch, 2) -> U


# --------------------------------------------------------------- step functions
def step_simple(x, states):
    h = torch.tanh(x @ W + states[0] @ UU + BIAS)
    return h, [h]


def step_two_states(x, states):
    h, c = states[0], states[1]
    c_new = torch.sigmoid(x @ W2) * c + torch.tanh(x @ W + h @ UU)
    h_new = torch.tanh(c_new) * torch.sigmoid(h @ UC)
    return h_new * 2.0, [h_new, c_new]  # output differs from the state


def step_nested(x, states):
    h, (a, b) = states[0], states[1]
    h_new = torch.tanh(x @ W + h @ UU + a @ UC)
    a_new = 0.5 * a + 0.5 * torch.tanh(x @ W2)
    b_new = b + h_new
    return h_new, [h_new, [a_new, b_new]]


def step_constants(x, states):
    h, c = states[0], states[1]  # states + constants: one state, one constant
    h_new = torch.tanh(x @ W + h @ UU + c @ VC)
    return h_new, [h_new]


def _initial(kind):
    g = torch.Generator().manual_seed(11)
    r = lambda *s: torch.rand(s, generator=g, dtype=DT) - 0.5  # noqa: E731
    if kind == "simple" or kind == "constants":
        return [r(B, U)]
    if kind == "two_states":
        return [r(B, U), r(B, U)]
    return [r(B, U), [r(B, U), r(B, U)]]


STEPS = {
    "simple": step_simple,
    "two_states": step_two_states,
    "nested": step_nested,
    "constants": step_constants,
}
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}


def _inputs(time_major=False, seed=0):
    x = torch.tensor(np.random.RandomState(seed).randn(B, T, F), dtype=DT)
    return x.transpose(0, 1).contiguous() if time_major else x


def _flat(s):
    if isinstance(s, (list, tuple)):
        return [leaf for item in s for leaf in _flat(item)]
    return [s]


def _assert_close(a, b, tol=1e-6):
    a = a.detach() if isinstance(a, torch.Tensor) else torch.as_tensor(a)
    b = b.detach() if isinstance(b, torch.Tensor) else torch.as_tensor(b)
    assert tuple(a.shape) == tuple(b.shape), (tuple(a.shape), tuple(b.shape))
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol, rtol=0)


# --------------------------------------------------------- against Keras's rnn
GRID = list(
    itertools.product(
        sorted(STEPS),
        [False, True],  # go_backwards
        sorted(MASKS),
        [False, True],  # zero_output_for_mask
        [True, False],  # return_all_outputs
        [False, True],  # time_major
    )
)


@pytest.mark.parametrize("kind,go_backwards,mask_name,zero_output,return_all,time_major", GRID)
def test_matches_keras_backend_rnn(keras_rnn, kind, go_backwards, mask_name, zero_output, return_all, time_major):
    x = _inputs(time_major)
    mask = MASKS[mask_name]
    if mask is not None:
        mask = torch.tensor(mask)
        if time_major:
            mask = mask.t().contiguous()
    constants = [torch.tensor(np.random.RandomState(3).randn(B, 2), dtype=DT)] if kind == "constants" else None
    kwargs = dict(
        go_backwards=go_backwards,
        mask=mask,
        constants=constants,
        time_major=time_major,
        zero_output_for_mask=zero_output,
        return_all_outputs=return_all,
    )
    step = STEPS[kind]
    # Keras derives the step count from inputs.shape[1], the *batch* axis when
    # time-major: give it the length explicitly.
    k_last, k_outputs, k_states = keras_rnn(step, x, _initial(kind), input_length=T, **kwargs)
    r_last, r_outputs, r_states = rnnkit.rnn(step, x, _initial(kind), **kwargs)

    _assert_close(r_last, k_last)
    _assert_close(r_outputs, k_outputs)
    assert isinstance(r_states, list)
    assert len(r_states) == len(_initial(kind))
    flat_r, flat_k = _flat(r_states), _flat(list(k_states))
    assert len(flat_r) == len(flat_k)
    for a, b in zip(flat_r, flat_k):
        _assert_close(a, b)
    # Nested state structure is kept.
    if kind == "nested":
        assert isinstance(r_states[1], (list, tuple)) and len(r_states[1]) == 2
    # Layout of outputs.
    n = T if return_all else 1
    assert tuple(r_outputs.shape) == ((n, B, U) if time_major else (B, n, U))


@pytest.mark.parametrize("mask_name", sorted(MASKS))
def test_float32_matches_keras(keras_rnn, mask_name):
    x = _inputs().float()
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name])
    w, u = W.float(), UU.float()

    def step(x_t, states):
        h = torch.tanh(x_t @ w + states[0] @ u)
        return h, [h]

    h0 = [torch.zeros(B, U)]
    k = keras_rnn(step, x, h0, mask=mask, go_backwards=True)
    r = rnnkit.rnn(step, x, h0, mask=mask, go_backwards=True)
    _assert_close(r[0], k[0])
    _assert_close(r[1], k[1])
    _assert_close(r[2][0], k[2][0])


# ------------------------------------------------------------------ hand-made
def test_masked_semantics_by_hand():
    """Masked steps carry the state and repeat the previous output (or zeros)."""
    x = torch.ones(1, 4, 1, dtype=DT)
    mask = torch.tensor([[True, False, True, False]])

    def step(x_t, states):
        s = states[0] + x_t
        return s * 10, [s]

    last, outs, states = rnnkit.rnn(step, x, [torch.zeros(1, 1, dtype=DT)], mask=mask)
    assert outs.flatten().tolist() == [10.0, 10.0, 20.0, 20.0]
    assert states[0].item() == 2.0
    assert last.item() == 20.0
    last, outs, states = rnnkit.rnn(step, x, [torch.zeros(1, 1, dtype=DT)], mask=mask, zero_output_for_mask=True)
    assert outs.flatten().tolist() == [10.0, 0.0, 20.0, 0.0]
    assert last.item() == 0.0
    assert states[0].item() == 2.0
    # First step masked: previous output is zeros.
    mask = torch.tensor([[False, True, True, True]])
    _, outs, states = rnnkit.rnn(step, x, [torch.full((1, 1), 5.0, dtype=DT)], mask=mask)
    assert outs.flatten().tolist() == [0.0, 60.0, 70.0, 80.0]
    assert states[0].item() == 8.0


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_step_called_exactly_T_times(keras_rnn, mask_name, go_backwards):
    x = _inputs()
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name])
    calls = []

    def step(x_t, states):
        calls.append(x_t)
        return step_simple(x_t, states)

    rnnkit.rnn(step, x, _initial("simple"), mask=mask, go_backwards=go_backwards)
    assert len(calls) == T
    # Each call sees one timestep, in processing order.
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    for got, t in zip(calls, order):
        assert torch.equal(got, x[:, t])
    # Keras's backend probes the step once more ("time zero"): the difference
    # this test guards.
    calls.clear()
    keras_rnn(step, x, _initial("simple"), mask=mask, go_backwards=go_backwards)
    assert len(calls) == T + 1


def test_step_count_with_int_input_length():
    calls = []

    def step(x_t, states):
        calls.append(1)
        return step_simple(x_t, states)

    x = _inputs()
    last, outs, states = rnnkit.rnn(step, x, _initial("simple"), input_length=4)
    assert len(calls) == 4
    ref = rnnkit.rnn(step_simple, x[:, :4], _initial("simple"))
    _assert_close(last, ref[0])
    _assert_close(outs, ref[1])
    _assert_close(states[0], ref[2][0])


@pytest.mark.parametrize("time_major", [False, True])
def test_go_backwards_outputs_in_processing_order(time_major):
    """With go_backwards the first output belongs to the last timestep."""
    x = torch.arange(B * T, dtype=DT).reshape(B, T, 1)

    def step(x_t, states):
        s = states[0] + x_t
        return x_t.clone(), [s]

    xin = x.transpose(0, 1) if time_major else x
    last, outs, states = rnnkit.rnn(step, xin, [torch.zeros(B, 1, dtype=DT)], go_backwards=True, time_major=time_major)
    expected = torch.flip(xin, [0 if time_major else 1])
    assert torch.equal(outs, expected)
    assert torch.equal(last, x[:, 0])  # last processed = first timestep
    assert torch.equal(states[0], x.sum(1))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
def test_input_length_tensor_is_a_right_padded_mask(go_backwards, time_major):
    lengths = torch.tensor([6, 4, 2])
    x = _inputs(time_major)
    mask = torch.tensor(MASK_RIGHT_PADDED)
    assert torch.equal(lengths_to_mask(lengths, T), mask)
    if time_major:
        mask = mask.t()
    for zero in (False, True):
        a = rnnkit.rnn(step_two_states, x, _initial("two_states"), input_length=lengths,
                       go_backwards=go_backwards, time_major=time_major, zero_output_for_mask=zero)
        b = rnnkit.rnn(step_two_states, x, _initial("two_states"), mask=mask,
                       go_backwards=go_backwards, time_major=time_major, zero_output_for_mask=zero)
        _assert_close(a[0], b[0], 0)
        _assert_close(a[1], b[1], 0)
        for s, t in zip(a[2], b[2]):
            _assert_close(s, t, 0)
    # And it really masks: the short row's final state stops at step 2.
    if not time_major and not go_backwards:
        ref = rnnkit.rnn(step_simple, x[2:3, :2], [_initial("simple")[0][2:3]])
        got = rnnkit.rnn(step_simple, x, _initial("simple"), input_length=lengths)
        _assert_close(got[2][0][2:3], ref[2][0], 1e-12)


@pytest.mark.parametrize("mask_name", ["none", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_nested_list_inputs(keras_rnn, mask_name, go_backwards):
    x1 = _inputs(seed=1)
    x2 = torch.tensor(np.random.RandomState(2).randn(B, T, 2), dtype=DT)
    seen = []

    def step(inp, states):
        seen.append(type(inp))
        a, b = inp
        h = torch.tanh(a @ W + b @ VC + states[0] @ UU)
        return h, [h]

    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name])
    r = rnnkit.rnn(step, [x1, x2], _initial("simple"), mask=mask, go_backwards=go_backwards)
    assert seen and all(t is list for t in seen)
    k = keras_rnn(step, [x1, x2], _initial("simple"), mask=mask, go_backwards=go_backwards, input_length=T)
    _assert_close(r[0], k[0])
    _assert_close(r[1], k[1])
    _assert_close(r[2][0], k[2][0])


def test_unroll_gives_same_numbers():
    x = _inputs()
    mask = torch.tensor(MASK_HOLES)
    a = rnnkit.rnn(step_two_states, x, _initial("two_states"), mask=mask, go_backwards=True)
    b = rnnkit.rnn(step_two_states, x, _initial("two_states"), mask=mask, go_backwards=True, unroll=True)
    _assert_close(a[1], b[1], 0)
    _assert_close(a[2][1], b[2][1], 0)


def test_integer_mask_accepted():
    x = _inputs()
    a = rnnkit.rnn(step_simple, x, _initial("simple"), mask=torch.tensor(MASK_HOLES).long())
    b = rnnkit.rnn(step_simple, x, _initial("simple"), mask=torch.tensor(MASK_HOLES))
    _assert_close(a[1], b[1], 0)


# ----------------------------------------------------------------------- errors
def test_rank2_inputs_rejected():
    with pytest.raises(ValueError, match="rank"):
        rnnkit.rnn(step_simple, torch.zeros(B, F, dtype=DT), _initial("simple"))


def test_non_tensor_inputs_rejected():
    with pytest.raises(TypeError):
        rnnkit.rnn(step_simple, np.zeros((B, T, F)), _initial("simple"))


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(B, T + 1, dtype=torch.bool),  # too many steps
        torch.ones(B + 1, T, dtype=torch.bool),  # wrong batch
        torch.ones(T, B, dtype=torch.bool),  # time-major mask for batch-major inputs
        torch.ones(B, T, 1, dtype=torch.bool),  # rank 3
        torch.ones(B, dtype=torch.bool),  # rank 1
    ],
    ids=["time", "batch", "transposed", "rank3", "rank1"],
)
def test_mask_of_wrong_shape_rejected(mask):
    with pytest.raises(ValueError, match="mask"):
        rnnkit.rnn(step_simple, _inputs(), _initial("simple"), mask=mask)


def test_zero_timesteps_rejected():
    with pytest.raises(ValueError):
        rnnkit.rnn(step_simple, torch.zeros(B, 0, F, dtype=DT), _initial("simple"))


# -------------------------------------------------------------------- gradients
@pytest.mark.parametrize("mask_name", ["none", "holes", "right_padded"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output", [False, True])
def test_gradcheck(mask_name, go_backwards, zero_output):
    torch.manual_seed(0)
    b, t, f, u = 3, 6, 2, 2
    w = torch.randn(f, u, dtype=DT) * 0.5
    uu = torch.randn(u, u, dtype=DT) * 0.5
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name])

    def step(x_t, states):
        h = torch.tanh(x_t @ w + states[0] @ uu)
        return h * 1.5, [h]

    def fn(x, h0):
        last, outs, states = rnnkit.rnn(step, x, [h0], mask=mask, go_backwards=go_backwards,
                                        zero_output_for_mask=zero_output)
        return last, outs, states[0]

    x = torch.randn(b, t, f, dtype=DT, requires_grad=True)
    h0 = torch.randn(b, u, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, h0))
    # The gradient really depends on the mask: masked inputs get none.
    if mask is not None:
        _, _, hT = fn(x, h0)
        (gx,) = torch.autograd.grad(hT.sum(), x)
        assert torch.all(gx[~mask] == 0)
        assert torch.all(gx[mask].abs().sum() > 0)
