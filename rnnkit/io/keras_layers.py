"""Keras layer configs (``{"class_name": ..., "config": {...}}``) to rnnkit layers.

Classes come from a fixed table of supported Keras class names
(:data:`SUPPORTED`) or from the caller's ``custom_objects``; a name from a
file is never imported or evaluated. ``Lambda`` layers (code) and unknown
classes are refused with the layer's name.

A config is read with the semantics of the Keras version that wrote it
(``keras_major``): Keras 2 / tf.keras 2's ``hard_sigmoid`` is
``clip(0.2 x + 0.5, 0, 1)`` (``legacy_hard_sigmoid`` here) where Keras 3's is
``relu6(x + 3) / 6``, and a Keras 2 GRU config without ``reset_after`` means
``reset_after=False`` (Keras 2's default).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnkit.io.keras_file import KerasFileError

# Keras class name -> rnnkit public name (resolved on rnnkit at use: layers not present are unsupported).
SUPPORTED: dict[str, str] = {name: name for name in (
    "RNN", "SimpleRNN", "GRU", "LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional",
    "CuDNNLSTM", "CuDNNGRU", "SimpleRNNCell", "GRUCell", "LSTMCell", "StackedRNNCells",
    "Embedding", "Masking", "Dense", "Dropout", "SpatialDropout1D", "TimeDistributed", "Flatten", "Reshape",
    "Permute", "Activation", "RepeatVector", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "BatchNormalization", "LayerNormalization", "Conv1D", "Concatenate", "Add", "Subtract", "Multiply",
    "Average", "Maximum", "Minimum", "Dot",
)}
SUPPORTED.update({"GlobalAvgPool1D": "GlobalAveragePooling1D", "GlobalMaxPool1D": "GlobalMaxPooling1D",
                  "Convolution1D": "Conv1D"})

# Keys that carry nothing rnnkit needs (bookkeeping of the Keras object graph, eager-build hints).
_DROPPED = {"module", "registered_name", "build_config", "compile_config", "shared_object_id", "batch_input_shape",
            "batch_shape", "input_shape", "sparse", "ragged", "optional", "autocast"}
_RECURRENT = {"RNN", "SimpleRNN", "GRU", "LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "CuDNNLSTM", "CuDNNGRU"}
_GATED = {"GRU", "LSTM", "GRUCell", "LSTMCell", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_CODE = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


@dataclass
class Context:
    """What a config is read with: the writing Keras version and the caller's classes."""

    keras_major: int = 3
    custom_objects: dict[str, Any] = field(default_factory=dict)
    where: str = ""


def rnnkit_class(class_name: str, layer_name: str, ctx: Context) -> Any:
    """The class for a Keras ``class_name``: the caller's, or rnnkit's supported one."""
    if class_name in ctx.custom_objects:
        return ctx.custom_objects[class_name]
    if class_name in _CODE:
        raise KerasFileError(
            f"{ctx.where}: layer {layer_name!r} is a {class_name}, which holds Python code; rnnkit never runs "
            f"code from a file. Rebuild that layer in Python and pass its class in custom_objects="
            f"{{{class_name!r}: ...}}, or remove it from the model"
        )
    import rnnkit

    public = SUPPORTED.get(class_name)
    cls = getattr(rnnkit, public, None) if public is not None else None
    if not isinstance(cls, type):
        raise KerasFileError(
            f"{ctx.where}: layer {layer_name!r} has class {class_name!r}, which rnnkit does not support; "
            f"pass your own class in custom_objects={{{class_name!r}: YourLayer}}. Supported: "
            f"{', '.join(sorted(n for n in SUPPORTED if getattr(rnnkit, SUPPORTED[n], None) is not None))}"
        )
    return cls


def _spec_parts(spec: Any, ctx: Context) -> tuple[str, dict]:
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise KerasFileError(f"{ctx.where}: expected a layer config with a 'class_name', got {str(spec)[:200]}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise KerasFileError(f"{ctx.where}: the config of a {spec['class_name']} is not a dict")
    return spec["class_name"], dict(config)


def layer_name_of(spec: dict) -> str:
    config = spec.get("config") if isinstance(spec, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return str(name or spec.get("name", "?"))


def build_layer(spec: dict, ctx: Context) -> torch.nn.Module:
    """An rnnkit layer (or the caller's) from one Keras layer config."""
    class_name, config = _spec_parts(spec, ctx)
    name = str(config.get("name", class_name))
    cls = rnnkit_class(class_name, name, ctx)
    if class_name in ctx.custom_objects:  # the caller's class gets the config, Keras bookkeeping removed
        config = {k: (_dtype_name(v) if k == "dtype" else v) for k, v in config.items()
                  if k not in _DROPPED and k != "autocast"}
        from_config = getattr(cls, "from_config", None)
        return from_config(config) if from_config is not None else cls(**config)
    if class_name == "StackedRNNCells":
        cells = [build_layer(c, ctx) for c in config.pop("cells", [])]
        kwargs = _kwargs(cls, class_name, _legacy(class_name, config, ctx), name, ctx)
        return _construct(cls, class_name, name, ctx, cells, **kwargs)
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(config.get(key), dict):
            config[key] = build_layer(config[key], ctx)
    if class_name in ("Bidirectional",) and "weights" in config:
        config.pop("weights")
    kwargs = _kwargs(cls, class_name, _legacy(class_name, config, ctx), name, ctx)
    return _construct(cls, class_name, name, ctx, **kwargs)


def _construct(cls: type, class_name: str, layer: str, ctx: Context, /, *args: Any, **kwargs: Any) -> torch.nn.Module:
    """``cls(*args, **kwargs)``; a value rnnkit refuses (an activation or initializer it does not have, say) is a
    :class:`KerasFileError` naming the file part and the layer."""
    try:
        return cls(*args, **kwargs)
    except KerasFileError:
        raise
    except (ValueError, TypeError) as e:
        raise KerasFileError(f"{ctx.where}: layer {layer!r} ({class_name}): {e}") from e


def _legacy(class_name: str, config: dict, ctx: Context) -> dict:
    """Keras 2 semantics made explicit for rnnkit (Keras 3 semantics)."""
    if class_name.startswith("CuDNN") and not config.get("time_major", False):
        config.pop("time_major", None)  # tf.keras 2 writes it on every recurrent layer; CuDNN layers never had it
    if class_name == "Embedding":
        config.pop("input_length", None)  # Keras 2's; Keras 3 ignores it too
    if ctx.keras_major >= 3:
        return config
    for key in ("activation", "recurrent_activation"):
        if config.get(key) == "hard_sigmoid":
            config[key] = "legacy_hard_sigmoid"
    if class_name in ("GRU", "GRUCell") and "reset_after" not in config:
        config["reset_after"] = False  # Keras 2's default
    return config


def _kwargs(cls: type, class_name: str, config: dict, name: str, ctx: Context) -> dict:
    """The config's keys that ``cls`` takes; Keras-only bookkeeping dropped, anything else refused."""
    out = {}
    accepted = _accepted(cls)
    for key, value in config.items():
        if key in _DROPPED:
            continue
        if key == "dtype":
            value = _dtype_name(value)
        if key in accepted:
            out[key] = value
        elif value not in (None, False, 0, {}, []):
            raise KerasFileError(
                f"{ctx.where}: layer {name!r} ({class_name}) has the argument {key}={str(value)[:80]!r}, which "
                f"rnnkit.{cls.__name__} does not take"
            )
    return out


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"self"}


def _dtype_name(value: Any) -> Any:
    """A Keras dtype or ``DTypePolicy`` config as the variables' dtype name (mixed policies keep float32)."""
    if isinstance(value, dict):
        value = value.get("config", {}).get("name")
    if isinstance(value, str) and value.startswith("mixed_"):
        return "float32"
    return value
