"""Layer configs to and from ``{"class_name": ..., "config": {...}}`` dicts.

Deserialization looks classes up by name only (``custom_objects`` first, then
rnnkit's public layers); nothing from a config is ever evaluated.
"""

from __future__ import annotations

from typing import Any


def serialize_layer(layer: Any) -> dict:
    if not hasattr(layer, "get_config"):
        raise TypeError(f"cannot serialize {type(layer).__name__}: it has no get_config()")
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _builtin(name: str):
    import rnnkit
    from rnnkit.engine.layer import Layer

    obj = getattr(rnnkit, name, None)
    return obj if isinstance(obj, type) and issubclass(obj, Layer) else None


def deserialize_layer(spec: Any, custom_objects: dict | None = None) -> Any:
    """Instantiate a layer from ``serialize_layer``'s output."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"expected a dict with 'class_name' and 'config', got {spec!r}")
    name = spec["class_name"]
    cls = (custom_objects or {}).get(name) or _builtin(name)
    if cls is None:
        raise ValueError(
            f"unknown layer class {name!r}: pass it in custom_objects={{'{name}': {name}}}"
        )
    config = dict(spec.get("config", {}))
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        return cls(**config)
    try:
        return from_config(config, custom_objects=custom_objects)
    except TypeError as err:
        if "custom_objects" not in str(err):
            raise
        return from_config(config)
