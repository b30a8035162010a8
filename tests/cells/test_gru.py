"""``GRUCell`` / ``GRU`` (both ``reset_after`` variants) without Keras: golden
numbers computed by hand from the docstring equations, the layer against the
cell stepped in a Python loop, and ``torch.autograd.gradcheck`` through the layer.

Gate order ``z r h``; with ``x_z, x_r, x_h`` the blocks of ``x @ kernel + input_bias``::

    z = sigmoid(x_z + h @ U_z [+ b_rz]);  r = sigmoid(x_r + h @ U_r [+ b_rr])
    reset_after=True:  hh = tanh(x_h + r * (h @ U_h + b_rh))   bias (2, 3U)
    reset_after=False: hh = tanh(x_h + (r * h) @ U_h)          bias (3U,)
    h_t = z * h + (1 - z) * hh
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

_constant_layer = functools.partial(constant_layer, rnnkit.GRU)


# ------------------------------------------------------- numpy reference
def np_step(x_t, states, kernel, recurrent_kernel, bias, reset_after, act=np.tanh, rec_act=_sigmoid):
    h = states[0]
    u = h.shape[1]
    if bias is None:
        b_in, b_rec = 0.0, np.zeros(3 * u)
    elif reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros(3 * u)
    xp = x_t @ kernel + b_in
    x_z, x_r, x_h = xp[:, :u], xp[:, u : 2 * u], xp[:, 2 * u :]
    U_z, U_r, U_h = recurrent_kernel[:, :u], recurrent_kernel[:, u : 2 * u], recurrent_kernel[:, 2 * u :]
    z = rec_act(x_z + h @ U_z + b_rec[:u])
    r = rec_act(x_r + h @ U_r + b_rec[u : 2 * u])
    if reset_after:
        hh = act(x_h + r * (h @ U_h + b_rec[2 * u :]))
    else:
        hh = act(x_h + (r * h) @ U_h)
    h = z * h + (1.0 - z) * hh
    return h, [h]


def _constant_weights(reset_after, F=3, U=2):
    bias = np.full((2, 3 * U) if reset_after else (3 * U,), 0.03)
    return np.full((F, 3 * U), 0.01), np.full((U, 3 * U), 0.02), bias


# --------------------------------------------------------------- golden
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("reset_after", [True, False])
def test_golden_constant_weights(reset_after, dtype, tol):
    x = _arange_x()
    layer = _constant_layer(dtype=dtype, reset_after=reset_after)
    seq, h = (o.detach().numpy() for o in layer(x.astype(dtype)))
    assert seq.dtype == np.dtype(dtype) and seq.shape == (2, 3, 2)
    assert layer.get_weights()[2].shape == ((2, 6) if reset_after else (6,))
    # step 1, row 0 from h_0 = 0: x sum -1.5, x @ kernel = -0.015 in every gate
    if reset_after:  # input bias 0.03 + recurrent bias 0.03
        z = _sigmoid(-0.015 + 0.03 + 0.03)
        hh = np.tanh(-0.015 + 0.03 + z * 0.03)  # r == z here: same weights, same pre-activation
    else:  # (r * 0) @ U_h = 0
        z = _sigmoid(-0.015 + 0.03)
        hh = np.tanh(-0.015 + 0.03)
    assert seq[0, 0] == pytest.approx([(1 - z) * hh] * 2, abs=tol)
    # every step, by hand
    K, R, b = _constant_weights(reset_after)
    expected, (h_T,) = np_run(lambda xt, s: np_step(xt, s, K, R, b, reset_after), x, [np.zeros((2, 2))])
    np.testing.assert_allclose(seq, expected, atol=tol, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=tol, rtol=0)


def test_golden_reset_after_variants_differ():
    """Same constant weights: the recurrent bias of the h gate (inside r * (...)) separates them."""
    x = _arange_x()
    after = _constant_layer(reset_after=True)(x)[0].detach().numpy()
    before = _constant_layer(reset_after=False)(x)[0].detach().numpy()
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("use_fused", ["auto", False])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_golden_constant_weights_masked(reset_after, go_backwards, zero_output, use_fused):
    x = _arange_x(B=2, T=4)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=bool)
    layer = _constant_layer(reset_after=reset_after, go_backwards=go_backwards, zero_output_for_mask=zero_output,
                            use_fused=use_fused)
    seq, h = (o.detach().numpy() for o in layer(x, mask=mask))
    K, R, b = _constant_weights(reset_after)
    expected, (h_T,) = np_run(lambda xt, s: np_step(xt, s, K, R, b, reset_after), x, [np.zeros((2, 2))],
                              mask, go_backwards, zero_output)
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)


ACTS = {
    "default": ({}, np.tanh, _sigmoid),
    "relu-hard_sigmoid": ({"activation": "relu", "recurrent_activation": "hard_sigmoid"},
                          lambda v: np.maximum(v, 0.0), _hard_sigmoid),
}


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("acts", sorted(ACTS))
@pytest.mark.parametrize("reset_after", [True, False])
def test_golden_distinct_weights(reset_after, acts, use_bias):
    """Every gate and unit with its own weights (a z/r/h mix-up shows), plus an initial state."""
    F, U = 3, 4
    kwargs, act, rec_act = ACTS[acts]
    layer = rnnkit.GRU(U, reset_after=reset_after, use_bias=use_bias, return_sequences=True, return_state=True,
                       dtype="float64", input_shape=(None, F), **kwargs)
    K = np.linspace(-0.5, 0.5, F * 3 * U).reshape(F, 3 * U)
    R = np.linspace(0.4, -0.4, U * 3 * U).reshape(U, 3 * U)
    b = np.linspace(-0.2, 0.3, 6 * U).reshape(2, 3 * U) if reset_after else np.linspace(-0.2, 0.3, 3 * U)
    layer.set_weights([K, R, b] if use_bias else [K, R])
    x = _arange_x(F=F)
    h0 = np.linspace(-1, 1, 2 * U).reshape(2, U)
    seq, h = (o.detach().numpy() for o in layer(x, initial_state=[h0]))
    expected, (h_T,) = np_run(
        lambda xt, s: np_step(xt, s, K, R, b if use_bias else None, reset_after, act, rec_act), x, [h0]
    )
    np.testing.assert_allclose(seq, expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(h, h_T, atol=1e-12, rtol=0)
    assert np.abs(expected).max() > 0.3
    # a z <-> r swap in the reference would be noticed: the data separates them
    K_swapped = np.concatenate([K[:, U : 2 * U], K[:, :U], K[:, 2 * U :]], axis=1)
    swapped, _ = np_run(lambda xt, s: np_step(xt, s, K_swapped, R, b if use_bias else None, reset_after, act,
                                              rec_act), x, [h0])
    assert np.abs(swapped - seq).max() > 1e-3


# ---------------------------------------------------------------- cell
@pytest.mark.parametrize("reset_after", [True, False])
def test_cell_protocol(reset_after):
    cell = rnnkit.GRUCell(3, reset_after=reset_after)
    assert cell.state_size == 3 and cell.output_size == 3
    cell.build((2, 4))
    assert [w.shape for w in cell.get_weights()] == [(4, 9), (3, 9), (2, 9) if reset_after else (9,)]
    (h0,) = cell.get_initial_state(batch_size=2)
    assert tuple(h0.shape) == (2, 3) and float(h0.abs().sum()) == 0.0
    x = torch.randn(2, 4)
    out, new = cell(x, [h0])
    assert isinstance(new, list) and len(new) == 1 and new[0] is out
    K, R, b = (w.astype("float64") for w in cell.get_weights())
    expected, _ = np_step(x.numpy().astype("float64"), [np.zeros((2, 3))], K, R, b, reset_after)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    "reset_after,mask_name,go_backwards,zero_output,use_fused",
    [g for g in itertools.product([True, False], sorted(MASKS), [False, True], [False, True], ["auto", False])
     if not (g[1] == "none" and g[3])],
)
def test_layer_equals_cell_stepped_by_hand(reset_after, mask_name, go_backwards, zero_output, use_fused):
    B, T, F, U = 3, 6, 4, 5
    layer = random_bias_layer(rnnkit.GRU, U, reset_after=reset_after, go_backwards=go_backwards,
                              zero_output_for_mask=zero_output, use_fused=use_fused)
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
@pytest.mark.parametrize("reset_after", [True, False])
def test_gradcheck(reset_after, mask_name, go_backwards, use_fused):
    layer = random_bias_layer(rnnkit.GRU, 2, reset_after=reset_after, go_backwards=go_backwards,
                              use_fused=use_fused)
    f, x, (h0,), mask = gradcheck_inputs(layer, 1, mask_name)
    assert torch.autograd.gradcheck(f, (x, h0), eps=1e-6, atol=1e-7)
    seq, h = f(x, h0)
    (gx,) = torch.autograd.grad(seq.sum() + h.sum(), x)
    if mask is not None:
        assert float(gx[~mask].abs().max()) == 0.0
    assert float(gx.abs().max()) > 1e-3
