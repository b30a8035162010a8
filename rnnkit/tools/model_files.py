"""``rnnkit inspect FILE`` and ``rnnkit convert FILE OUT``: Keras model files on the command line.

``inspect`` loads the file (nothing in it is executed), runs the model once on
zeros of its input shape, and prints one row per layer: name, class, output
shape, parameter count and, for recurrent layers, the path ``explain()``
says their calls take.

``convert`` writes the loaded model as a ``.keras`` archive (``OUT`` ending in
``.keras``) or as a torch file (anything else) holding ``{"state_dict",
"keras_config", "keras_version"}``: ``torch.load(OUT, weights_only=True)``
reads it, and ``rnnkit.model_from_keras_config(json.loads(d["keras_config"]),
d["keras_version"]).load_state_dict(d["state_dict"])`` rebuilds the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.io.keras_file import read_keras_file


def input_specs(model: torch.nn.Module, config: dict) -> list[tuple[tuple, torch.dtype]]:
    """The model's input shape(s) (batch first, ``None`` for unknown dims) and dtype(s)."""
    if isinstance(model, rnnkit.Model):
        return list(zip(model.input_shapes, model.input_dtypes))
    layers = config.get("config", {}).get("layers", [])
    first = layers[0] if layers else {}
    cfg = first.get("config", {})
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or (first.get("build_config") or {}).get(
        "input_shape")
    if shape is None:
        raise ValueError("the model's input shape is not in the file")
    ids = any(layer.get("class_name") == "Embedding" for layer in layers[:2])
    return [(tuple(shape), torch.int64 if ids else torch.float32)]


def example_inputs(model: torch.nn.Module, config: dict) -> list[torch.Tensor]:
    """Zeros of the model's input shape(s) (unknown dims as 2), in the input dtype."""
    return [torch.zeros(tuple(2 if d is None else d for d in shape), dtype=dtype)
            for shape, dtype in input_specs(model, config)]


def inspect_file(path: str | Path) -> str:
    """The table ``rnnkit inspect`` prints."""
    f = read_keras_file(path)
    model = rnnkit.load_keras_model(path)
    inputs = example_inputs(model, f.config or {})
    seen: dict[int, tuple] = {}
    hooks = []
    for module in model.modules():
        if isinstance(module, rnnkit.Layer) and module is not model:
            def hook(mod: Any, args: tuple, kwargs: dict, out: Any) -> None:
                seen.setdefault(id(mod), (args, kwargs, out))
            hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    with torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()
    lines = [f"{f.path}: {f.config.get('class_name') if f.config else '?'} written by Keras "
             f"{f.keras_version or '?'} ({f.flavour})",
             f"{'layer':<28}{'class':<22}{'output shape':<24}{'params':>9}  path"]
    layers: list[Any] = list(getattr(model, "layers", [model]))
    total = 0
    for layer in layers:
        n = sum(p.numel() for p in layer.parameters())
        total += n
        args, kwargs, out = seen.get(id(layer), ((), {}, None))
        shape = _shape(out)
        path_ = ""
        if isinstance(layer, (rnnkit.RNN, rnnkit.Bidirectional)) and args:
            path_ = str(rnnkit.explain(layer, args[0], mask=kwargs.get("mask")))
        name = getattr(layer, "name", type(layer).__name__)
        lines.append(f"{name:<28}{type(layer).__name__:<22}{shape:<24}{n:>9}  {path_}")
    lines.append(f"total parameters: {total}")
    return "\n".join(lines)


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return str((None,) + tuple(out.shape[1:]))
    if isinstance(out, (list, tuple)):
        return ", ".join(_shape(o) for o in out)
    return "?"


def convert_file(src: str | Path, dst: str | Path) -> str:
    """Write ``src`` (a Keras file) as ``dst`` (``.keras``, or a torch file); returns what was written."""
    f = read_keras_file(src)
    model = rnnkit.load_keras_model(src)
    if str(dst).endswith(".keras"):
        if isinstance(model, rnnkit.Model):
            rnnkit.save_keras_model(model, dst)
        else:
            ((shape, dtype),) = input_specs(model, f.config or {})
            rnnkit.save_keras_model(model, dst, input_shape=shape,
                                    input_dtype="float32" if dtype.is_floating_point else "int32")
        return f"{dst}: Keras 3 archive"
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "keras_config": json.dumps(f.config),
        "keras_version": f.keras_version or "3",
    }
    torch.save(payload, dst)
    return f"{dst}: torch state_dict ({len(payload['state_dict'])} tensors) + Keras config"
