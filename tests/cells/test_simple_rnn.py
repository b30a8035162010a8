"""``SimpleRNNCell`` / ``SimpleRNN`` without Keras: golden numbers computed by
hand from the docstring equations, the layer against the cell stepped in a
Python loop, and ``torch.autograd.gradcheck`` through the layer.

    h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)
"""

import functools
import itertools

import numpy as np
import pytest
import torch

import rnnkit

from .helpers import (  # noqa: F401  (_one_thread: module-wide autouse fixture)
    GRAD_MASKS,
    MASKS,
    _arange_x,
    _one_thread,
    _step_by_hand,
    constant_layer,
    gradcheck_inputs,
    np_run,
    random_bias_layer,
    stepped_inputs,
)

_constant_layer = functools.partial(constant_layer, rnnkit.SimpleRNN)


# ------------------------------------------------------- numpy reference
def np_step(x_t, states, kernel, recurrent_kernel, bias, activation=np.tanh):
    h = activation(x_t @ kernel + (0.0 if bias is None else bias) + states[0] @ recurrent_kernel)
    return h, [h]


# --------------------------------------------------------------- golden
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_golden_constant_weights(dtype, tol):
    x = _arange_x()
    seq, h = _constant_layer(dtype=dtype)(x.astype(dtype))
    seq, h = seq.detach().numpy(), h.detach().numpy()
    assert seq.dtype == np.dtype(dtype) and seq.shape == (2, 3, 2)
    # step 1, row 0: x = [-0.6, -0.5, -0.4], sum -1.5: tanh(-0.015 + 0.03)
    assert seq[0, 0] == pytest.approx([np.tanh(0.015)] * 2, abs=tol)
    # step 1, row 1: x = [0.3, 0.4, 0.5], sum 1.2: tanh(0.012 + 0.03)
    assert seq[1, 0] == pytest.approx([np.tanh(0.042)] * 2, abs=tol)
    # step 2, row 0: x sum -0.6; two units of h_1 feed each unit with weight 0.02
    h1 = np.tanh(0.015)
    assert seq[0, 1] == pytest.approx([np.tanh(-0.006 + 0.03 + 0.04 * h1)] * 2, abs=tol)
    # every step, by hand
    K, R, b = np.full((3, 2), 0.01), np.full((2, 2), 0.02), np.full(2, 0.03)
    expected, (h_T,) = np_run(lambda xt, s: np_step(xt, s, K, R, b), x, [np.zeros((2, 2))])
    np.testing.assert_allclose(seq, expected, atol=tol, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=tol, rtol=0)
    np.testing.assert_allclose(h, seq[:, -1], atol=0)


@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_golden_constant_weights_masked(go_backwards, zero_output, use_fused):
    x = _arange_x(B=2, T=4)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=bool)
    layer = _constant_layer(go_backwards=go_backwards, zero_output_for_mask=zero_output, use_fused=use_fused)
    seq, h = (o.detach().numpy() for o in layer(x, mask=mask))
    K, R, b = np.full((3, 2), 0.01), np.full((2, 2), 0.02), np.full(2, 0.03)
    expected, (h_T,) = np_run(
        lambda xt, s: np_step(xt, s, K, R, b), x, [np.zeros((2, 2))], mask, go_backwards, zero_output
    )
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)
    # row 1 starts masked: its first processed output is zeros in both modes when
    # going forward; row 0 going backwards ends on a valid step
    if not go_backwards:
        np.testing.assert_array_equal(seq[1, 0], [0.0, 0.0])
    # the final state ignores masked steps: row 1 forward = state after step 2
    if not go_backwards:
        np.testing.assert_allclose(h[1], seq[1, 2], atol=0)


@pytest.mark.parametrize("activation,np_act", [("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0.0)),
                                               ("linear", lambda v: v)])
def test_golden_distinct_weights(activation, np_act):
    """Non-constant weights (every unit different), set with set_weights, with initial state."""
    F, U = 3, 4
    layer = rnnkit.SimpleRNN(U, activation=activation, return_sequences=True, return_state=True,
                             dtype="float64", input_shape=(None, F))
    K = np.linspace(-0.5, 0.5, F * U).reshape(F, U)
    R = np.linspace(0.4, -0.4, U * U).reshape(U, U)
    b = np.linspace(-0.2, 0.3, U)
    layer.set_weights([K, R, b])
    x = _arange_x(F=F)
    h0 = np.linspace(-1, 1, 2 * U).reshape(2, U)
    seq, h = (o.detach().numpy() for o in layer(x, initial_state=[h0]))
    expected, (h_T,) = np_run(lambda xt, s: np_step(xt, s, K, R, b, np_act), x, [h0])
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)
    assert np.abs(expected).max() > 0.3


def test_use_bias_false_golden():
    layer = _constant_layer(use_bias=False)
    x = _arange_x()
    seq, _ = (o.detach().numpy() for o in layer(x))
    assert [w.shape for w in layer.get_weights()] == [(3, 2), (2, 2)]
    assert seq[0, 0] == pytest.approx([np.tanh(-0.015)] * 2, abs=1e-12)
    K, R = np.full((3, 2), 0.01), np.full((2, 2), 0.02)
    expected, _ = np_run(lambda xt, s: np_step(xt, s, K, R, None), x, [np.zeros((2, 2))])
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)


# ---------------------------------------------------------------- cell
def test_cell_protocol():
    cell = rnnkit.SimpleRNNCell(3)
    assert cell.state_size == 3 and cell.output_size == 3
    cell.build((2, 4))
    assert [w.shape for w in cell.get_weights()] == [(4, 3), (3, 3), (3,)]
    (h0,) = cell.get_initial_state(batch_size=2)
    assert tuple(h0.shape) == (2, 3) and float(h0.abs().sum()) == 0.0
    x = torch.randn(2, 4)
    out, new = cell(x, [h0])
    assert isinstance(new, list) and len(new) == 1 and new[0] is out
    K, R, b = cell.get_weights()
    np.testing.assert_allclose(out.detach().numpy(), np.tanh(x.numpy() @ K + b), atol=1e-6)


@pytest.mark.parametrize(
    "mask_name,go_backwards,zero_output,use_fused",
    [g for g in itertools.product(sorted(MASKS), [False, True], [False, True], ["auto", False])
     if not (g[0] == "none" and g[2])],
)
def test_layer_equals_cell_stepped_by_hand(mask_name, go_backwards, zero_output, use_fused):
    B, T, F, U = 3, 6, 4, 5
    layer = random_bias_layer(rnnkit.SimpleRNN, U, go_backwards=go_backwards, zero_output_for_mask=zero_output,
                              use_fused=use_fused)
    x, (h0,), mask = stepped_inputs(1, mask_name, B, T, F, U)
    seq, h = layer(x, initial_state=[h0], mask=mask)
    exp_seq, (exp_h,) = _step_by_hand(layer.cell, x, [h0], mask, go_backwards, zero_output)
    np.testing.assert_allclose(seq.detach().numpy(), exp_seq.detach().numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(h.detach().numpy(), exp_h.detach().numpy(), atol=1e-12, rtol=0)
    assert np.abs(seq.detach().numpy()).max() > 0.3


# ------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_name", sorted(GRAD_MASKS))
def test_gradcheck(mask_name, go_backwards, use_fused):
    layer = random_bias_layer(rnnkit.SimpleRNN, 2, go_backwards=go_backwards, use_fused=use_fused)
    f, x, (h0,), mask = gradcheck_inputs(layer, 1, mask_name)
    assert torch.autograd.gradcheck(f, (x, h0), eps=1e-6, atol=1e-7)
    # and gradients do reach the inputs (masked steps excluded)
    seq, h = f(x, h0)
    (gx,) = torch.autograd.grad(seq.sum() + h.sum(), x)
    if mask is not None:
        assert float(gx[~mask].abs().max()) == 0.0
    assert float(gx.abs().max()) > 1e-3
