"""``Input`` and the functional ``Model``: a graph of layer calls, masks handed along its edges.

Keras's functional API, on torch modules::

    tokens = rnnkit.Input((None,), dtype="int64")
    x = rnnkit.Embedding(1000, 32, mask_zero=True)(tokens)
    seq, h, c = rnnkit.LSTM(64, return_sequences=True, return_state=True)(x)
    y = rnnkit.Dense(10)(rnnkit.Concatenate()([h, c]))
    model = rnnkit.Model(tokens, y)          # several inputs/outputs: lists

Calling a layer on symbolic tensors records a node (``rnnkit.engine.symbolic``);
``Model(inputs, outputs)`` keeps the nodes between them in call order. Its
``forward(*inputs, mask=None, training=None)`` runs them::

    values = {input_i: (x_i, mask_i)}
    for node in nodes:                        # topological order
        x, m = values of node.inputs
        y, m_out = call_with_mask(node.layer, x, m, training, node.kwargs)   # rnnkit.models.calling
        values[node.outputs] = (y, m_out)
    return values of outputs

A layer used by several nodes (a shared layer) is one module with one set
of weights. ``model.layers`` lists every layer once, in Keras 3's order
(:func:`_keras_layer_order`): Keras's files name a model's layers by class,
numbered in that order, so weights line up with Keras's only in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit.core.tree import flatten, pack_as
from rnnkit.engine.dtypes import resolve_input_dtype
from rnnkit.engine.layer import Layer
from rnnkit.engine.symbolic import Node, SymbolicTensor
from rnnkit.models.calling import as_mask, call_with_mask

_input_counts: dict[str, int] = {}


def Input(shape: tuple | None = None, batch_size: int | None = None, dtype: Any = None, name: str | None = None,
          batch_shape: tuple | None = None) -> SymbolicTensor:
    """A model input (Keras's ``keras.Input``): a symbolic tensor to call layers on.

    Args:
        shape: the shape without the batch axis (``None`` for unknown dims, e.g. ``(None, 8)`` for
            sequences of any length).
        batch_size: a fixed batch size, or None.
        dtype: ``"float32"`` (default, or torch's default dtype), ``"int64"``, ``"int32"``, ...: what
            the input holds (token ids for an ``Embedding``).
        name: the input's name (default ``"input_layer"``, numbered).
        batch_shape: the shape with the batch axis, instead of ``shape`` and ``batch_size``.
    """
    if batch_shape is None:
        if shape is None:
            raise ValueError("Input: give shape= (without the batch axis) or batch_shape=")
        batch_shape = (batch_size,) + tuple(shape)
    batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
    torch_dtype = resolve_input_dtype(dtype, "Input") if dtype is not None else torch.get_default_dtype()
    if name is None:
        n = _input_counts.get("input_layer", 0)
        _input_counts["input_layer"] = n + 1
        name = "input_layer" if n == 0 else f"input_layer_{n}"
    example = torch.zeros(tuple(1 if d is None else d for d in batch_shape), dtype=torch_dtype)
    return SymbolicTensor(batch_shape, torch_dtype, None, 0, example, name=name)


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Model(Layer):
    """A functional model: the layer calls between ``inputs`` and ``outputs`` (see the module docstring).

    ``model(x)`` for one input, ``model(x1, x2)`` or ``model([x1, x2])`` for
    several; ``mask=`` (one mask, or a list with one per input, None where an
    input has none) and ``training=`` as for ``Sequential``. Returns one
    tensor, or a list in the order of ``outputs``. ``forward_with_mask`` also
    returns the outputs' masks.

    Args:
        inputs: an ``rnnkit.Input`` symbolic tensor, or a list of them.
        outputs: a symbolic tensor made by calling layers on ``inputs``, or a list of them.
        name: the model's name (default ``"model"``, numbered).
        trainable: whether the layers' weights are trained.
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        ins, outs = _as_list(inputs), _as_list(outputs)
        for t in ins + outs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"{self.name}: inputs and outputs must be symbolic tensors (rnnkit.Input and "
                                f"layer calls on it), got {type(t).__name__}")
        for t in ins:
            if t.node is not None:
                raise ValueError(f"{self.name}: inputs must be rnnkit.Input tensors, got a layer output {t}")
        nodes, met = _nodes_between(ins, outs, self.name)
        layers = _keras_layer_order(nodes, met)
        self.layers = torch.nn.ModuleList(layers)
        index_of_layer = {id(layer): i for i, layer in enumerate(layers)}
        keys: dict[int, tuple] = {id(t): ("input", i) for i, t in enumerate(ins)}
        self._tensor_info: dict[tuple, tuple] = {("input", i): (t.shape, t.dtype) for i, t in enumerate(ins)}
        self._nodes = []
        for n, node in enumerate(nodes):
            for i, t in enumerate(node.outputs):
                keys[id(t)] = ("node", n, i)
                self._tensor_info[("node", n, i)] = (t.shape, t.dtype)
            self._nodes.append({
                "layer": index_of_layer[id(node.layer)],
                "inputs": _to_refs(node.inputs, keys),
                "kwargs": {k: _to_refs(v, keys) for k, v in node.kwargs.items()},
                "structure": pack_as(node.structure, [None] * len(node.outputs)),
            })
        self._outputs = [keys[id(t)] for t in outs]
        self._single_output = not isinstance(outputs, (list, tuple))
        self._n_inputs = len(ins)
        self.input_names = [t.name for t in ins]
        self.input_shapes = [t.shape for t in ins]
        self.input_dtypes = [t.dtype for t in ins]
        self.built = True

    def get_layer(self, name: str) -> torch.nn.Module:
        """The layer called ``name``."""
        for layer in self.layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers: "
                         f"{[getattr(layer, 'name', type(layer).__name__) for layer in self.layers]}")

    # ------------------------------------------------------------------ graph
    def node_specs(self) -> list[dict]:
        """The layer calls in order: ``{"layer": index in layers, "inputs", "kwargs", "structure"}``;
        arguments that come from the graph are references (see :meth:`map_refs`)."""
        return self._nodes

    def output_keys(self) -> list[tuple]:
        """Where each output comes from: ``("input", i)`` or ``("node", n, i)`` (node ``n``'s ``i``-th output)."""
        return list(self._outputs)

    def tensor_info(self, key: tuple) -> tuple:
        """``(shape, dtype)`` of the graph tensor at ``key`` (batch first, ``None`` for unknown dims)."""
        return self._tensor_info[key]

    @property
    def single_output(self) -> bool:
        return self._single_output

    @staticmethod
    def map_refs(x: Any, fn: Any) -> Any:
        """``x`` (a node's inputs or a keyword argument) with each reference replaced by ``fn(key)``."""
        leaves = flatten(x)
        return pack_as(x, [fn(leaf.key) if isinstance(leaf, _Ref) else leaf for leaf in leaves])

    # ------------------------------------------------------------------ call
    def forward(self, *inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        return self.forward_with_mask(*inputs, mask=mask, training=training)[0]

    def call(self, *inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        """Keras's name for :meth:`forward`."""
        return self.forward(*inputs, mask=mask, training=training)

    def forward_with_mask(self, *inputs: Any, mask: Any = None, training: bool | None = None) -> tuple:
        """``(outputs, masks)``: the outputs and the masks their layers computed."""
        if len(inputs) == 1 and self._n_inputs > 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if len(inputs) != self._n_inputs:
            raise ValueError(f"{self.name}: expected {self._n_inputs} input(s) {self.input_names}, got {len(inputs)}")
        masks = _as_list(mask) if self._n_inputs > 1 and mask is not None else [mask] * self._n_inputs
        if len(masks) != self._n_inputs:
            raise ValueError(f"{self.name}: expected one mask per input ({self._n_inputs}), got {len(masks)}")
        values: dict[tuple, tuple] = {}
        for i, (x, m) in enumerate(zip(inputs, masks)):
            x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
            values[("input", i)] = (x, as_mask(m, x))
        for n, node in enumerate(self._nodes):
            layer = self.layers[node["layer"]]
            x = _from_refs(node["inputs"], values, 0)
            m = _from_refs(node["inputs"], values, 1)
            kwargs = {k: _from_refs(v, values, 0) for k, v in node["kwargs"].items()}
            y, y_mask = call_with_mask(self.name, layer, x, m, training, kwargs)
            flat_y = flatten(y)
            flat_m = _flat_masks(y_mask, len(flat_y))
            for i, (t, tm) in enumerate(zip(flat_y, flat_m)):
                values[("node", n, i)] = (t, tm)
        outs = [values[k][0] for k in self._outputs]
        out_masks = [values[k][1] for k in self._outputs]
        if self._single_output:
            return outs[0], out_masks[0]
        return outs, out_masks

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The outputs' masks (runs the model: use :meth:`forward_with_mask` for both at once)."""
        inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
        return self.forward_with_mask(*inputs, mask=mask)[1]

    def get_config(self) -> dict:
        """A functional model's config is its graph: ``rnnkit.save_keras_model`` writes it (Keras 3's form)."""
        raise NotImplementedError(
            f"{self.name}: a functional Model's config is its graph of layer calls; save it with "
            "rnnkit.save_keras_model(model, path) and read it back with rnnkit.load_keras_model(path)"
        )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, inputs={self.input_names}, nodes={len(self._nodes)}"


def _flat_masks(mask: Any, n: int) -> list:
    if mask is None:
        return [None] * n
    if isinstance(mask, torch.Tensor):
        return [mask] + [None] * (n - 1) if n > 1 else [mask]
    flat = flatten(mask)
    return (flat + [None] * n)[:n]


class _Ref:
    """Where a node's argument comes from: ``("input", i)`` or ``("node", n, i)``."""

    __slots__ = ("key",)

    def __init__(self, key: tuple) -> None:
        self.key = key

    def __getstate__(self) -> tuple:
        return self.key

    def __setstate__(self, key: tuple) -> None:
        self.key = key


def _to_refs(x: Any, keys: dict) -> Any:
    leaves = flatten(x)
    return pack_as(x, [_Ref(keys[id(t)]) if isinstance(t, SymbolicTensor) else t for t in leaves])


def _from_refs(x: Any, values: dict, which: int) -> Any:
    """``x`` with each reference replaced by its value (``which=0``) or its mask (``which=1``)."""
    leaves = flatten(x)
    out = [values[leaf.key][which] if isinstance(leaf, _Ref) else (None if which == 1 else leaf) for leaf in leaves]
    return pack_as(x, out)


def _nodes_between(inputs: list, outputs: list, owner: str) -> tuple[list[Node], list[Node]]:
    """The nodes that make ``outputs`` from ``inputs``, parents before children, found by a depth-first walk from
    the outputs (each call's tensors in :meth:`Node.parents` order); and the same nodes in the order the walk first
    met them."""
    allowed = {id(t) for t in inputs}
    order: list[Node] = []
    met: list[Node] = []
    seen: set[int] = set()

    def visit(t: SymbolicTensor) -> None:
        if t.node is None:
            if id(t) not in allowed:
                raise ValueError(f"{owner}: the graph is disconnected: output depends on input {t.name!r}, "
                                 f"which is not in the model's inputs {[i.name for i in inputs]}")
            return
        if id(t.node) in seen:
            return
        met.append(t.node)
        seen.add(id(t.node))  # (a node is never its own ancestor: marking it on the way in changes nothing)
        for parent in t.node.parents():
            visit(parent)
        order.append(t.node)

    for t in outputs:
        visit(t)
    return order, met


def _keras_layer_order(nodes: list[Node], met: list[Node]) -> list[torch.nn.Module]:
    """The layers of ``nodes`` (:func:`_nodes_between`'s: parents before children, and ``met``, in the order its
    walk from the outputs first met them), once each, in the order Keras 3 lists a functional model's
    (``keras.src.ops.function.map_graph``): by depth, the layers farthest from the outputs first (a layer's
    depth: its calls' largest number of calls between it and an output), a depth's layers in the order the walk
    first met them."""
    first_seen: dict[int, int] = {}
    for node in met:
        first_seen.setdefault(id(node.layer), len(first_seen))
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(nodes):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        node_depth[id(node)] = layer_depth[id(node.layer)] = depth
        for parent in node.parents():
            if parent.node is not None:
                node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
    layers = {id(node.layer): node.layer for node in nodes}
    return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)], first_seen[id(layer)]))
