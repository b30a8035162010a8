"""The TF 1.x functional recurrent API on rnnkit cells.

``static_rnn``, ``dynamic_rnn``, ``static_bidirectional_rnn`` and
``bidirectional_dynamic_rnn`` with TensorFlow 1.x's ``sequence_length``,
``time_major`` and return conventions. Every function runs the one generic
loop, :func:`rnnkit.core.loop.rnn`, with a mask built from ``sequence_length`` and
``zero_output_for_mask=True``.

A *cell* is anything rnnkit's ``RNN`` accepts: ``cell(inputs, states) ->
(output, new_states)`` with ``states`` the cell's list of state tensors and a
``state_size`` attribute (``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``,
``StackedRNNCells`` or a user cell). An unbuilt cell builds on its first call.

Semantics, with ``L = sequence_length[b]`` and ``T`` the number of steps::

    forward  : for t < L : y[b, t], s = cell(x[b, t], s)
               for t >= L: y[b, t] = 0, s unchanged (copied through)
               final state = the state after step L - 1 (the initial one if L == 0)
    backward : x' = reverse_sequence(x, L)   # x'[b, t] = x[b, L-1-t] for t < L, x[b, t] else
               y', s_bw = forward(cell_bw, x')
               y_bw = reverse_sequence(y', L) # y_bw[b, t] is the output after reading x[b, L-1] ... x[b, t]

Without ``sequence_length`` every row has length ``T`` (the backward
direction reverses the whole sequence). Dropout masks of built-in cells are
drawn once per call, as in the layers; ``cell.eval()`` turns dropout off.

States: a cell with a single state tensor (``SimpleRNNCell``, ``GRUCell``)
takes and returns that tensor itself; a cell with several returns the list
(``LSTMCell``: ``[h, c]``; ``StackedRNNCells``: one entry per cell). A single
tensor, or a list/tuple in the same layout, is accepted as ``initial_state``;
``None`` means the cell's ``get_initial_state`` (zeros).

Inputs may be torch tensors or numpy arrays; floats are computed in the cell's
dtype (``Layer`` cells) and outputs are torch tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.core.loop import rnn
from rnnkit.core.protocol import cell_step_function, check_cell, initial_states, reset_dropout
from rnnkit.core.sequences import as_tensor, check_states, lengths_to_mask, reverse_valid

__all__ = [
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "reverse_sequence",
    "static_bidirectional_rnn",
    "static_rnn",
]


# ---------------------------------------------------------------- helpers
def _compute_dtype(cells: Sequence[Any], x: Any) -> torch.dtype:
    """The cell's dtype for ``Layer`` cells, else the input's float dtype (or torch's default)."""
    for cell in cells:
        dtype = getattr(cell, "dtype", None)
        if isinstance(dtype, torch.dtype):
            return dtype
    dtype = getattr(x, "dtype", None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating):
        return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
    return torch.get_default_dtype()


def _device_of(cells: Sequence[Any]) -> torch.device | None:
    for cell in cells:
        if isinstance(cell, torch.nn.Module):
            for p in cell.parameters():
                return p.device
    return None


def _as_inputs(x: Any, cells: Sequence[Any], fn: str, what: str = "inputs") -> torch.Tensor:
    return as_tensor(x, _compute_dtype(cells, x), _device_of(cells), what, fn)


def _check_lengths(sequence_length: Any, batch: int, timesteps: int, device: torch.device, fn: str):
    """``sequence_length`` as an int64 ``(batch,)`` tensor on ``device``, or None."""
    if sequence_length is None:
        return None
    lengths = sequence_length
    if not isinstance(lengths, torch.Tensor):
        if isinstance(lengths, (bool, float)) or not isinstance(lengths, (list, tuple, np.ndarray, np.generic, int)):
            raise ValueError(f"{fn}: sequence_length must be an integer tensor of shape (batch,) = ({batch},), "
                             f"got {type(lengths).__name__}")
        arr = np.asarray(lengths)
        if arr.dtype == object:
            raise ValueError(f"{fn}: sequence_length must be an integer tensor of shape (batch,) = ({batch},), "
                             f"got a ragged or non-numeric {type(lengths).__name__}")
        if arr.size == 0 and arr.dtype == np.float64 and isinstance(lengths, (list, tuple)):
            arr = arr.astype(np.int64)  # [] has no dtype of its own
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{fn}: sequence_length must have an integer dtype (int32/int64), got {arr.dtype}")
        lengths = torch.as_tensor(arr)
    if lengths.dtype == torch.bool or lengths.dtype.is_floating_point or lengths.dtype.is_complex:
        raise ValueError(f"{fn}: sequence_length must have an integer dtype (int32/int64), got {lengths.dtype}")
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"{fn}: sequence_length must have shape (batch,) = ({batch},), "
                         f"got shape {tuple(lengths.shape)}")
    if batch:
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 0 or hi > timesteps:
            bad = lengths[(lengths < 0) | (lengths > timesteps)].tolist()
            raise ValueError(f"{fn}: sequence_length values must lie in [0, {timesteps}] (the number of "
                             f"timesteps), got {bad}")
    return lengths.to(device=device, dtype=torch.int64)


def _initial_states(cell: Any, state_size: list, initial_state: Any, batch: int, dtype, device, fn: str,
                    what: str) -> list:
    if initial_state is None:
        states = initial_states(cell, batch, dtype)
        return [s.to(device=device) if isinstance(s, torch.Tensor) else s for s in states]
    return check_states(initial_state, state_size, batch, fn, dtype, device, what=what)


def _public_state(states: list) -> Any:
    """A single state tensor as itself, several as the list."""
    if len(states) == 1 and isinstance(states[0], torch.Tensor):
        return states[0]
    return states


def _run(cell: Any, x: torch.Tensor, lengths: torch.Tensor | None, initial_state: Any, fn: str,
         what: str = "initial_state"):
    """Batch-major core: ``x`` ``(batch, T, ...)`` -> ``(outputs (batch, T, ...), states list)``."""
    state_size = check_cell(cell, fn)
    batch, timesteps = x.shape[0], x.shape[1]
    states = _initial_states(cell, state_size, initial_state, batch, x.dtype, x.device, fn, what)
    mask = None if lengths is None else lengths_to_mask(lengths, timesteps)
    reset_dropout(cell)
    try:
        _, outputs, new_states = rnn(cell_step_function(cell), x, states, mask=mask, zero_output_for_mask=True)
    finally:
        reset_dropout(cell)
    return outputs, new_states


def reverse_sequence(x: torch.Tensor, sequence_length: torch.Tensor | None, time_axis: int = 1) -> torch.Tensor:
    """``tf.reverse_sequence`` for batch axis 0: reverse ``x[b, :L]`` of each row, keep ``x[b, L:]``.

    ``x`` is ``(batch, T, ...)`` (``time_axis=1``) or ``(T, batch, ...)``
    (``time_axis=0``); ``sequence_length`` an integer ``(batch,)`` tensor with
    values in ``[0, T]``, or None to reverse every row whole. Applying it twice
    with the same lengths gives ``x`` back.
    """
    if time_axis not in (0, 1):
        raise ValueError(f"reverse_sequence: time_axis must be 0 or 1, got {time_axis}")
    if sequence_length is None:
        return x.flip(time_axis)
    if time_axis == 0:
        return reverse_sequence(x.transpose(0, 1), sequence_length, 1).transpose(0, 1)
    return reverse_valid(x, sequence_length)


def _stack_static(inputs: Any, cells: Sequence[Any], fn: str) -> torch.Tensor:
    """A list of ``T`` tensors ``(batch, features...)`` as one ``(batch, T, features...)`` tensor."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{fn}: inputs must be a list of T tensors of shape (batch, features), "
                        f"got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError(f"{fn}: inputs must be a non-empty list of T tensors (batch, features), got an empty list")
    xs = [_as_inputs(x, cells, fn, f"inputs[{i}]") for i, x in enumerate(inputs)]
    for i, x in enumerate(xs):
        if x.dim() < 2:
            raise ValueError(f"{fn}: inputs[{i}] must have rank 2 or more (batch, features), "
                             f"got shape {tuple(x.shape)} (rank {x.dim()})")
        if x.shape != xs[0].shape:
            raise ValueError(f"{fn}: all inputs must have the same shape; inputs[0] has {tuple(xs[0].shape)}, "
                             f"inputs[{i}] has {tuple(x.shape)}")
    return torch.stack(xs, dim=1)


def _dynamic_inputs(inputs: Any, cells: Sequence[Any], time_major: bool, fn: str) -> torch.Tensor:
    """``inputs`` checked and as a batch-major ``(batch, T, features...)`` tensor."""
    x = _as_inputs(inputs, cells, fn)
    layout = "(max_time, batch, features...)" if time_major else "(batch, max_time, features...)"
    if x.dim() < 3:
        raise ValueError(f"{fn}: inputs must have rank 3 or more {layout}, got shape {tuple(x.shape)} "
                         f"(rank {x.dim()})")
    if x.shape[0 if time_major else 1] == 0:
        raise ValueError(f"{fn}: inputs must have at least one timestep {layout}, got shape {tuple(x.shape)}")
    return x.transpose(0, 1) if time_major else x


# ------------------------------------------------------------------ public
def static_rnn(cell: Any, inputs: Sequence[Any], initial_state: Any = None, sequence_length: Any = None):
    """``tf.nn.static_rnn``: run ``cell`` over a list of ``T`` input tensors.

    Args:
        cell: a recurrent cell (``state_size``; ``cell(x_t, states) -> (y_t, new_states)``).
        inputs: list of ``T`` tensors, each ``(batch, features...)``.
        initial_state: the state to start from (a tensor for a single-state
            cell, else a list in the cell's layout); None = zeros.
        sequence_length: integer ``(batch,)`` with values in ``[0, T]``, or None.

    Returns:
        ``(outputs, state)``: ``outputs`` a list of ``T`` tensors
        ``(batch, output_size)``, zero at ``t >= sequence_length[b]``;
        ``state`` the state after each row's last valid step.
    """
    fn = "static_rnn"
    check_cell(cell, fn)
    x = _stack_static(inputs, [cell], fn)
    lengths = _check_lengths(sequence_length, x.shape[0], x.shape[1], x.device, fn)
    outputs, states = _run(cell, x, lengths, initial_state, fn)
    return list(outputs.unbind(1)), _public_state(states)


def dynamic_rnn(cell: Any, inputs: Any, sequence_length: Any = None, initial_state: Any = None,
                time_major: bool = False):
    """``tf.nn.dynamic_rnn``: run ``cell`` over the time axis of one tensor.

    Args:
        cell: a recurrent cell.
        inputs: ``(batch, max_time, features...)``, or ``(max_time, batch,
            features...)`` with ``time_major=True``.
        sequence_length: integer ``(batch,)`` with values in ``[0, max_time]``, or None.
        initial_state: as in :func:`static_rnn`.
        time_major: layout of ``inputs`` and of the returned ``outputs``.

    Returns:
        ``(outputs, state)``: ``outputs`` ``(batch, max_time, output_size)``
        (time-major with ``time_major``), zero at ``t >= sequence_length[b]``;
        ``state`` the state after each row's last valid step.
    """
    fn = "dynamic_rnn"
    check_cell(cell, fn)
    x = _dynamic_inputs(inputs, [cell], time_major, fn)
    lengths = _check_lengths(sequence_length, x.shape[0], x.shape[1], x.device, fn)
    outputs, states = _run(cell, x, lengths, initial_state, fn)
    if time_major:
        outputs = outputs.transpose(0, 1)
    return outputs, _public_state(states)


def _bidirectional(cell_fw, cell_bw, x, lengths, initial_state_fw, initial_state_bw, fn):
    out_fw, st_fw = _run(cell_fw, x, lengths, initial_state_fw, fn, "initial_state_fw")
    tmp, st_bw = _run(cell_bw, reverse_sequence(x, lengths), lengths, initial_state_bw, fn, "initial_state_bw")
    out_bw = reverse_sequence(tmp, lengths)
    return out_fw, out_bw, _public_state(st_fw), _public_state(st_bw)


def static_bidirectional_rnn(cell_fw: Any, cell_bw: Any, inputs: Sequence[Any], initial_state_fw: Any = None,
                             initial_state_bw: Any = None, sequence_length: Any = None):
    """``tf.nn.static_bidirectional_rnn``: forward and backward over a list of ``T`` tensors.

    The backward cell reads each row's valid part reversed
    (``reverse_sequence``) and its outputs are reversed back the same way, so
    the backward output at step ``t`` has read ``x[L-1], ..., x[t]``.

    Args:
        cell_fw, cell_bw: recurrent cells (may differ in size).
        inputs: list of ``T`` tensors, each ``(batch, features...)``.
        initial_state_fw, initial_state_bw: as ``initial_state`` of :func:`static_rnn`.
        sequence_length: integer ``(batch,)`` with values in ``[0, T]``, or None.

    Returns:
        ``(outputs, state_fw, state_bw)``: ``outputs`` a list of ``T`` tensors
        ``(batch, fw_size + bw_size)``, forward then backward output
        concatenated on the last axis (zero at ``t >= sequence_length[b]``);
        the final forward and backward states.
    """
    fn = "static_bidirectional_rnn"
    check_cell(cell_fw, fn, "cell_fw")
    check_cell(cell_bw, fn, "cell_bw")
    x = _stack_static(inputs, [cell_fw, cell_bw], fn)
    lengths = _check_lengths(sequence_length, x.shape[0], x.shape[1], x.device, fn)
    out_fw, out_bw, st_fw, st_bw = _bidirectional(cell_fw, cell_bw, x, lengths, initial_state_fw,
                                                  initial_state_bw, fn)
    outputs = torch.cat([out_fw, out_bw], dim=-1)
    return list(outputs.unbind(1)), st_fw, st_bw


def bidirectional_dynamic_rnn(cell_fw: Any, cell_bw: Any, inputs: Any, sequence_length: Any = None,
                              initial_state_fw: Any = None, initial_state_bw: Any = None,
                              time_major: bool = False):
    """``tf.nn.bidirectional_dynamic_rnn``: forward and backward over one tensor.

    Args:
        cell_fw, cell_bw: recurrent cells (may differ in size).
        inputs: ``(batch, max_time, features...)``, or time-major with ``time_major``.
        sequence_length: integer ``(batch,)`` with values in ``[0, max_time]``, or None.
        initial_state_fw, initial_state_bw: as ``initial_state`` of :func:`dynamic_rnn`.
        time_major: layout of ``inputs`` and of both outputs.

    Returns:
        ``((output_fw, output_bw), (state_fw, state_bw))``, not concatenated:
        ``output_fw`` ``(batch, max_time, fw_size)``, ``output_bw``
        ``(batch, max_time, bw_size)`` (time-major with ``time_major``), both
        zero at ``t >= sequence_length[b]``; ``output_bw[b, t]`` lines up with
        input ``t`` (it has read ``x[b, L-1], ..., x[b, t]``).
    """
    fn = "bidirectional_dynamic_rnn"
    check_cell(cell_fw, fn, "cell_fw")
    check_cell(cell_bw, fn, "cell_bw")
    x = _dynamic_inputs(inputs, [cell_fw, cell_bw], time_major, fn)
    lengths = _check_lengths(sequence_length, x.shape[0], x.shape[1], x.device, fn)
    out_fw, out_bw, st_fw, st_bw = _bidirectional(cell_fw, cell_bw, x, lengths, initial_state_fw,
                                                  initial_state_bw, fn)
    if time_major:
        out_fw, out_bw = out_fw.transpose(0, 1), out_bw.transpose(0, 1)
    return (out_fw, out_bw), (st_fw, st_bw)
