"""Helpers shared by the ``SimpleRNN`` / ``GRU`` / ``LSTM`` cell tests: the Keras
loop in numpy, the layer's loop done by calling the cell per step, and the
layer and input builders the golden, stepped-by-hand and gradcheck tests share."""

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED

import rnnkit

MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}

GRAD_MASKS = {
    "none": None,
    "right_padded": np.array([[1, 1, 1], [1, 1, 0]], dtype=bool),
    "holes": np.array([[1, 0, 1], [0, 1, 1]], dtype=bool),
}

Constant = rnnkit.engine.initializers.Constant


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matmuls on 2 busy cores run faster on one torch thread (no stalled workers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _hard_sigmoid(v):  # Keras 3: relu6(x + 3) / 6
    return np.clip(v / 6.0 + 0.5, 0.0, 1.0)


# ------------------------------------------------------- numpy reference
def np_run(step, x, states, mask=None, go_backwards=False, zero_output=False):
    """Keras loop semantics by hand: outputs in processing order, masked steps carry states."""
    T = x.shape[1]
    prev, outs = np.zeros_like(step(x[:, 0], states)[0]), []
    for t in reversed(range(T)) if go_backwards else range(T):
        out, new = step(x[:, t], states)
        if mask is not None:
            m = mask[:, t][:, None]
            new = [np.where(m, n, s) for n, s in zip(new, states)]
            out = np.where(m, out, 0.0 if zero_output else prev)
        states, prev = new, out
        outs.append(out)
    return np.stack(outs, 1), states


def _arange_x(B=2, T=3, F=3):
    return (np.arange(B * T * F, dtype="float64").reshape(B, T, F) - 6.0) * 0.1


def constant_layer(layer_cls, units=2, dtype="float64", **kwargs):
    """``layer_cls`` with kernel 0.01, recurrent kernel 0.02, bias 0.03, returning sequences and states."""
    return layer_cls(
        units,
        kernel_initializer=Constant(0.01),
        recurrent_initializer=Constant(0.02),
        bias_initializer=Constant(0.03),
        return_sequences=True,
        return_state=True,
        dtype=dtype,
        **kwargs,
    )


def random_bias_layer(layer_cls, units, **kwargs):
    """float64 ``layer_cls`` returning sequences and states, with a seeded random bias."""
    return layer_cls(units, return_sequences=True, return_state=True, dtype="float64",
                     bias_initializer=rnnkit.engine.initializers.RandomNormal(stddev=0.3, seed=4), **kwargs)


# ---------------------------------------------------------------- cell
def _step_by_hand(cell, x, states, mask, go_backwards, zero_output):
    """The layer's job done in a Python loop calling ``cell(x[:, t], states)``."""
    outs, prev = [], None
    for t in reversed(range(x.shape[1])) if go_backwards else range(x.shape[1]):
        out, new = cell(x[:, t], states)
        if mask is not None:
            m = mask[:, t].unsqueeze(1)
            new = [torch.where(m, n, s) for n, s in zip(new, states)]
            if prev is None:
                prev = torch.zeros_like(out)
            out = torch.where(m, out, torch.zeros_like(out) if zero_output else prev)
            prev = out
        states = list(new)
        outs.append(out)
    return torch.stack(outs, 1), states


def stepped_inputs(n_states, mask_name, B=3, T=6, F=4, U=5):
    """Seeded inputs ``x``, ``n_states`` initial states and the mask for the stepped-by-hand tests."""
    rng = np.random.RandomState(0)
    x = torch.tensor(rng.randn(B, T, F))
    states = [torch.tensor(rng.randn(B, U)) for _ in range(n_states)]
    mask = None if MASKS[mask_name] is None else torch.tensor(MASKS[mask_name])
    return x, states, mask


# ------------------------------------------------------------ gradcheck
def gradcheck_inputs(layer, n_states, mask_name):
    """``f(x, *states)`` calling ``layer``, with seeded leaf inputs ``x`` and ``states`` and the mask."""
    rng = np.random.RandomState(1)
    x = torch.tensor(rng.randn(2, 3, 2), requires_grad=True)
    states = [torch.tensor(rng.randn(2, 2), requires_grad=True) for _ in range(n_states)]
    mask = None if GRAD_MASKS[mask_name] is None else torch.tensor(GRAD_MASKS[mask_name])

    def f(x, *states):
        return tuple(layer(x, initial_state=list(states), mask=mask))

    return f, x, states, mask
