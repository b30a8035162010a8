"""``StreamPlan``: a stateful built-in layer fed one step per call (online inference), its call's decisions kept.

A streaming call (``layer(x)`` with ``x`` of shape ``(batch, 1, features)``, ``stateful=True``, no gradients)
does microseconds of arithmetic, and the general route (:func:`rnnkit.layers.prepared.plain_call`: the path
choice, the weight cache, the kernel choice, the return convention) costs more than that. After a plain call
that ran on the native kernel, the layer keeps what it decided (``layer.__dict__["_stream_plan"]``); the next
call with the same static facts runs the native kernel's one-step entry (``rnn_step``, the same arithmetic as
the kernel's ``infer`` op to the bit) directly on the stored states and stores the new ones.

The plan holds while nothing it was decided on has changed:

* the layer's and the cell's configuration: any attribute assigned or deleted (``layer.__dict__[GENERATION]``,
  counted by :class:`rnnkit.engine.weights.WeightsMixin`), ``train()``/``eval()`` included;
* the call: the input's shape and dtype (a CPU tensor with no ``_keras_mask``), ``training``, torch's thread
  count (the kernel choice reads it), no gradients, no autocast, no graph capture, no ``torch.func`` transform;
* the weights: the same parameter objects at the same storage and version (what
  :func:`rnnkit.kernels.spec.cell_to_torch` keys its cache on);
* the stored states: there, of the input's batch size.

Anything else goes the general route, which makes a new plan where it qualifies. Every output, state and
return convention is the general route's: tested against it (``tests/layers/test_stream_plan.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rnnkit.engine.weights import GENERATION
from rnnkit.kernels import native
from rnnkit.kernels.fused import native_chosen
from rnnkit.kernels.ops import mode_of
from rnnkit.kernels.spec import cell_to_torch, kernel_for

if TYPE_CHECKING:
    from rnnkit.layers.rnn import RNN

_PARAMS = ("kernel", "recurrent_kernel", "bias")


class StreamPlan:
    """What a streaming call of one layer decided (see the module docstring); ``run`` repeats it."""

    __slots__ = ("facts", "params", "weights_key", "weights", "step", "mode", "n_states", "sequences",
                 "return_state")

    def __init__(self, facts: tuple, params: tuple, weights: tuple, step: Any, mode: int, n_states: int,
                 sequences: bool, return_state: bool) -> None:
        self.facts = facts
        self.params = params
        self.weights_key = _weights_key(params)
        self.weights = weights
        self.step = step
        self.mode = mode
        self.n_states = n_states
        self.sequences = sequences
        self.return_state = return_state

    def run(self, layer: RNN, x: torch.Tensor, training: Any) -> Any:
        """The call's result, or None when a fact it was made on no longer holds (the general route runs)."""
        cell = layer.cell
        if (_facts(layer, cell, x, training) != self.facts or not _inference_now()
                or "_keras_mask" in x.__dict__ or not x.is_cpu):
            return None
        params = cell._parameters
        held = self.params
        if (params.get("kernel") is not held[0] or params.get("recurrent_kernel") is not held[1]
                or params.get("bias") is not held[2] or _weights_key(held) != self.weights_key):
            return None
        buffers = layer._buffers
        h = buffers.get("state_0")
        if h is None or h.shape[0] != x.shape[0]:
            return None
        c = buffers.get("state_1") if self.n_states == 2 else None
        w_ih_t, b_ih, whh_t, b_hh = self.weights
        out, *states = self.step(x, w_ih_t, b_ih, whh_t, b_hh, h, c, self.mode, self.sequences)
        buffers["state_0"] = states[0]
        if c is not None:
            buffers["state_1"] = states[1]
        return [out, *states] if self.return_state else out


def stream_plan_for(layer: RNN, x: torch.Tensor, training: Any) -> StreamPlan | None:
    """A plan for calls like this plain call of ``layer`` (made after it ran, from what it ran on), or None
    where the one-step entry would not run it: not a stateful one-step inference call on the native kernel."""
    cell = layer.cell
    if (not layer.stateful or layer.time_major or x.dim() != 3 or x.shape[1] != 1 or not _inference_now()
            or not x.is_cpu or native.unavailable() is not None or not native._MODULE):
        return None
    resolved = layer.training if training is None else bool(training)
    if resolved and (cell.dropout or cell.recurrent_dropout):
        return None
    params = cell._parameters
    held = tuple(params.get(name) for name in _PARAMS)
    if held[0] is None or held[1] is None or (cell.use_bias and held[2] is None) or any(
            p.is_inference() for p in held if p is not None):
        return None  # (parametrized weights, or weights without a version counter: the general route)
    weights = cell_to_torch(cell)
    mode = mode_of(kernel_for(cell))
    if not native_chosen(cell, x, False, mode, weights[0]) or native.use_blas(x.shape[0], cell.units, mode):
        return None
    states = layer.states
    if states is None or len(states) != (2 if mode == "lstm" else 1):
        return None
    return StreamPlan(_facts(layer, cell, x, training), held, native.inference_weights(weights, cell.use_bias),
                      native._MODULE[0].step, native.MODES[mode], len(states), layer.return_sequences,
                      layer.return_state)


def _facts(layer: RNN, cell: Any, x: torch.Tensor, training: Any) -> tuple:
    """The static facts a plan is made on that every call reads anew."""
    return (layer.__dict__.get(GENERATION), cell.__dict__.get(GENERATION), x.shape, x.dtype,
            layer.training if training is None else bool(training), torch.get_num_threads())


def _inference_now() -> bool:
    """No gradients, autocast, graph capture or ``torch.func`` transform in effect."""
    return not (torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()
                or torch._C._is_tracing() or torch._C._are_functorch_transforms_active())


def _weights_key(params: tuple) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in params if p is not None)
