"""The one generic recurrent loop, ``rnn()``, with Keras backend semantics.

Every recurrent layer in rnnkit that is not on a fused kernel runs through this
function. In pseudo-code (``x`` time-major, ``m`` the boolean mask)::

    order = reversed(range(T)) if go_backwards else range(T)
    prev = zeros                       # previous output
    for t in order:
        y, new = step_function(x[t], states + constants)
        if mask is None:
            out, states = y, new
        else:
            states = where(m[t], new, states)          # masked: carry state
            out = where(m[t], y, 0 if zero_output_for_mask else prev)
            prev = out
        outputs.append(out)            # processing order
    return out, stack(outputs), states

``outputs`` are in *processing* order: with ``go_backwards=True`` the first
entry belongs to the last timestep (Keras behaviour; ``Bidirectional`` flips
it back). The step function is called exactly ``T`` times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch

from rnnkit.core.protocol import StepFunction
from rnnkit.core.sequences import lengths_to_mask
from rnnkit.core.tree import flatten, pack_as


def _where(mask_t: torch.Tensor, new: torch.Tensor, old: torch.Tensor | float) -> torch.Tensor:
    """``where(mask, new, old)`` with a ``(batch,)`` mask broadcast over ``new``."""
    m = mask_t.view(mask_t.shape[0], *([1] * (new.dim() - 1)))
    return torch.where(m, new, old)


def rnn(
    step_function: StepFunction,
    inputs: Any,
    initial_states: Sequence[Any],
    go_backwards: bool = False,
    mask: torch.Tensor | None = None,
    constants: Sequence[torch.Tensor] | None = None,
    unroll: bool = False,
    input_length: int | torch.Tensor | None = None,
    time_major: bool = False,
    zero_output_for_mask: bool = False,
    return_all_outputs: bool = True,
):
    """Iterate ``step_function`` over the time dimension of ``inputs``.

    Args:
        step_function: ``(input_t, states) -> (output_t, new_states)`` where
            ``input_t`` is ``(batch, ...)`` and ``states`` is the tuple of
            states followed by ``constants``.
        inputs: tensor ``(batch, time, ...)`` (``(time, batch, ...)`` with
            ``time_major``), or a list/tuple/dict of such tensors.
        initial_states: list of state tensors (entries may be nested lists).
        go_backwards: process the sequence from its end; outputs stay in
            processing order.
        mask: boolean ``(batch, time)`` (``(time, batch)`` with ``time_major``);
            False steps carry states and the previous output forward.
        constants: tensors appended to the states at every step.
        unroll: accepted for Keras compatibility; torch loops are always
            eager, so unrolling changes nothing but requires a known length.
        input_length: an int (number of steps to run, at most ``time``) or a
            ``(batch,)`` tensor of valid lengths, used as a right-padded mask
            when ``mask`` is None.
        time_major: layout of ``inputs``, ``mask`` and ``outputs``.
        zero_output_for_mask: masked steps output zeros instead of the
            previous output.
        return_all_outputs: when False, ``outputs`` holds only the last output
            (time dimension of size 1).

    Returns:
        ``(last_output, outputs, new_states)``: ``last_output`` ``(batch, ...)``,
        ``outputs`` ``(batch, time, ...)`` (or time-major), ``new_states`` a
        list with the structure of ``initial_states``.
    """
    flat_inputs = flatten(inputs)
    if not flat_inputs or not all(isinstance(x, torch.Tensor) for x in flat_inputs):
        raise TypeError(f"rnn(): inputs must be a tensor or a nested structure of tensors, got {type(inputs).__name__}")
    if any(x.dim() < 3 for x in flat_inputs):
        shapes = [tuple(x.shape) for x in flat_inputs]
        raise ValueError(f"rnn(): inputs must have rank >= 3 (batch, time, ...), got shapes {shapes}")
    if not time_major:
        flat_inputs = [x.transpose(0, 1) for x in flat_inputs]
    timesteps, batch = flat_inputs[0].shape[:2]
    if timesteps == 0:
        raise ValueError("rnn(): inputs have 0 timesteps; at least one step is needed")

    steps = timesteps
    if isinstance(input_length, torch.Tensor) and input_length.dim() > 0:
        if mask is None:
            mask = lengths_to_mask(input_length, timesteps)
            if time_major:
                mask = mask.t()
    elif input_length is not None:
        steps = min(timesteps, int(input_length))
        if steps <= 0:
            raise ValueError(f"rnn(): input_length must be positive, got {input_length}")

    if mask is not None:
        if mask.dim() != 2:
            raise ValueError(f"rnn(): mask must be 2-D (batch, time), got shape {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            mask = mask != 0
        if not time_major:
            mask = mask.t()
        if tuple(mask.shape) != (timesteps, batch):
            expected = (timesteps, batch) if time_major else (batch, timesteps)
            got = tuple(mask.shape) if time_major else tuple(mask.t().shape)
            raise ValueError(f"rnn(): mask shape {got} does not match inputs, expected {expected}")

    constants = tuple(constants) if constants else ()
    structure = inputs if len(flat_inputs) > 1 else None
    states = list(initial_states)
    order = range(timesteps - 1, timesteps - 1 - steps, -1) if go_backwards else range(steps)

    # unbind once: indexing x[t] inside the loop would make every step's
    # backward allocate and fill a zero tensor of the whole input (O(T^2)).
    per_step = [x.unbind(0) for x in flat_inputs]
    masks = mask.unbind(0) if mask is not None else None
    outputs: list[torch.Tensor] = []
    output = prev = None
    for t in order:
        x_t = per_step[0][t] if structure is None else pack_as(structure, [x[t] for x in per_step])
        output, new_states = step_function(x_t, tuple(states) + constants)
        if masks is not None:
            m = masks[t]
            flat_old = flatten(states)
            flat_new = flatten(new_states)
            states = pack_as(new_states, [_where(m, n, o) for n, o in zip(flat_new, flat_old)])
            if prev is None:
                prev = torch.zeros_like(output)
            output = _where(m, output, 0.0 if zero_output_for_mask else prev)
            prev = output
        else:
            states = new_states
        if return_all_outputs:
            outputs.append(output)
    if not isinstance(states, list):
        states = list(states) if isinstance(states, tuple) else [states]

    # timesteps and steps are >= 1, so the loop ran and ``output`` is the last step's output tensor
    stacked = torch.stack(outputs if return_all_outputs else [cast(torch.Tensor, output)])
    if not time_major:
        stacked = stacked.transpose(0, 1)
    return output, stacked, states
