"""``StreamPlan``: a built-in layer fed one step per call (online inference), its call's decisions kept.

A streaming call (``x`` of shape ``(batch, 1, features)``, no gradients: a stateful layer's ``layer(x)``, or
``layer(x, initial_state=states)`` carrying the states from call to call) does microseconds of arithmetic, and
the general route (the path choice, the weight cache, the kernel choice, the argument checks, the return
convention) costs more than that. After such a call ran on the native kernel, the layer keeps what it decided
(``layer.__dict__["_stream_plan"]``); the next call with the same static facts runs the native kernel's
one-step entry (``rnn_step``, the arithmetic of the kernel's ``infer`` op to the bit) directly on the states
(stored, given or zeros) and stores the new ones where the layer is stateful.

The plan holds while nothing it was decided on has changed:

* the layer's and the cell's configuration: any attribute assigned or deleted (``layer.__dict__[GENERATION]``,
  counted by :class:`rnnkit.engine.weights.WeightsMixin`), ``train()``/``eval()`` included;
* the call: the input's shape and dtype (a CPU tensor with no ``_keras_mask``, no negation bit, with storage),
  ``training``, whether initial states are given, torch's thread count (the kernel choice reads it); no
  gradients, autocast, graph capture, ``torch.func`` transform or torch function/dispatch mode (``make_fx``
  records ops: the general route's are ops, the one-step entry is not);
* the layer's class: rnnkit's own methods for everything the plan replaces (a subclass overriding
  ``finish_call`` and the like gets no plan); without given or stored states, a cell whose initial states are
  its family's zeros;
* the weights: the same parameter objects at the same storage and version (what
  :func:`rnnkit.kernels.spec.cell_to_torch` keys its cache on);
* the states: stored ones of the input's batch size; given ones as contiguous ``(batch, units)`` CPU tensors
  of the input's dtype (anything the general route would convert or refuse goes there).

Anything else goes the general route, which makes a new plan where it qualifies. Every output, state and
return convention is the general route's: tested against it (``tests/layers/test_stream_plan.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rnnkit.engine.weights import GENERATION
from rnnkit.kernels import native
from rnnkit.kernels.fused import native_chosen, native_layout
from rnnkit.kernels.ops import mode_of
from rnnkit.kernels.path import FUSED, select_path
from rnnkit.kernels.spec import kernel_for, zero_initial

if TYPE_CHECKING:
    from rnnkit.layers.rnn import RNN

_PARAMS = ("kernel", "recurrent_kernel", "bias")


class StreamPlan:
    """What a streaming call of one layer decided (see the module docstring); ``run`` repeats it."""

    __slots__ = ("facts", "params", "weights_key", "weights", "step", "mode", "n_states", "units", "stateful",
                 "sequences", "return_state")

    def __init__(self, layer: RNN, facts: tuple, params: tuple, weights: tuple, mode: str) -> None:
        self.facts = facts
        self.params = params
        self.weights_key = _weights_key(params)
        self.weights = weights
        self.step = native._MODULE[0].step
        self.mode = native.MODES[mode]
        self.n_states = 2 if mode == "lstm" else 1
        self.units = layer.cell.units
        self.stateful = layer.stateful
        self.sequences = layer.return_sequences
        self.return_state = layer.return_state

    def run(self, layer: RNN, x: torch.Tensor, training: Any, initial_state: Any = None) -> Any:
        """The call's result, or None when a fact it was made on no longer holds (the general route runs)."""
        cell = layer.cell
        if (not _inference_now() or _facts(layer, cell, x, training, initial_state is not None) != self.facts
                or not _plain_data(x) or "_keras_mask" in x.__dict__):
            return None
        params = cell._parameters
        held = self.params
        if (params.get("kernel") is not held[0] or params.get("recurrent_kernel") is not held[1]
                or params.get("bias") is not held[2] or _weights_key(held) != self.weights_key):
            return None
        batch = x.shape[0]
        if self.stateful:
            buffers = layer._buffers
            states = [buffers.get("state_0"), buffers.get("state_1")][:self.n_states]
            if states[0] is None or states[0].shape[0] != batch:
                return None
        elif initial_state is not None:
            states = initial_state
            if (type(states) not in (list, tuple) or len(states) != self.n_states
                    or not all(_state_fits(s, batch, self.units, x.dtype) for s in states)):
                return None  # (converted or refused by the general route)
        else:  # a built-in cell's initial states
            states = [x.new_zeros(batch, self.units) for _ in range(self.n_states)]
        w_ih_t, b_ih, whh_t, b_hh = self.weights
        out, *new_states = self.step(x, w_ih_t, b_ih, whh_t, b_hh, states[0], states[-1] if self.n_states == 2
                                     else None, self.mode, self.sequences)
        if self.stateful:
            buffers["state_0"] = new_states[0]
            if self.n_states == 2:
                buffers["state_1"] = new_states[1]
        return [out, *new_states] if self.return_state else out


def stream_plan_for(layer: RNN, x: torch.Tensor, training: Any, initial_state: bool = False) -> StreamPlan | None:
    """A plan for calls like this one of ``layer`` (made after it ran: one step, no mask or constants;
    ``initial_state``: whether it was given one), or None where the one-step entry would not run such calls:
    not on the native kernel, not inference, or a stateful layer given initial states."""
    cell = layer.cell
    if (layer.time_major or (layer.stateful and initial_state) or x.dim() != 3 or x.shape[1] != 1
            or not _inference_now() or not _plain_data(x) or native.unavailable() is not None or not native._MODULE
            or not _rnnkit_methods(type(layer))):
        return None
    if not (layer.stateful or initial_state or zero_initial(cell)):
        return None  # (the cell's own initial states: the general route asks for them)
    resolved = layer.training if training is None else bool(training)
    if select_path(layer, None, resolved).path != FUSED or (resolved and cell.dropout):
        return None
    params = cell._parameters
    held = tuple(params.get(name) for name in _PARAMS)
    if held[0] is None or held[1] is None or (cell.use_bias and held[2] is None) or any(
            p.is_inference() for p in held if p is not None):
        return None  # (parametrized weights, or weights without a version counter: the general route)
    mode = mode_of(kernel_for(cell))
    if (x.dtype != held[0].dtype or x.shape[2:] != layer.feature_shape or not native_chosen(cell, x, False, mode)
            or native.use_blas(x.shape[0], cell.units, mode)):
        return None
    if layer.stateful:
        states = layer.states
        if states is None or len(states) != (2 if mode == "lstm" else 1):
            return None
    weights, native_mode = native_layout(cell)  # (what the general route's native call runs on)
    return StreamPlan(layer, _facts(layer, cell, x, training, initial_state), held,
                      native.inference_weights(weights, cell.use_bias), native_mode)


def _facts(layer: RNN, cell: Any, x: torch.Tensor, training: Any, initial_state: bool) -> tuple:
    """The static facts a plan is made on that every call reads anew."""
    return (layer.__dict__.get(GENERATION), cell.__dict__.get(GENERATION), x.shape, x.dtype,
            layer.training if training is None else bool(training), torch.get_num_threads(), initial_state)


def _state_fits(state: Any, batch: int, units: int, dtype: torch.dtype) -> bool:
    """A given state the one-step entry reads as it is (what the general route would not convert)."""
    return (type(state) is torch.Tensor and state.dim() == 2 and state.shape[0] == batch and state.shape[1] == units
            and state.dtype == dtype and state.is_contiguous() and _plain_data(state))


def _plain_data(t: torch.Tensor) -> bool:
    """A CPU tensor whose memory holds its values (no negation bit, not a storage-less zero tensor)."""
    return t.is_cpu and not t.is_neg() and not t._is_zerotensor()


def _inference_now() -> bool:
    """Plain eager inference: no gradients, autocast, graph capture, ``torch.func`` transform, or torch
    function or dispatch mode (``make_fx`` and the like record ops; the one-step entry is not one)."""
    return not (torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()
                or torch._C._is_tracing() or torch._C._are_functorch_transforms_active()
                or torch._C._len_torch_dispatch_stack() or torch._C._len_torch_function_stack())


# What a plan replaces: a layer class overriding any of these (outside rnnkit) gets no plan.
_REPLACED = ("forward", "call", "prepare", "run_prepared", "path_for", "run_fused", "finish_call", "_store_states",
             "states", "_nest")
_RNNKIT_METHODS: dict[type, bool] = {}


def _rnnkit_methods(kind: type) -> bool:
    """Whether every method a plan replaces is rnnkit's own for this layer class (kept per class)."""
    found = _RNNKIT_METHODS.get(kind)
    if found is None:
        found = True
        for name in _REPLACED:
            member = getattr(kind, name, None)
            function = member.fget if isinstance(member, property) else member
            found = found and getattr(function, "__module__", "").startswith("rnnkit.")
        _RNNKIT_METHODS[kind] = found
    return found


def _weights_key(params: tuple) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in params if p is not None)
