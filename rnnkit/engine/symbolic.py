"""Symbolic tensors: wiring a functional model by calling layers on placeholders.

``rnnkit.Input(shape)`` returns a :class:`SymbolicTensor`; calling any rnnkit
layer on symbolic tensors (alone, or in a list for merge layers) records a
:class:`Node` instead of computing, and returns the symbolic outputs.
``rnnkit.Model(inputs, outputs)`` then finds the nodes between them.

Each symbolic tensor carries an example value (``example``: zeros of its
shape, unknown dims as 1, and its dtype): a layer called symbolically runs
once on the examples of its inputs, without gradients, which builds its
weights and tells the structure and shapes of its outputs (a recurrent layer
with ``return_state=True`` returns several). Only shapes are read from that
run, made in eval mode (no moving statistics, no dropout draws); a stateful
layer's states are cleared after it.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.core.tree import flatten, pack_as


class SymbolicTensor:
    """A model input or a layer output while a functional model is wired.

    ``shape`` (batch first, ``None`` for unknown dims), ``dtype``, ``node``
    (the :class:`Node` that makes it; ``None`` for an ``Input``), ``index``
    (which of the node's flat outputs it is) and ``name``.
    """

    def __init__(self, shape: tuple, dtype: torch.dtype, node: Node | None, index: int, example: torch.Tensor,
                 name: str = "") -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.index = index
        self.example = example
        self.name = name

    def __repr__(self) -> str:
        source = self.name if self.node is None else f"{self.node.layer_name}[{self.index}]"
        return f"<SymbolicTensor {source} shape={self.shape} dtype={str(self.dtype).replace('torch.', '')}>"


class Node:
    """One call of a layer in a functional model: its inputs (a structure of
    symbolic tensors), its other call arguments (which may hold symbolic
    tensors too, e.g. ``initial_state``) and its flat symbolic outputs."""

    def __init__(self, layer: torch.nn.Module, inputs: Any, kwargs: dict) -> None:
        self.layer = layer
        self.inputs = inputs
        self.kwargs = kwargs
        self.outputs: list[SymbolicTensor] = []
        self.structure: Any = None

    @property
    def layer_name(self) -> str:
        return str(getattr(self.layer, "name", type(self.layer).__name__))

    def parents(self) -> list[SymbolicTensor]:
        """Every symbolic tensor this call reads: its inputs, then its keyword arguments by name (Keras's order)."""
        read = flatten([self.inputs, [self.kwargs[k] for k in sorted(self.kwargs)]])
        return [t for t in read if isinstance(t, SymbolicTensor)]


def is_symbolic(x: Any) -> bool:
    """Whether ``x`` is a symbolic tensor or a list/tuple holding one."""
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, SymbolicTensor) for t in flatten(x))


def _examples(x: Any) -> Any:
    leaves = flatten(x)
    return pack_as(x, [t.example if isinstance(t, SymbolicTensor) else t for t in leaves])


def symbolic_call(layer: torch.nn.Module, inputs: Any, kwargs: dict) -> Any:
    """Record ``layer(inputs, **kwargs)`` as a node; returns its symbolic outputs (same structure)."""
    node = Node(layer, inputs, dict(kwargs))
    example_kwargs = {k: _examples(v) for k, v in kwargs.items()}
    was_training = layer.training
    layer.eval()  # the example run only reads shapes: no moving statistics, no dropout draws
    try:
        with torch.no_grad():
            out = layer(_examples(inputs), **example_kwargs)
    finally:
        layer.train(was_training)
    reset = getattr(layer, "reset_states", None)
    if getattr(layer, "stateful", False) and reset is not None:
        reset()
    leaves = flatten(out)
    if not all(isinstance(t, torch.Tensor) for t in leaves):
        raise TypeError(f"{node.layer_name}: a layer in a functional model must return tensors, "
                        f"got {type(out).__name__}")
    batch_unknown = _batch_unknown(inputs)
    node.outputs = [
        SymbolicTensor((None if batch_unknown else t.shape[0],) + tuple(t.shape[1:]), t.dtype, node, i, t)
        for i, t in enumerate(leaves)
    ]
    node.structure = out
    return pack_as(out, node.outputs)


def _batch_unknown(inputs: Any) -> bool:
    return any(isinstance(t, SymbolicTensor) and t.shape[:1] == (None,) for t in flatten(inputs))
