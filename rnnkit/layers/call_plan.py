"""``CallPlan``: a built-in layer's plain call, its decisions kept from one call to the next.

A plain call (``layer(x)``, or ``layer(x, initial_state=states)``; no mask or constants) of a fusable layer does
the same work every time before and after its kernel: the path choice, the weight cache, the kernel choice, the
argument checks, the return convention. That costs 10-30 us, more than a one-step call's arithmetic and a few
percent of a short sequence's. When a layer gets two such calls in a row with the same static facts, it keeps
what the general route decided (in ``layer.__dict__["_call_plans"]``, by input shape, whether states are given
and whether gradients are on: up to ``PLANS_KEPT``), and the next calls with those facts run the kernel
directly on the states (stored, given or zeros), storing the new ones where the layer is stateful; where no
hook, ``module.compile()`` or activity regularizer asks for the module call, before it (:func:`call_with_plan`,
``RNN.__call__``). Without gradients (inference), with the converted weights kept:

* rnnkit's native kernel: one step (``x`` of shape ``(batch, 1, features)``, a stateful layer fed a step at a
  time or states carried as ``initial_state``) through its one-step entry ``rnn_step``, called directly (the
  arithmetic of its ``infer`` op to the bit); longer sequences through the ``infer`` op;
* PyTorch's kernel (``torch.lstm`` ...) with the kept weights.

With gradients on (training steps; no dropout in training), the weights converted anew at each call
(differentiable, as the general route does): the native kernel's autograd function or PyTorch's kernel; stored
states out of the graph, returned ones in it. A training call measured 14-23 us less (LSTM at (128, 20, 32, 64)
on torch's kernel: 22 us around the kernel instead of 36-45; SimpleRNN at (4, 10, 8, 16): 100 us a training
step instead of 120).

The plan holds while nothing it was decided on has changed:

* the layer's and the cell's configuration: any attribute assigned or deleted (``layer.__dict__[GENERATION]``,
  counted by :class:`rnnkit.engine.weights.WeightsMixin`), ``train()``/``eval()`` included;
* the call: the input's shape and dtype (a CPU tensor with no ``_keras_mask``, no negation bit, with storage),
  ``training``, whether initial states are given, torch's thread count (the kernel choice reads it), the grad
  mode; no autocast, graph capture, ``torch.func`` transform or torch function/dispatch mode (``make_fx``
  records ops: the general route's are ops, the one-step entry is not);
* the layer's class: rnnkit's own methods for everything the plan replaces (a subclass overriding
  ``finish_call`` and the like gets no plan); without given or stored states, a cell whose initial states are
  its family's zeros;
* the weights: the same parameter objects at the same storage (a new dtype or device, ``.data`` assigned, send
  the call back), and in inference, whose converted weights are kept, at the same version (what
  :func:`rnnkit.kernels.spec.cell_to_torch` keys its cache on);
* the states: stored ones of the input's batch size; given ones as contiguous ``(batch, units)`` CPU tensors
  of the input's dtype (anything the general route would convert or refuse goes there).

Anything else goes the general route, which keeps a new plan where one qualifies (on the second call in a row
with the same facts, the weights' version included in inference), or the facts it declined (``Declined``: not
asked again for them). A plan that refuses more calls than it runs (given states it cannot read, masked
inputs) is declined too: remade at every call, it would cost more than it saves. Every output, state, return
convention and gradient is the general route's, to the bit: tested against it
(``tests/layers/test_call_plan.py``, ``tests/layers/test_call_plan_training.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rnnkit.engine.layer import Layer
from rnnkit.engine.weights import GENERATION
from rnnkit.kernels import native
from rnnkit.kernels.fused import direct_call, native_chosen, native_layout
from rnnkit.kernels.ops import mode_of
from rnnkit.kernels.path import FUSED, select_path
from rnnkit.kernels.spec import capturing_graph, cell_to_torch, kernel_for, zero_initial

if TYPE_CHECKING:
    from rnnkit.layers.rnn import RNN

_PARAMS = ("kernel", "recurrent_kernel", "bias")
PLANS_KEPT = 4  # plans (or declined facts) a layer keeps, by input shape and whether states are given


class CallPlan:
    """What a plain call of one layer decided (see the module docstring); ``run`` repeats it."""

    __slots__ = ("facts", "key", "uses", "misses", "params", "weights_key", "weights", "kernel", "runner", "mode",
                 "n_states", "units", "stateful", "sequences", "return_state", "go_backwards", "zero_output",
                 "use_bias", "blas", "grad", "cell")

    def __init__(self, layer: RNN, facts: tuple, params: tuple, kernel: str, weights: Any, mode: Any,
                 n_states: int, blas: bool = False) -> None:
        cell = layer.cell
        self.grad = kernel.startswith("train")  # (a plan for calls with gradients on)
        self.cell = cell
        self.facts = facts
        self.key: tuple = ()  # (keep_plan's facts of the calls it was made on)
        self.uses = self.misses = 0  # (calls run, calls refused)
        self.params = params
        self.weights_key = _weights_key(params, versions=not self.grad)
        # "step" | "infer" (the native kernel's) | "torch"; with gradients on "train native" | "train torch"
        self.kernel = kernel
        self.runner = _RUNNERS[kernel]
        self.weights = weights
        self.mode = mode  # the native kernel's mode number, or torch's kernel function
        self.n_states = n_states
        self.units = cell.units
        self.stateful = layer.stateful
        self.sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.go_backwards = layer.go_backwards
        self.zero_output = layer.zero_output_for_mask
        self.use_bias = cell.use_bias
        self.blas = blas

    def run(self, layer: RNN, x: torch.Tensor, training: Any, initial_state: Any = None) -> Any:
        """The call's result, or None when a fact it was made on no longer holds (the general route runs)."""
        cell = layer.cell
        grad = torch.is_grad_enabled()
        if (grad is not self.grad or not _plain_now() or _facts(layer, cell, x, training, initial_state is not None)
                != self.facts or not _plain_data(x) or "_keras_mask" in x.__dict__):
            return None
        params = cell._parameters
        held = self.params
        if (params.get("kernel") is not held[0] or params.get("recurrent_kernel") is not held[1]
                or params.get("bias") is not held[2] or _weights_key(held, not grad) != self.weights_key):
            return None  # (a training plan converts the weights at each call: their versions may change)
        batch = x.shape[0]
        if self.stateful:
            if layer.__dict__.get("_states_zeroed"):
                return None  # (after a reset: the general route decides the batch size, and clears the flag)
            buffers = layer._buffers
            h = buffers.get("state_0")
            c = buffers.get("state_1") if self.n_states == 2 else h
            if h is None or c is None or h.shape[0] != batch or (
                    self.kernel == "step" and not (h.is_contiguous() and c.is_contiguous())):
                return None
            states = [h, c] if self.n_states == 2 else [h]
        elif initial_state is not None:
            states = initial_state
            if (type(states) not in (list, tuple) or len(states) != self.n_states
                    or not all(_state_fits(s, batch, self.units, x.dtype) for s in states)):
                return None  # (converted or refused by the general route)
        else:  # a built-in cell's initial states
            states = [x.new_zeros(batch, self.units) for _ in range(self.n_states)]
        output, new_states = self.runner(self, x, states)
        self.uses += 1
        if self.stateful:  # (with gradients on, stored out of the graph, returned in it, as the general route)
            stored = [s.detach() for s in new_states] if grad else new_states
            buffers["state_0"] = stored[0]
            if self.n_states == 2:
                buffers["state_1"] = stored[1]
        return [output, *new_states] if self.return_state else output

    def _step(self, x: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """The native kernel's one-step entry (its output is the layer's: a sequence or the last step)."""
        w_ih_t, b_ih, whh_t, b_hh = self.weights
        out, *new_states = native._MODULE[0].step(x, w_ih_t, b_ih, whh_t, b_hh, states[0],
                                                  states[1] if self.n_states == 2 else None, self.mode,
                                                  self.sequences)
        return out, new_states

    def _infer(self, x: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """The native kernel's ``infer`` op, as :func:`rnnkit.kernels.native.native_call` calls it."""
        w_ih_t, b_ih, whh_t, b_hh = self.weights
        h0 = states[0] if states[0].is_contiguous() else states[0].contiguous()
        c0 = (states[1] if states[1].is_contiguous() else states[1].contiguous()) if self.n_states == 2 else None
        outputs, *new_states = native._ops()[2](x, w_ih_t, b_ih, whh_t, b_hh, h0, c0, None, self.mode,
                                                self.go_backwards, self.zero_output, self.blas)
        return (outputs if self.sequences else outputs.select(1, -1)), new_states

    def _torch(self, x: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """PyTorch's kernel, as :func:`rnnkit.kernels.fused.run_kernel` calls it."""
        if self.go_backwards:
            x = x.flip(1)
        h = tuple(s.unsqueeze(0) for s in states) if self.n_states == 2 else states[0].unsqueeze(0)
        out, *hn = self.mode(x, h, self.weights, self.use_bias, 1, 0.0, False, False, True)
        return (out if self.sequences else out.select(1, -1)), [s[0] for s in hn]


    def _train(self, x: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """With gradients on, the unmasked call of :func:`rnnkit.kernels.fused.fused_rnn`: the weights converted
        anew (differentiable), then the native kernel's autograd function or PyTorch's kernel."""
        outputs, new_states = direct_call(self.cell, x, states, None, self.mode, self.kernel == "train native",
                                          self.go_backwards, self.zero_output)
        return (outputs if self.sequences else outputs.select(1, -1)), new_states


_RUNNERS = {"step": CallPlan._step, "infer": CallPlan._infer, "torch": CallPlan._torch,
            "train native": CallPlan._train, "train torch": CallPlan._train}


class Declined:
    """The facts of a plain call (:func:`_call_facts`) for which no plan is made (``seen``: seen once
    so far, no plan asked for yet): calls with the same facts do not ask again (asking costs a tenth of a
    one-step call on torch's kernel)."""

    __slots__ = ("key", "seen")

    def __init__(self, key: tuple, seen: bool = False) -> None:
        self.key = key
        self.seen = seen

    def run(self, layer: RNN, x: torch.Tensor, training: Any, initial_state: Any = None) -> None:
        return None


def call_with_plan(layer: RNN, *args: Any, **kwargs: Any) -> Any:
    """``RNN.__call__``: ``layer(x)`` or ``layer(x, initial_state=states)`` by a kept plan, before the module
    call's machinery (rnnkit's ``Layer.__call__``, ``nn.Module.__call__``: 1.2-1.3 us of a 6-8 us one-step
    call) where it has nothing to do: no forward or backward hooks (the module's or global ones), no
    ``module.compile()``, no activity regularizer, one plain tensor (not symbolic), the layer built. Any other
    call, and any the plan refuses, is the module call."""
    # (nothing read of the plans while a graph is captured: a compiler would guard on them, and eager calls
    # between compiled ones change them)
    plans = None if capturing_graph() else layer.__dict__.get("_call_plans")
    if plans and len(args) == 1 and type(args[0]) is torch.Tensor and (
            not kwargs or (len(kwargs) == 1 and "initial_state" in kwargs)):
        x, initial_state = args[0], kwargs.get("initial_state")
        plan = plans.get((x.shape, initial_state is not None, torch.is_grad_enabled()))
        if plan is not None and _nothing_around(layer):
            result = plan.run(layer, x, None, initial_state)
            if result is not None:
                return result
    return Layer.__call__(layer, *args, **kwargs)


def _nothing_around(layer: RNN) -> bool:
    """No hook, compiled call or activity regularizer that the module call would run around ``forward``."""
    hooks = torch.nn.modules.module
    return not (layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks or hooks._global_forward_hooks or hooks._global_forward_pre_hooks
                or hooks._global_backward_hooks or hooks._global_backward_pre_hooks
                or layer.__dict__.get("_compiled_call_impl") is not None
                or layer.__dict__.get("activity_regularizer") is not None)


def keep_plan(layer: RNN, x: torch.Tensor, training: Any, initial_state: bool = False) -> None:
    """After a plain call (no mask or constants; ``initial_state``: whether it was given states) of ``layer``
    on the general route: on the second call in a row with the same facts, keep a plan for calls like it, or
    the facts it was declined for. (A layer called with ever-changing shapes makes no plan.)"""
    if "_keras_mask" in x.__dict__ or not _plain_now():
        return  # (plans are for plain eager calls without masks only; under torch.func the weights have no storage)
    key = _call_facts(layer, x, training, initial_state)
    plans = layer.__dict__.setdefault("_call_plans", {})  # (layers pickled before plans have none)
    slot = (x.shape, initial_state, torch.is_grad_enabled())
    kept = plans.get(slot)
    if type(kept) is CallPlan and kept.key == key:
        # the plan refused a call it was made for (states it cannot read, a reset's flag ...): kept while it runs
        # more often than it refuses, else these calls are declined (remade at every call, a plan would cost
        # more than it saves)
        kept.misses += 1
        if kept.misses > kept.uses + 1:
            plans[slot] = Declined(key)
        return
    if type(kept) is Declined and kept.key == key:
        if kept.seen:
            plan = plan_for(layer, x, training, initial_state)
            if plan is not None:
                plan.key = key
            plans[slot] = plan if plan is not None else Declined(key)
        return
    plans.pop(slot, None)
    if len(plans) >= PLANS_KEPT:
        try:  # the oldest (another thread may be changing the dict meanwhile)
            del plans[next(iter(plans))]
        except (RuntimeError, StopIteration, KeyError):
            pass
    plans[slot] = Declined(key, seen=True)  # (new facts: a plan on the next call like it)


def _call_facts(layer: RNN, x: torch.Tensor, training: Any, initial_state: bool) -> tuple:
    """What :func:`keep_plan` tells calls apart by: the plan's facts, the grad mode, whether the call was plain eager,
    and the weights' identity, storage and, without gradients, version (a plan is made anew after they change)."""
    cell = layer.cell
    held = _held(cell)
    grad = torch.is_grad_enabled()  # (with gradients on, the weights' versions change at every optimizer step)
    weights = tuple(id(p) for p in held) + (_weights_key(held, not grad) if not any(
        p is not None and p.is_inference() for p in held) else ())
    return _facts(layer, cell, x, training, initial_state) + (grad, _plain_now(), weights)


def plan_for(layer: RNN, x: torch.Tensor, training: Any, initial_state: bool = False) -> CallPlan | None:
    """A plan for plain calls like this one of ``layer`` (made after it ran; ``initial_state``: whether it was
    given states), or None where a plan would not run such calls: not a plain call on a fused kernel, or a
    stateful layer given initial states."""
    cell = layer.cell
    if (layer.time_major or (layer.stateful and initial_state) or x.dim() != 3 or not _plain_now()
            or not _plain_data(x) or not _rnnkit_methods(type(layer))):
        return None
    if not (layer.stateful or initial_state or zero_initial(cell)):
        return None  # (the cell's own initial states: the general route asks for them)
    resolved = layer.training if training is None else bool(training)
    if select_path(layer, None, resolved).path != FUSED or (resolved and cell.dropout):
        return None
    held = _held(cell)
    if held[0] is None or held[1] is None or (cell.use_bias and held[2] is None) or any(
            p.is_inference() for p in held if p is not None):
        return None  # (parametrized weights, or weights without a version counter: the general route)
    kernel = kernel_for(cell)
    mode = mode_of(kernel)
    if x.dtype != held[0].dtype or x.device != held[0].device or x.shape[2:] != layer.feature_shape:
        return None  # (the general route converts the input)
    n_states = 2 if mode == "lstm" else 1
    if layer.stateful:
        states = layer.states
        if states is None or len(states) != n_states:
            return None
    facts = _facts(layer, cell, x, training, initial_state)
    batch, steps = x.shape[0], x.shape[1]
    if torch.is_grad_enabled():
        chosen = "train native" if native_chosen(cell, x, False, mode) else "train torch"
        return CallPlan(layer, facts, held, chosen, None, kernel, n_states)
    if native_chosen(cell, x, False, mode):
        weights, native_mode = native_layout(cell)  # (what the general route's native call runs on)
        transposed = native.inference_weights(weights, cell.use_bias)
        blas = native.use_blas(batch, cell.units, native_mode)
        number = native.MODES[native_mode]
        if steps == 1 and not blas and native._MODULE:
            return CallPlan(layer, facts, held, "step", transposed, number, n_states)
        return CallPlan(layer, facts, held, "infer", transposed, number, n_states, blas)
    return CallPlan(layer, facts, held, "torch", cell_to_torch(cell), kernel, n_states)


def _facts(layer: RNN, cell: Any, x: torch.Tensor, training: Any, initial_state: bool) -> tuple:
    """The static facts a plan is made on that every call reads anew."""
    return (layer.__dict__.get(GENERATION), cell.__dict__.get(GENERATION), x.shape, x.dtype,
            layer.training if training is None else bool(training), torch.get_num_threads(), initial_state)


def _state_fits(state: Any, batch: int, units: int, dtype: torch.dtype) -> bool:
    """A given state a plan reads as it is (what the general route would not convert)."""
    return (type(state) is torch.Tensor and state.dim() == 2 and state.shape[0] == batch and state.shape[1] == units
            and state.dtype == dtype and state.is_contiguous() and _plain_data(state))


def _plain_data(t: torch.Tensor) -> bool:
    """A CPU tensor whose memory holds its values (no negation bit, not a storage-less zero tensor)."""
    return t.is_cpu and not t.is_neg() and not t._is_zerotensor()


def _plain_now() -> bool:
    """A plain eager call: no autocast, graph capture, ``torch.func`` transform, or torch function or dispatch
    mode (``make_fx`` and the like record ops; the one-step entry is not one)."""
    return not (torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling() or torch._C._is_tracing()
                or torch._C._are_functorch_transforms_active() or torch._C._len_torch_dispatch_stack()
                or torch._C._len_torch_function_stack())


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


def _held(cell: Any) -> tuple:
    """The cell's registered ``(kernel, recurrent_kernel, bias)`` parameters (None where not registered)."""
    params = cell._parameters
    return tuple(params.get(name) for name in _PARAMS)


def _weights_key(params: tuple, versions: bool = True) -> tuple:
    """The weights' storage (a new dtype or device, ``.data`` assigned) and, with ``versions``, their version
    counters (in-place edits)."""
    if versions:
        return tuple([(p.data_ptr(), p._version) for p in params if p is not None])  # (a list: no generator)
    return tuple([p.data_ptr() for p in params if p is not None])
