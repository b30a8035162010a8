"""Keras functional configs to ``rnnkit.Model``: inputs, layer calls (nodes), outputs.

Keras writes a functional model as its layers, each with the calls made to it
(``inbound_nodes``: Keras 3 ``{"args", "kwargs"}`` with ``__keras_tensor__``
references, Keras 2 ``[[layer, node, index, kwargs], ...]``), and the
``input_layers`` / ``output_layers`` references. Here every call the outputs
need is replayed on ``rnnkit.Input`` symbolic tensors, parents first::

    needed = calls reachable from the outputs (through inputs and kwargs, not masks)
    while needed calls remain: run each whose inputs exist: layer(inputs, **kwargs)
    Model(inputs, outputs)

Keras 3 also records the ops that computed masks passed as ``mask=``
(``NotEqual``, ``Any``...); rnnkit hands masks on through ``compute_mask``,
so those calls are not needed and not built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.io.keras_file import KerasFileError
from rnnkit.io.keras_layers import Context, layer_name_of

# Keras 3 mask ops (the .h5 writer drops their "module" key, so they are known by name too).
_MASK_OPS = {"NotEqual", "Equal", "Any", "All", "ExpandDims", "Squeeze", "LogicalOr", "LogicalAnd", "LogicalNot",
             "ZerosLike", "OnesLike", "Cast", "BroadcastTo"}


def input_dtype(dtype: Any) -> torch.dtype:
    """A Keras input dtype (a name or a ``DTypePolicy`` config) as a torch dtype (mixed policies: float32)."""
    from rnnkit.engine.dtypes import resolve_input_dtype

    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name")
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        dtype = "float32"
    return resolve_input_dtype(dtype or "float32", "Keras input")


def reset_stateful(model: torch.nn.Module) -> None:
    """Clear what building a model left in its stateful layers."""
    for m in model.modules():
        reset = getattr(m, "reset_states", None)
        if getattr(m, "stateful", False) and callable(reset):
            reset()


def functional_model(spec: dict, ctx: Context, make_layer: Callable[[dict, dict], torch.nn.Module]
                     ) -> tuple[torch.nn.Module, dict]:
    """An ``rnnkit.Model`` from a Keras functional config; ``make_layer(spec, layers)`` builds one layer
    (nested models included) and records it in ``layers`` by name."""
    import rnnkit

    config = spec.get("config", {})
    specs = config.get("layers", [])
    tensors: dict[tuple, Any] = {}
    layers: dict[str, torch.nn.Module] = {}
    calls: dict[tuple, tuple] = {}  # (layer name, node index) -> (spec, node)
    for s in specs:
        name = layer_name_of(s)
        if s.get("class_name") == "InputLayer":
            cfg = s.get("config", {})
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if shape is None:
                raise KerasFileError(f"{ctx.where}: input {name!r} has no shape")
            tensors[(name, 0, 0)] = rnnkit.Input(batch_shape=tuple(shape), dtype=input_dtype(cfg.get("dtype")),
                                                name=name)
            continue
        for index, node in enumerate(s.get("inbound_nodes", [])):
            calls[(name, index)] = (s, node)
    # Only the calls the outputs need: Keras 3 also records the ops (and layers) that computed masks
    # passed as `mask=`; rnnkit hands masks on through compute_mask instead.
    needed = _needed_calls(calls, _refs(config.get("output_layers")))
    pending = []
    for (name, index), (s, node) in calls.items():
        if (name, index) not in needed:
            continue
        if str(s.get("module", "")).startswith("keras.src.ops") or (
                s.get("class_name") in _MASK_OPS and s.get("class_name") not in ctx.custom_objects):
            raise KerasFileError(f"{ctx.where}: the model computes with the Keras op {name!r} "
                                 f"({s.get('class_name')}); rnnkit reads ops only where they compute masks")
        layer = layers.get(name) or make_layer(s, layers)
        pending.append((name, layer, index, node))
    while pending:  # a node runs once the tensors it reads exist (Keras lists layers, not nodes, in order)
        progressed = False
        for item in list(pending):
            name, layer, index, node = item
            call = _node_call(node, tensors, ctx, name)
            if call is None:
                continue
            inputs, kwargs = call
            out = layer(inputs, **kwargs)
            for i, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(name, index, i)] = t
            pending.remove(item)
            progressed = True
        if not progressed:
            raise KerasFileError(f"{ctx.where}: the model graph references tensors that no layer makes "
                                 f"(layers {[p[0] for p in pending]})")
    inputs = [_tensor(ref, tensors, ctx) for ref in _refs(config.get("input_layers"))]
    outputs = [_tensor(ref, tensors, ctx) for ref in _refs(config.get("output_layers"))]
    single_out = _is_single(config.get("output_layers"))
    model = rnnkit.Model(inputs if len(inputs) > 1 else inputs[0], outputs[0] if single_out else outputs,
                         name=config.get("name"))
    reset_stateful(model)
    return model, layers


def _refs(value: Any) -> list:
    """``input_layers`` / ``output_layers``: ``[name, node, index]`` or a list of them."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [value]
    return list(value)


def _is_single(value: Any) -> bool:
    return bool(value) and isinstance(value[0], str)


def _tensor(ref: list, tensors: dict, ctx: Context) -> Any:
    key = (ref[0], int(ref[1]), int(ref[2]))
    if key not in tensors:
        raise KerasFileError(f"{ctx.where}: the model refers to tensor {list(key)}, which no layer makes")
    return tensors[key]


def _node_call(node: Any, tensors: dict, ctx: Context, name: str) -> tuple[Any, dict] | None:
    """``(inputs, kwargs)`` of one inbound node (Keras 3 dict or Keras 2 list form); None if not ready."""
    missing = object()

    def resolve(x: Any) -> Any:
        if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
            history = x.get("config", {}).get("keras_history")
            key = (history[0], int(history[1]), int(history[2]))
            return tensors.get(key, missing)
        if isinstance(x, list):
            return [resolve(v) for v in x]
        if isinstance(x, dict):
            return {k: resolve(v) for k, v in x.items()}
        return x

    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = [resolve(a) for a in node.get("args", [])]
        kwargs = {k: resolve(v) for k, v in node.get("kwargs", {}).items()}
        if not args:
            raise KerasFileError(f"{ctx.where}: layer {name!r} has a call without inputs")
        inputs = args[0]
    else:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        refs = [(r[0], int(r[1]), int(r[2])) for r in node]
        found = [tensors.get(r, missing) for r in refs]
        kwargs = {}
        for r in node:
            if len(r) > 3 and isinstance(r[3], dict):
                kwargs.update({k: _keras2_kwarg(v, tensors, missing) for k, v in r[3].items()})
        inputs = found[0] if len(found) == 1 else found
    kwargs = {k: v for k, v in kwargs.items() if k not in ("mask", "training")}  # masks travel by compute_mask
    if _has(inputs, missing) or _has(list(kwargs.values()), missing):
        return None
    return inputs, kwargs


def _needed_calls(calls: dict, outputs: list) -> set:
    """The ``(layer, node index)`` calls the outputs depend on, through inputs and keyword
    arguments other than ``mask`` / ``training``."""
    needed: set = set()
    stack = [(str(ref[0]), int(ref[1])) for ref in outputs]
    while stack:
        key = stack.pop()
        if key in needed or key not in calls:
            continue
        needed.add(key)
        stack.extend(_node_sources(calls[key][1]))
    return needed


def _node_sources(node: Any) -> list[tuple[str, int]]:
    """``(layer, node index)`` of every tensor a node reads (its masks left out)."""
    out: list[tuple[str, int]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
            history = x.get("config", {}).get("keras_history")
            out.append((str(history[0]), int(history[1])))
        elif isinstance(x, dict):
            for k, v in x.items():
                if k not in ("mask", "training"):
                    walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int) and isinstance(x[2], int):
                out.append((x[0], x[1]))  # Keras 2: [layer, node, index(, kwargs)]
                if len(x) > 3:
                    walk(x[3])
            else:
                for v in x:
                    walk(v)

    walk(node.get("args", []) if isinstance(node, dict) else node)
    if isinstance(node, dict):
        walk(node.get("kwargs", {}))
    return out


def _keras2_kwarg(value: Any, tensors: dict, missing: object) -> Any:
    """Keras 2 node kwargs name tensors as ``[layer, node, index]`` lists (e.g. ``initial_state``)."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        return [_keras2_kwarg(v, tensors, missing) for v in value]
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return tensors.get((value[0], int(value[1]), int(value[2])), missing)
    return value


def _has(x: Any, missing: object) -> bool:
    if x is missing:
        return True
    if isinstance(x, (list, tuple)):
        return any(_has(v, missing) for v in x)
    return False
