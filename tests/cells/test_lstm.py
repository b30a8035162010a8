"""``LSTMCell`` / ``LSTM`` without Keras: golden numbers computed by hand from
the docstring equations, the layer against the cell stepped in a Python loop,
and ``torch.autograd.gradcheck`` through the layer.

Gate order ``i f c o``; ``z = x @ kernel + h @ recurrent_kernel + bias``::

    i = sigmoid(z_i); f = sigmoid(z_f); o = sigmoid(z_o)
    c_t = f * c + i * tanh(z_c);  h_t = o * tanh(c_t)
    unit_forget_bias=True: the forget block of the bias starts at 1
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
    _hard_sigmoid,
    _one_thread,
    _sigmoid,
    _step_by_hand,
    constant_layer,
    gradcheck_inputs,
    np_run,
    random_bias_layer,
    stepped_inputs,
)

_constant_layer = functools.partial(constant_layer, rnnkit.LSTM)


# ------------------------------------------------------- numpy reference
def np_step(x_t, states, kernel, recurrent_kernel, bias, act=np.tanh, rec_act=_sigmoid):
    h, c = states
    u = h.shape[1]
    z = x_t @ kernel + h @ recurrent_kernel + (0.0 if bias is None else bias)
    i = rec_act(z[:, :u])
    f = rec_act(z[:, u : 2 * u])
    c = f * c + i * act(z[:, 2 * u : 3 * u])
    o = rec_act(z[:, 3 * u :])
    h = o * act(c)
    return h, [h, c]


def _constant_weights(unit_forget_bias=True, F=3, U=2):
    bias = np.full(4 * U, 0.03)
    if unit_forget_bias:
        bias[U : 2 * U] = 1.0
    return np.full((F, 4 * U), 0.01), np.full((U, 4 * U), 0.02), bias


# --------------------------------------------------------------- golden
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_golden_constant_weights(unit_forget_bias, dtype, tol):
    x = _arange_x()
    layer = _constant_layer(dtype=dtype, unit_forget_bias=unit_forget_bias, input_shape=(3, 3))
    K, R, b = _constant_weights(unit_forget_bias)
    np.testing.assert_array_equal(layer.get_weights()[2], b.astype(dtype))
    seq, h, c = (o.detach().numpy() for o in layer(x.astype(dtype)))
    assert seq.dtype == np.dtype(dtype) and seq.shape == (2, 3, 2)
    # step 1, row 0 from h = c = 0: x sum -1.5, so z_i = z_c = z_o = -0.015 + 0.03
    g = _sigmoid(0.015)
    c1 = g * np.tanh(0.015)
    assert seq[0, 0] == pytest.approx([g * np.tanh(c1)] * 2, abs=tol)
    # step 2, row 0: x sum -0.6; h_1 feeds every gate through 2 units * 0.02
    h1 = g * np.tanh(c1)
    z = -0.006 + 0.04 * h1
    f = _sigmoid(z + (1.0 if unit_forget_bias else 0.03))
    c2 = f * c1 + _sigmoid(z + 0.03) * np.tanh(z + 0.03)
    assert seq[0, 1] == pytest.approx([_sigmoid(z + 0.03) * np.tanh(c2)] * 2, abs=tol)
    # every step, by hand
    expected, (h_T, c_T) = np_run(lambda xt, s: np_step(xt, s, K, R, b), x, [np.zeros((2, 2))] * 2)
    np.testing.assert_allclose(seq, expected, atol=tol, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=tol, rtol=0)
    np.testing.assert_allclose(c, c_T, atol=tol, rtol=0)


@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_golden_constant_weights_masked(go_backwards, zero_output, use_fused):
    x = _arange_x(B=2, T=4)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=bool)
    layer = _constant_layer(go_backwards=go_backwards, zero_output_for_mask=zero_output, use_fused=use_fused)
    seq, h, c = (o.detach().numpy() for o in layer(x, mask=mask))
    K, R, b = _constant_weights()
    expected, (h_T, c_T) = np_run(lambda xt, s: np_step(xt, s, K, R, b), x, [np.zeros((2, 2))] * 2,
                                  mask, go_backwards, zero_output)
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)
    np.testing.assert_allclose(c, c_T, atol=1e-12, rtol=0)


ACTS = {
    "default": ({}, np.tanh, _sigmoid),
    "relu-hard_sigmoid": ({"activation": "relu", "recurrent_activation": "hard_sigmoid"},
                          lambda v: np.maximum(v, 0.0), _hard_sigmoid),
    "softsign-sigmoid": ({"activation": "softsign"}, lambda v: v / (1.0 + np.abs(v)), _sigmoid),
}


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("acts", sorted(ACTS))
def test_golden_distinct_weights(acts, use_bias):
    """Every gate and unit with its own weights (an i/f/c/o mix-up shows), plus initial states."""
    F, U = 3, 4
    kwargs, act, rec_act = ACTS[acts]
    layer = rnnkit.LSTM(U, use_bias=use_bias, return_sequences=True, return_state=True, dtype="float64",
                        input_shape=(None, F), **kwargs)
    K = np.linspace(-0.5, 0.5, F * 4 * U).reshape(F, 4 * U)
    R = np.linspace(0.4, -0.4, U * 4 * U).reshape(U, 4 * U)
    b = np.linspace(-0.2, 0.3, 4 * U)
    layer.set_weights([K, R, b] if use_bias else [K, R])
    x = _arange_x(F=F)
    h0 = np.linspace(-1, 1, 2 * U).reshape(2, U)
    c0 = np.linspace(0.8, -0.6, 2 * U).reshape(2, U)
    seq, h, c = (o.detach().numpy() for o in layer(x, initial_state=[h0, c0]))
    step = lambda xt, s: np_step(xt, s, K, R, b if use_bias else None, act, rec_act)  # noqa: E731
    expected, (h_T, c_T) = np_run(step, x, [h0, c0])
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)
    np.testing.assert_allclose(c, c_T, atol=1e-12, rtol=0)
    assert np.abs(expected).max() > 0.1


# ---------------------------------------------------------------- cell
def test_cell_protocol():
    cell = rnnkit.LSTMCell(3)
    assert cell.state_size == [3, 3] and cell.output_size == 3
    cell.build((2, 4))
    K, R, b = cell.get_weights()
    assert [K.shape, R.shape, b.shape] == [(4, 12), (3, 12), (12,)]
    np.testing.assert_array_equal(b, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # unit_forget_bias
    h0, c0 = cell.get_initial_state(batch_size=2)
    assert tuple(h0.shape) == tuple(c0.shape) == (2, 3) and float(h0.abs().sum() + c0.abs().sum()) == 0.0
    x = torch.randn(2, 4)
    out, new = cell(x, [h0, c0])
    assert isinstance(new, list) and len(new) == 2 and new[0] is out
    expected, (_, c_exp) = np_step(x.numpy().astype("float64"), [np.zeros((2, 3))] * 2, K, R, b)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(new[1].detach().numpy(), c_exp, atol=1e-6)


@pytest.mark.parametrize(
    "mask_name,go_backwards,zero_output,use_fused",
    [g for g in itertools.product(sorted(MASKS), [False, True], [False, True], ["auto", False])
     if not (g[0] == "none" and g[2])],
)
def test_layer_equals_cell_stepped_by_hand(mask_name, go_backwards, zero_output, use_fused):
    B, T, F, U = 3, 6, 4, 5
    layer = random_bias_layer(rnnkit.LSTM, U, go_backwards=go_backwards, zero_output_for_mask=zero_output,
                              use_fused=use_fused)
    x, (h0, c0), mask = stepped_inputs(2, mask_name, B, T, F, U)
    seq, h, c = layer(x, initial_state=[h0, c0], mask=mask)
    exp_seq, (exp_h, exp_c) = _step_by_hand(layer.cell, x, [h0, c0], mask, go_backwards, zero_output)
    np.testing.assert_allclose(seq.detach().numpy(), exp_seq.detach().numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(h.detach().numpy(), exp_h.detach().numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(c.detach().numpy(), exp_c.detach().numpy(), atol=1e-12, rtol=0)
    assert np.abs(seq.detach().numpy()).max() > 0.2


# ------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_name", sorted(GRAD_MASKS))
def test_gradcheck(mask_name, go_backwards, use_fused):
    layer = random_bias_layer(rnnkit.LSTM, 2, go_backwards=go_backwards, use_fused=use_fused)
    f, x, (h0, c0), mask = gradcheck_inputs(layer, 2, mask_name)
    assert torch.autograd.gradcheck(f, (x, h0, c0), eps=1e-6, atol=1e-7)
    seq, h, c = f(x, h0, c0)
    gx, gc0 = torch.autograd.grad(seq.sum() + h.sum() + c.sum(), (x, c0))
    if mask is not None:
        assert float(gx[~mask].abs().max()) == 0.0
    assert float(gx.abs().max()) > 1e-3 and float(gc0.abs().max()) > 1e-3


def test_weights_keep_keras_shapes_in_torch_layout_through_copies_and_training():
    """kernel (D, 4U) / recurrent_kernel (U, 4U) as Keras, stored as transposes of contiguous tensors
    (what torch's LSTM kernel reads): kept by .double(), deepcopy, pickling and load_state_dict; the
    gradients arrive in the same layout; get_weights gives Keras's arrays."""
    import copy
    import pickle

    layer = rnnkit.LSTM(3)
    layer.build((2, 4, 5))
    cell = layer.cell
    assert tuple(cell.kernel.shape) == (5, 12) and tuple(cell.recurrent_kernel.shape) == (3, 12)
    for clone in (layer, copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer).double()):
        for w in (clone.cell.kernel, clone.cell.recurrent_kernel):
            assert w.t().is_contiguous() and not w.is_contiguous()
    fresh = rnnkit.LSTM(3)
    fresh.build((2, 4, 5))
    fresh.load_state_dict(layer.state_dict())
    assert fresh.cell.kernel.t().is_contiguous()
    layer(torch.randn(2, 4, 5)).sum().backward()
    assert cell.kernel.grad.stride() == cell.kernel.stride()
    kernel = layer.get_weights()[0]
    assert kernel.shape == (5, 12) and np.array_equal(kernel, cell.kernel.detach().numpy())
