"""``PreparedCall``: one call of a recurrent layer, its arguments converted and validated; and the shortcuts of
calls with one plain tensor: ``shortcut_call`` (the layer's kept plan, :mod:`rnnkit.layers.call_plan`) and
``plain_call`` (the common call whose arguments need no conversion)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rnnkit.core.protocol import reset_dropout, zero_states
from rnnkit.kernels.path import FUSED, select_path
from rnnkit.kernels.spec import capturing_graph, spec_for, zero_initial
from rnnkit.layers.call_plan import keep_plan

if TYPE_CHECKING:
    from rnnkit.kernels.path import Plan
    from rnnkit.layers.rnn import RNN


class PreparedCall:
    """One call of a recurrent layer, its arguments converted and validated.

    ``layer.prepare(sequences, initial_state, mask, training, constants)``
    makes it; every path (generic loop, hoisted loop, fused kernel, the
    bidirectional kernel) runs on its fields:

    * ``inputs``: batch-major ``(batch, timesteps, features...)`` in the layer's
      dtype and on its device (``time_major`` inputs are transposed here, the
      one layout conversion);
    * ``states``: the initial states (given, stored by a stateful layer, or
      the cell's), nested as the cell's own;
    * ``mask``: boolean ``(batch, timesteps)`` or None; ``training``: a bool;
      ``constants``: a list of tensors or None;
    * ``zero_states``: the states are a built-in cell's zero initial states
      (no ``initial_state`` given, no stored states): a static fact some
      kernel runs use.

    ``plan()`` says which path the call takes (:func:`rnnkit.explain`),
    ``run()`` runs it and returns what the layer's call returns, and
    ``finish(last, outputs, new_states)`` turns a path's raw results into that
    return value (stateful bookkeeping included).
    """

    __slots__ = ("layer", "inputs", "states", "mask", "training", "constants", "zero_states")

    def __init__(self, layer: RNN, inputs: torch.Tensor, states: list, mask: torch.Tensor | None, training: bool,
                 constants: list | None, zero_states: bool = False) -> None:
        self.layer = layer
        self.inputs = inputs
        self.states = states
        self.mask = mask
        self.training = training
        self.constants = constants
        self.zero_states = zero_states

    def plan(self) -> Plan:
        return self.layer.path_for(self)

    def run(self) -> Any:
        return self.finish(*self.layer.run_prepared(self))

    def finish(self, last: torch.Tensor, outputs: torch.Tensor, new_states: list) -> Any:
        return self.layer.finish_call(last, outputs, new_states, self.mask)


def shortcut_call(layer: RNN, x: torch.Tensor, initial_state: Any, training: Any) -> Any:
    """A call with one plain tensor and no mask or constants: the layer's kept plan where it holds (never while
    a graph is captured), else, without initial states, :func:`plain_call`; ``None``: the general route runs."""
    plans = None if capturing_graph() else layer.__dict__.get("_call_plans")  # (see call_with_plan)
    if plans:
        plan = plans.get((x.shape, initial_state is not None, torch.is_grad_enabled()))
        if plan is not None:
            result = plan.run(layer, x, training, initial_state)
            if result is not None:
                return result
    return plain_call(layer, x, training) if initial_state is None else None


def plain_call(layer: RNN, x: torch.Tensor, training: Any) -> Any:
    """The most common call, eagerly: one tensor of the layer's dtype, device and feature shape, no
    mask, initial state or constants, on the fused path. The same steps as ``prepare(...).run()``
    (the same path choice, kernels and return convention) with nothing to convert; ``None`` when
    any of that does not hold (the general route then runs, and raises what is wrong)."""
    cell = layer.cell
    if (layer.time_major or spec_for(cell) is None or x.dim() != 3 or getattr(x, "_keras_mask", None) is not None
            or capturing_graph()):
        return None
    training = layer.training if training is None else bool(training)
    if select_path(layer, None, training).path != FUSED:
        return None
    kernel = cell._parameters.get("kernel")
    kernel = kernel if kernel is not None else cell.kernel  # (a parametrized weight: its value)
    if x.dtype != kernel.dtype or x.device != kernel.device or x.shape[2:] != layer.feature_shape:
        return None
    batch = x.shape[0]
    if layer.stateful:
        states = layer.states
        if states is None or layer.stored_batch_size() != batch:
            return None  # first call, or another batch size: the general route decides
    elif zero_initial(cell):
        states = zero_states(cell.state_size, batch, x.dtype, x.device)  # a built-in cell's initial states
    else:
        return None  # (the cell's own initial states: the general route asks for them)
    if not training:  # (no dropout masks are made or read)
        last, outputs, new_states = layer.run_fused(x, states, None, False)
    else:
        reset_dropout(cell)
        try:
            last, outputs, new_states = layer.run_fused(x, states, None, True)
        finally:
            reset_dropout(cell)
    result = layer.finish_call(last, outputs, new_states, None)
    keep_plan(layer, x, training)  # (its decisions kept for the next calls like it: rnnkit.layers.call_plan)
    return result
