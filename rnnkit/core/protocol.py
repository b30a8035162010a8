"""The cell protocol: what the loop and the layers ask of a recurrent cell.

A cell is any object with

* ``state_size``: an int, a shape (``torch.Size``) or a list of those, one
  entry per state tensor (nested lists for stacked cells);
* ``call(inputs, states, **kwargs) -> (output, new_states)`` (or
  ``forward``/``__call__`` for torch modules), where ``kwargs`` may include
  ``training`` and ``constants`` when the method accepts them;
* optionally ``output_size`` (defaults to the first state's size) and
  ``get_initial_state(batch_size)`` (defaults to zeros, see
  :func:`zero_states`).

This module holds the functions that read that protocol; they know nothing
of layers, kernels or the package above them.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

import torch

StepFunction = Callable[[Any, tuple], tuple]


def call_accepts(fn: Any, arg: str) -> bool:
    """Whether ``fn`` (a cell's call/forward) takes keyword ``arg``.

    Containers ask this for every layer on every call, so the answer is kept
    per underlying function (a bound method's ``__func__``) and ``arg``.
    """
    if torch.compiler.is_compiling():  # (dynamo cannot trace the weak cache: the answer is read as it is traced)
        return _call_accepts(fn, arg)
    key = getattr(fn, "__func__", fn)
    try:
        answers = _ACCEPTS.setdefault(key, {})
    except TypeError:  # no weak reference to it (a builtin): not cached
        return _call_accepts(fn, arg)
    if arg not in answers:
        answers[arg] = _call_accepts(fn, arg)
    return answers[arg]


# function (or callable object) -> {argument name: accepted}; weak, so that it keeps nothing alive
_ACCEPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _call_accepts(fn: Any, arg: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return arg in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def cell_call_fn(cell: Any) -> Callable:
    """The method a cell is invoked through (``__call__`` for modules)."""
    return cell if callable(cell) else cell.call


def cell_method(cell: Any) -> Callable:
    """The user-visible call method, to inspect which keywords it accepts.

    A module whose ``forward`` only dispatches to ``call`` (rnnkit's
    ``Layer.forward``, marked ``dispatches_to_call``) is inspected through
    ``call``; a module overriding ``forward`` through ``forward``.
    """
    fn = getattr(cell, "call", None)
    forward = getattr(type(cell), "forward", None)
    if forward is not None and not getattr(forward, "dispatches_to_call", False):
        fn = cell.forward
    return fn if fn is not None else getattr(cell, "forward", cell)


def check_cell(cell: Any, owner: str, what: str = "the cell") -> list:
    """``cell.state_size`` as a list, after checking ``cell`` is a recurrent cell.

    Errors name ``owner`` (the layer or function) and ``what`` (which cell).
    """
    state_size = getattr(cell, "state_size", None)
    if state_size is None:
        raise ValueError(f"{owner}: {what} ({type(cell).__name__}) must have a `state_size` attribute")
    if not isinstance(state_size, (int, list, tuple)) or isinstance(state_size, bool):
        raise ValueError(f"{owner}: {what}'s state_size must be an int or a list/tuple of ints, got {state_size!r}")
    if not (hasattr(cell, "call") or callable(cell)):
        raise ValueError(f"{owner}: {what} ({type(cell).__name__}) has no `call` method")
    return list(state_size) if isinstance(state_size, (list, tuple)) else [state_size]


def cell_output_size(cell: Any) -> Any:
    """``cell.output_size``, or the size of its first state."""
    size = getattr(cell, "output_size", None)
    if size is None:
        state = cell.state_size
        size = state[0] if isinstance(state, (list, tuple)) and not isinstance(state, torch.Size) else state
    return size


def cell_step_function(cell: Any, **kwargs: Any) -> StepFunction:
    """``(x_t, states) -> (output_t, new_states list)`` calling ``cell`` with ``kwargs``."""
    call = cell_call_fn(cell)

    def step(x_t, states):
        output, new_states = call(x_t, list(states), **kwargs)
        if not isinstance(new_states, (list, tuple)):
            new_states = [new_states]
        return output, list(new_states)

    return step


def zero_states(state_size: Any, batch_size: int | None, dtype: torch.dtype,
                device: torch.device | str | None = None) -> list:
    """Zero states for ``state_size``: the one place zero initial states are made.

    An int ``n`` gives a ``(batch, n)`` tensor, a ``torch.Size`` (one
    multi-dimensional state, ``ConvLSTMCell``) or a tuple a ``(batch, *size)``
    tensor; the top-level list or tuple has one entry per state, and a list
    inside it is a nest (stacked cells).
    """
    sizes = state_size if isinstance(state_size, (list, tuple)) and not isinstance(state_size, torch.Size) \
        else [state_size]
    out: list = []
    for s in sizes:
        if isinstance(s, list):
            out.append(zero_states(s, batch_size, dtype, device))
        else:
            dims = tuple(int(d) for d in s) if hasattr(s, "__len__") else (int(s),)
            if batch_size is None:
                raise TypeError("zero_states(): batch_size must be an int to make zero states, got None")
            out.append(torch.zeros((batch_size,) + dims, dtype=dtype, device=device))
    return out


def initial_states(cell: Any, batch_size: int, dtype: torch.dtype) -> list:
    """The cell's ``get_initial_state(batch_size)`` as a list, or zeros."""
    fn = getattr(cell, "get_initial_state", None)
    if fn is not None:
        state = fn(batch_size=batch_size)
        return list(state) if isinstance(state, (list, tuple)) else [state]
    return zero_states(cell.state_size, batch_size, dtype)


def reset_dropout(cell: Any) -> None:
    """Forget the cell's per-sequence dropout masks, if it keeps any."""
    fn = getattr(cell, "reset_dropout_masks", None)
    if fn is not None:
        fn()
