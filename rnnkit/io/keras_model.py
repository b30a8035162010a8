"""``load_keras_model`` / ``load_keras_weights``: Keras files to rnnkit modules.

::

    file   = read_keras_file(path)                 # JSON config + arrays, nothing executed
    model  = build_model(file.config)              # Sequential -> rnnkit.Sequential,
                                                   # Functional -> rnnkit.Model (Input + layer calls)
    model(example inputs)                          # builds every layer's weights
    for each layer: layer.set_weights(its arrays)  # rnnkit.io.keras_weights

The loaded model's ``forward`` gives the Keras model's ``predict`` (one
tensor, or a list for several inputs), in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnnkit.io.keras_file import KerasFile, KerasFileError, read_keras_file
from rnnkit.io.keras_graph import functional_model, input_dtype, reset_stateful
from rnnkit.io.keras_layers import Context, build_layer, layer_name_of
from rnnkit.io.keras_weights import (
    assign,
    layer_names_in_file,
    list_names,
    model_layer_specs,
    named_weights,
    tree_weights,
)

_MODELS = ("Sequential", "Functional", "Model")



def load_keras_model(path: str | Path, custom_objects: dict[str, Any] | None = None) -> torch.nn.Module:
    """A Keras model file as an rnnkit module (``rnnkit.Sequential`` or ``rnnkit.Model``), in eval mode.

    Reads Keras 3 ``.keras`` archives and ``.h5`` full-model files written by
    Keras 3, tf.keras 2 or Keras 2, with the semantics of the Keras version
    that wrote them. Nothing from the file is executed: unknown layer classes
    and ``Lambda`` layers are refused unless ``custom_objects`` maps their
    class name to a class of yours.

    Args:
        path: the file.
        custom_objects: ``{"ClassName": cls}`` for layers rnnkit does not know;
            ``cls.from_config(config)`` (or ``cls(**config)``) builds them.
    """
    f = read_keras_file(path)
    if f.config is None:
        raise KerasFileError(f"{f.path}: a weights-only file ({f.flavour}); build the model and use "
                             "rnnkit.load_keras_weights(model, path)")
    ctx = Context(f.keras_major, dict(custom_objects or {}), f.path)
    model, layers = build_model(f.config, ctx)
    _load_weights(f, f.config, layers)
    return model.eval()


def load_keras_weights(model: torch.nn.Module, path: str | Path, by_name: bool = False) -> None:
    """Set ``model``'s weights from a weights file (or a full-model file's weights).

    Keras 3 ``.weights.h5`` / ``.keras``: layers matched in order, as Keras
    does (the model's rnnkit layers with weights, in ``model.modules()``
    order, against the file's layers with weights). Keras 2 / tf.keras 2
    ``save_weights`` ``.h5``: in order too, or by layer name with
    ``by_name=True`` (layers absent from the file are left as they are).
    """
    f = read_keras_file(path)
    targets = _weighted_layers(model)
    if f.flavour in ("h5", "h5-weights"):
        names = [n for n in layer_names_in_file(f) if f.attrs.get(n, {}).get("weight_names")]
        if by_name:
            for layer in targets:
                if layer.name in f.attrs:
                    assign(layer, named_weights(f, layer.name), f, layer.name)
            return
        sources = [(n, named_weights(f, n)) for n in names]
    else:
        if by_name:
            raise KerasFileError(f"{f.path}: Keras 3 weight files have no layer names to match; load in order")
        specs = [_spec_of(layer) for layer in _model_layers(model)]
        # Keras 2.12's saving_lib named the layer list `_layer_checkpoint_dependencies`
        root = "_layer_checkpoint_dependencies" if any(k.startswith("_layer_checkpoint_dependencies/")
                                                       for k in f.groups) else "layers"
        paths = [f"{root}/{name}" for name in list_names(specs)]
        found = [(path_, spec, layer) for path_, spec, layer in zip(paths, specs, _model_layers(model))]
        sources, targets = [], []
        for path_, spec, layer in found:
            arrays = tree_weights(f, path_, spec)
            if arrays or _weights_of(layer):
                sources.append((path_, arrays))
                targets.append(layer)
    if len(sources) != len(targets):
        raise KerasFileError(
            f"{f.path}: the file holds weights for {len(sources)} layer(s) ({[n for n, _ in sources]}), the model "
            f"has {len(targets)} layer(s) with weights ({[t.name for t in targets]})"
        )
    for layer, (name, arrays) in zip(targets, sources):
        assign(layer, arrays, f, f"{layer.name} (file: {name})")


def model_from_keras_config(config: dict, keras_version: str = "3", custom_objects: dict | None = None
                            ) -> torch.nn.Module:
    """The rnnkit model for a Keras model config (``model.get_config()`` wrapped as in ``config.json``:
    ``{"class_name": "Sequential" or "Functional", "config": {...}}``), built, weights initialized.

    ``keras_version`` is the writing Keras version (its semantics; see ``load_keras_model``).
    """
    ctx = Context(int(str(keras_version).split(".")[0] or 3), dict(custom_objects or {}), "config")
    return build_model(config, ctx)[0]


# ------------------------------------------------------------------ models
def build_model(spec: dict, ctx: Context) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    """The rnnkit model for a Keras model config, built, and its layers by Keras name."""
    class_name = spec.get("class_name")
    if class_name == "Sequential":
        return _sequential(spec, ctx)
    if class_name in ("Functional", "Model"):
        return functional_model(spec, ctx, lambda s_, layers: _layer(s_, ctx, layers))
    raise KerasFileError(f"{ctx.where}: the model is a {class_name!r}; rnnkit reads Sequential and functional "
                         "models (subclassed models have no config to rebuild them from)")


def _layer(spec: dict, ctx: Context, layers: dict) -> torch.nn.Module:
    if spec.get("class_name") in _MODELS:
        model, inner = build_model(spec, ctx)
        layers.update(inner)
    else:
        model = build_layer(spec, ctx)
    layers[layer_name_of(spec)] = model
    return model


def _sequential(spec: dict, ctx: Context) -> tuple[torch.nn.Module, dict]:
    import rnnkit

    config = spec.get("config", {})
    specs = config.get("layers", []) if isinstance(config, dict) else list(config)
    name = config.get("name") if isinstance(config, dict) else None
    shape, dtype = _sequential_input(spec, specs)
    layers: dict[str, torch.nn.Module] = {}
    body = [_layer(s, ctx, layers) for s in specs if s.get("class_name") != "InputLayer"]
    model = rnnkit.Sequential(body, name=name)
    if shape is not None:
        with torch.no_grad():
            model(_example(shape, dtype))
        reset_stateful(model)
    return model, layers


def _sequential_input(spec: dict, specs: list) -> tuple[tuple | None, torch.dtype]:
    """The input shape and dtype a Sequential was built with (InputLayer, batch_input_shape, build_config)."""
    shape: Any = None
    dtype: Any = None
    first = specs[0] if specs else {}
    cfg = first.get("config", {})
    if first.get("class_name") == "InputLayer":
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        dtype = cfg.get("dtype")
    else:
        shape = cfg.get("batch_input_shape") or (first.get("build_config") or {}).get("input_shape")
        if isinstance(cfg.get("dtype"), str) and first.get("class_name") != "Embedding":
            dtype = cfg.get("dtype")
    if shape is None:
        top = spec.get("config", {})
        shape = (spec.get("build_config") or {}).get("input_shape") or (
            top.get("build_input_shape") if isinstance(top, dict) else None)
    if dtype is None or first.get("class_name") == "Embedding" and not _is_int(dtype):
        dtype = "int64" if _first_real(specs).get("class_name") == "Embedding" else "float32"
    return (tuple(shape) if shape is not None else None), input_dtype(dtype)


def _first_real(specs: list) -> dict:
    return next((s for s in specs if s.get("class_name") != "InputLayer"), {})


def _is_int(dtype: Any) -> bool:
    return isinstance(dtype, str) and ("int" in dtype or dtype == "bool")


def _example(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(tuple(1 if d is None else int(d) for d in shape), dtype=dtype)


def _load_weights(f: KerasFile, spec: dict, layers: dict[str, torch.nn.Module]) -> None:
    if f.flavour == "keras3":
        for _, layer_spec, path in _tree_layers(spec, "layers"):
            layer = layers.get(layer_name_of(layer_spec))
            arrays = tree_weights(f, path, layer_spec)
            if layer is not None and layer_spec.get("class_name") not in _MODELS and (arrays or _weights_of(layer)):
                assign(layer, arrays, f, layer_name_of(layer_spec))
        return
    for name, layer in layers.items():
        if isinstance(layer, torch.nn.Module) and not _is_model(layer) and (_weights_of(layer) or name in f.attrs):
            assign(layer, named_weights(f, name) if name in f.attrs else [], f, name)


def _tree_layers(spec: dict, prefix: str) -> list[tuple[str, dict, str]]:
    """``(group name, layer spec, h5 path)`` of every layer of a Keras 3 model, nested models walked into."""
    out = []
    specs = model_layer_specs(spec)
    for name, layer_spec in zip(list_names(specs), specs):
        path = f"{prefix}/{name}"
        if layer_spec.get("class_name") in _MODELS:
            out += _tree_layers(layer_spec, f"{path}/layers")
        else:
            out.append((name, layer_spec, path))
    return out


def _model_layers(model: torch.nn.Module) -> list:
    """The layer list Keras 3 saves for ``model`` (its ``layers``), or ``[model]`` for a single layer."""
    import rnnkit

    if isinstance(model, rnnkit.Sequential):
        return list(model.layers)
    if isinstance(model, rnnkit.Model):
        return [_InputStandIn() for _ in model.input_names] + list(model.layers)
    return [model]


class _InputStandIn:
    """An ``InputLayer`` in Keras's list of a functional model's layers (it takes a group name)."""

    weights: list = []


def _spec_of(layer: Any) -> dict:
    """The Keras-style spec of an rnnkit layer (its class and config), to find its groups in a weights tree."""
    if isinstance(layer, _InputStandIn):
        return {"class_name": "InputLayer", "config": {}}
    get_config = getattr(layer, "get_config", None)
    try:
        config = get_config() if get_config is not None else {}
    except NotImplementedError:  # a custom layer without a config: only its class names its group
        config = {}
    return {"class_name": type(layer).__name__, "config": config}


def _weights_of(layer: torch.nn.Module) -> list:
    return list(getattr(layer, "weights", []) or [])


def _is_model(layer: torch.nn.Module) -> bool:
    import rnnkit

    return isinstance(layer, (rnnkit.Sequential, rnnkit.Model))


def _weighted_layers(model: torch.nn.Module) -> list:
    """The top-most rnnkit layers with weights in ``model`` (a Bidirectional, not its halves)."""
    import rnnkit

    out: list = []

    def walk(m: torch.nn.Module) -> None:
        for child in m.children():
            if isinstance(child, (rnnkit.Sequential, rnnkit.Model, torch.nn.ModuleList)):
                walk(child)
            elif isinstance(child, rnnkit.Layer) and child.weights:
                out.append(child)
            elif not isinstance(child, rnnkit.Layer) and list(child.parameters()):
                raise KerasFileError(f"{type(model).__name__}: a plain torch module ({type(child).__name__}) has "
                                     "weights; Keras weight files fit rnnkit layers only")

    if isinstance(model, rnnkit.Layer) and not isinstance(model, (rnnkit.Sequential, rnnkit.Model)):
        return [model]
    walk(model)
    return out
