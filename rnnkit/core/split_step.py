"""Splitting a cell's step in two: the part that reads only the step's input runs once for all steps.

A step ``output, new_states = step(x_t, states)`` often begins with work on
``x_t`` alone: ``x_t @ kernel`` in ``h_t = tanh(x_t @ kernel + h_{t-1} @
recurrent_kernel)``. Run step by step, that is ``T`` small matrix products
(and ``2T`` more in the backward) where one ``(B*T, D) @ (D, N)`` product
would do. :func:`split_step` traces the step once (``make_fx`` on fake
tensors: shapes and dtypes, no data) into a graph of aten ops and cuts it:

* the **input part**: every op that reads ``x_t`` (and weights, constants)
  but no state. :meth:`SplitStep.project` runs it once over every step,
  before the loop: where each of its rows reads only that row of ``x_t``
  (:func:`_row_wise`: products ``x_part @ weight``, elementwise ops with
  weights broadcast over the rows, slices along the features), on all
  steps' rows at once (``(B*T, ...)``); else through ``torch.vmap`` over the
  time axis (its batch rules turn ``T`` products into one, at the cost of
  copies to and from time-major order);
* the **recurrent part**: every other op, run at each step on the input
  part's values of that step (its *frontier*: the input-part values the
  recurrent part reads) and the states (:meth:`SplitStep.step_function`).

The two parts are the step's own aten ops on the same numbers, so the loop
over them gives the loop over the whole step's results (a product over all
steps at once may round differently in the last bit); gradients flow through
both (``vmap`` and the traced ops are differentiable). The weights (the
cell's parameters and buffers) are inputs of both graphs, read at each call:
training, ``load_state_dict`` and ``.to()`` need no new trace.

Tracing assumes what compiling assumes (``RNN(compile=True)`` is where it
runs): the step is a function of its input, states, weights and the cell's
attributes, its Python control flow depends on shapes only. A trace bakes in
the plain attributes it read (a float ``self.scale``, an activation
function): :func:`python_state` gives them all, to know when a trace is stale. :func:`split_step` returns None, and the
step runs whole, where that cannot be had or where a split would not pay:

* the trace fails (a branch on tensor values, an op fake tensors lack, a
  cell that is not a torch module);
* a value the recurrent part reads of the input part is not batch-first
  and at least 2-D per step (what the loop takes as its inputs);
* the step draws random numbers (dropout: its masks are per step) or writes
  a tensor in place;
* the input part has no matrix product or convolution (nothing to batch).
"""

from __future__ import annotations

import enum
import operator
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx

from rnnkit.core.tree import flatten, pack_as

aten = torch.ops.aten
# the ops a split pays for: T small calls become one large one
_HEAVY = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.matmul, aten.linear, aten.convolution,
          aten.einsum, aten._convolution}


class SplitStep:
    """A cell's step cut in two (see the module docstring). Made by :func:`split_step`."""

    def __init__(self, names: list[str], inputs_part: fx.GraphModule, recurrent_part: fx.GraphModule,
                 states_structure: Any, row_wise: bool = False) -> None:
        self.names = names  # the cell's parameters and buffers, in the order both parts take them
        self.inputs_part = inputs_part
        self.recurrent_part = recurrent_part
        self.states_structure = states_structure
        self.row_wise = row_wise  # (see _row_wise: project runs the input part on all steps' rows at once)

    def weights(self, cell: torch.nn.Module) -> list[torch.Tensor]:
        """The cell's current parameters and buffers, in the parts' order."""
        found = _weights_of(cell)
        return [found[name] for name in self.names]

    def project(self, weights: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        """The input part over all steps of ``x`` ``(B, T, ...)``: its frontier values, each ``(B, T, ...)``."""
        if self.row_wise:  # the B*T rows of every step as one batch (one product each, no copies)
            batch, steps = x.shape[:2]
            values = self.inputs_part(*weights, x.reshape(batch * steps, *x.shape[2:]))
            return [v.view(batch, steps, *v.shape[1:]) for v in values]

        def one_step(x_t: torch.Tensor) -> list[torch.Tensor]:
            return list(self.inputs_part(*weights, x_t))

        return list(torch.vmap(one_step, in_dims=1, out_dims=1, randomness="error")(x))

    def step_function(self, weights: list[torch.Tensor]) -> Callable:
        """``(frontier_t, states) -> (output_t, new_states)``: the recurrent part, for :func:`rnnkit.core.loop.rnn`
        over the values :meth:`project` gave."""
        part, structure = self.recurrent_part, self.states_structure

        def step(frontier_t: Any, states: tuple) -> tuple:
            output, *new_states = part(*weights, *flatten(frontier_t), *flatten(list(states)))
            return output, pack_as(structure, new_states)

        return step


# What a module keeps for itself (torch's own and rnnkit Layer's bookkeeping, per-call losses, dropout masks):
# no step reads these as values to bake in.
_BOOKKEEPING = frozenset(vars(torch.nn.Module())) | {
    "_activity_losses", "_auto_config", "_auto_config_problem", "_build_shape", "_weight_records", "_generator",
    "_generation", "_dropout_masks", "_recurrent_dropout_masks", "_compiled_loops", "_split_steps", "_call_plans",
    "_compile_log"}


class _Unknown(Exception):
    """An attribute whose value a trace may have read and that has no comparable snapshot."""


def python_state(cell: Any) -> tuple | None:
    """A snapshot of the attributes of ``cell`` and its submodules (numbers, strings, dtypes, functions, tensors
    by identity and version, and containers of them): a trace of its step holds the values it read of them, so it
    is valid while the snapshot is equal. None when an attribute has no such snapshot (another object: the step
    is then not traced, as its values could change unseen)."""
    if not isinstance(cell, torch.nn.Module):
        return None
    try:
        return tuple((name, _frozen(value)) for module in cell.modules() for name, value in vars(module).items()
                     if name not in _BOOKKEEPING and not isinstance(value, torch.nn.Module))
    except _Unknown:
        return None


def _frozen(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.dtype, torch.device,
                                           torch.Size, enum.Enum)):
        return (type(value), value)
    if isinstance(value, np.generic):
        return (type(value), value.item())
    if isinstance(value, torch.Tensor):  # (parameters and buffers are inputs of the parts; a plain tensor is read)
        return (torch.Tensor, id(value), value._version, value.shape, value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return (type(value), tuple((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value), frozenset(_frozen(v) for v in value))
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        return value  # (by identity)
    raise _Unknown(type(value).__name__)


def _weights_of(cell: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The cell's parameters and buffers by name."""
    found: dict[str, torch.Tensor] = dict(cell.named_parameters())
    found.update(cell.named_buffers())
    return found


class _Step(torch.nn.Module):
    """A step function as a module around its cell, for ``torch.func.functional_call``."""

    step: Callable

    def __init__(self, cell: torch.nn.Module, step: Callable) -> None:
        super().__init__()
        self.cell = cell
        self.__dict__["step"] = step  # (a plain attribute: not a submodule)

    def forward(self, x_t: torch.Tensor, flat_states: list[torch.Tensor], structure: Any) -> list:
        output, new_states = self.step(x_t, tuple(pack_as(structure, flat_states)))
        return [output, *flatten(list(new_states))]


def split_step(cell: Any, step: Callable, x_t: torch.Tensor, states: list,
               small_products_up_to: int = 0) -> SplitStep | None:
    """``step`` (calling ``cell``) cut into its input part and its recurrent part, traced for one step's input
    ``x_t`` ``(B, ...)`` and ``states`` (nested as the cell's); None where it cannot be cut or a cut would not
    pay (see the module docstring). The recurrent part's matrix products of at most ``small_products_up_to``
    multiply-adds are written as a product and a sum (:func:`_small_products`)."""
    if not isinstance(cell, torch.nn.Module):
        return None
    from torch.fx.experimental.proxy_tensor import make_fx

    named = _weights_of(cell)
    names = list(named)
    flat_states = flatten(list(states))
    structure = pack_as(list(states), [None] * len(flat_states))
    wrapper = _Step(cell, step)

    def traced(*args: torch.Tensor) -> list:
        weights, x, rest = args[:len(names)], args[len(names)], list(args[len(names) + 1:])
        given = {f"cell.{name}": w for name, w in zip(names, weights)}
        return torch.func.functional_call(wrapper, given, (x, rest, structure))

    modules = list(cell.modules())
    before = [dict(vars(module)) for module in modules]
    try:  # (in the caller's grad mode: a step may read it)
        graph = make_fx(traced, tracing_mode="fake")(*named.values(), x_t, *flat_states)
    except Exception:  # any reason the step cannot be traced: it runs whole
        return None
    finally:  # what the traced call set on the cell (fake tensors among it) is undone
        for module, attributes in zip(modules, before):
            vars(module).clear()
            vars(module).update(attributes)
    parts = _cut(graph.graph, len(names), len(flat_states))
    if parts is None:
        return None
    inputs_graph, recurrent_graph = parts
    if small_products_up_to:
        _small_products(recurrent_graph, small_products_up_to)
    return SplitStep(names, fx.GraphModule(graph, inputs_graph), fx.GraphModule(graph, recurrent_graph), structure,
                     _row_wise(inputs_graph, x_t.shape[0]))


def _cut(graph: fx.Graph, n_weights: int, n_states: int) -> tuple[fx.Graph, fx.Graph] | None:
    """The input part's and the recurrent part's graphs (see the module docstring), or None."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    weights, x, states = placeholders[:n_weights], placeholders[n_weights], placeholders[n_weights + 1:]
    assert len(states) == n_states
    reads_x: set[fx.Node] = {x}
    reads_state: set[fx.Node] = set(states)
    heavy = False
    for node in graph.nodes:
        if node.op not in ("call_function", "get_attr"):
            continue
        target = node.target
        if isinstance(target, torch._ops.OpOverload) and (
                target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags):
            return None  # writes in place, or draws random numbers (per step: not to be batched)
        inputs = node.all_input_nodes
        if any(i in reads_state for i in inputs):
            reads_state.add(node)
        elif any(i in reads_x for i in inputs):
            reads_x.add(node)
            heavy = heavy or getattr(target, "overloadpacket", None) in _HEAVY
    if not heavy:
        return None
    # the input-part values the rest reads: the frontier (x itself too, when the rest reads it); the loop takes
    # them as its inputs, (B, T, ...) each: per step at least 2-D with the batch first
    frontier = [n for n in graph.nodes if n in reads_x and any(u not in reads_x for u in n.users)]
    batch = x.meta["val"].shape[0]
    values = [n.meta.get("val") for n in frontier]
    if not frontier or not all(isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[0] == batch for v in values):
        return None

    inputs_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            if node in weights or node is x:
                env[node] = _placeholder(inputs_graph, node.name, node)
        elif node.op != "output" and node not in reads_state:  # the input part and what it reads of the weights
            env[node] = inputs_graph.node_copy(node, env.__getitem__)
    inputs_graph.output(tuple(env[n] for n in frontier))
    inputs_graph.eliminate_dead_code()

    recurrent_graph = fx.Graph()
    env = {}
    for node in weights:
        env[node] = _placeholder(recurrent_graph, node.name, node)
    for node in frontier:
        env[node] = _placeholder(recurrent_graph, f"{node.name}_t", node)
    for node in states:
        env[node] = _placeholder(recurrent_graph, node.name, node)
    for node in graph.nodes:
        if node.op == "placeholder" or node in reads_x:
            continue
        env[node] = recurrent_graph.node_copy(node, env.__getitem__)  # (the output node too)
    recurrent_graph.eliminate_dead_code()
    return inputs_graph, recurrent_graph


# Views that keep the rows (dim 0) whole when taken along another dim: (op, the index of its dim argument, the
# dim when not given)
_ROW_VIEWS = {aten.slice.Tensor: (1, 0), aten.select.int: (1, None), aten.narrow.default: (1, None),
              aten.split.Tensor: (2, 0), aten.split_with_sizes.default: (2, 0), aten.unsqueeze.default: (1, None)}


def _row_wise(graph: fx.Graph, batch: int) -> bool:
    """Whether the input part ``graph`` (its last input ``x_t``, ``(batch, ...)``) computes each row of every
    value it makes from ``x_t`` from that row of ``x_t`` alone, the rows first throughout: then the rows of all
    steps can run as one batch. Only ops known to be so qualify: ``mm`` / ``addmm`` with the ``x_t`` value on
    the left (and the weight, bias not made from it), elementwise ops whose other tensors are broadcast over the
    rows (fewer dims, or a first dim of 1), and views along a dim other than the rows (slices, ``split``,
    ``select``, ``narrow``, ``unsqueeze``); any other op (a reshape with the batch size in it, a reduction, a
    transpose...) leaves it to ``vmap``."""
    x = [n for n in graph.nodes if n.op == "placeholder"][-1]
    made: set[fx.Node] = {x}
    for node in graph.nodes:
        if node.op in ("placeholder", "output") or not any(i in made for i in node.all_input_nodes):
            continue
        made.add(node)
        target, args = node.target, node.args
        value = node.meta.get("val")
        if target is operator.getitem:  # (a piece of a split)
            continue
        pieces = value if isinstance(value, (list, tuple)) else [value]  # (a split's value: its pieces)
        if node.kwargs or not all(isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == batch
                                  for v in pieces):
            return False
        if target in (aten.mm.default, aten.addmm.default):
            left, right = args[-2:]
            if left not in made or right in made or (target is aten.addmm.default and args[0] in made):
                return False
        elif target in _ROW_VIEWS:
            where, default = _ROW_VIEWS[target]
            dim = args[where] if len(args) > where else default
            source = args[0].meta.get("val") if isinstance(args[0], fx.Node) else None
            if args[0] not in made or dim is None or source is None:
                return False
            if dim % (pieces[0].dim() if target is aten.unsqueeze.default else source.dim()) == 0:
                return False
        elif isinstance(target, torch._ops.OpOverload) and torch.Tag.pointwise in target.tags:
            for arg in args:
                if isinstance(arg, (list, tuple)):
                    return False
                if not isinstance(arg, fx.Node) or not isinstance(arg.meta.get("val"), torch.Tensor):
                    continue
                other = arg.meta["val"]
                if arg in made and other.dim() != value.dim():
                    return False  # (broadcast to more dims: its rows would move from the first)
                if arg not in made and other.dim() >= value.dim() and other.shape[0] != 1:
                    return False  # (a tensor with rows of its own)
        else:
            return False
    return True


def _placeholder(graph: fx.Graph, name: str, like: fx.Node) -> fx.Node:
    """A new input of ``graph`` standing for ``like`` (its traced shape and dtype kept in ``meta``)."""
    node = graph.placeholder(name)
    node.meta = dict(like.meta)
    return node


def _small_products(graph: fx.Graph, up_to: int) -> None:
    """Rewrite each ``mm(a, b)`` (``addmm(c, a, b)``) of at most ``up_to`` multiply-adds as
    ``sum(a[..., None] * b, -2)`` (``c + ...``), in place.

    For a compiler: inductor turns the product and the sum, with the step's elementwise work around them, into
    one loop of its own code, where a matrix product is a call into a library at every step; for small products
    (a batch of a few rows, tens of units) that call costs more than the arithmetic. The same numbers up to the
    order of the additions.
    """
    for node in list(graph.nodes):
        target = node.target
        if node.op != "call_function" or target not in (aten.mm.default, aten.addmm.default) or node.kwargs:
            continue
        a, b = node.args[-2:]
        left, right = (getattr(arg, "meta", {}).get("val") for arg in (a, b))
        if left is None or right is None or left.dim() != 2 or right.dim() != 2:
            continue
        (rows, inner), cols = left.shape, right.shape[1]
        if rows * inner * cols > up_to:
            continue
        with graph.inserting_before(node):
            column = graph.call_function(aten.unsqueeze.default, (a, -1))
            product = graph.call_function(aten.sum.dim_IntList, (graph.call_function(aten.mul.Tensor, (column, b)),
                                                                 [-2]))
            if target is aten.addmm.default:
                product = graph.call_function(aten.add.Tensor, (node.args[0], product))
        node.replace_all_uses_with(product)
        graph.erase_node(node)
