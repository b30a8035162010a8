"""Dtype names as Keras spells them ("float32", "float64", ...) to torch dtypes."""

from __future__ import annotations

from typing import Any

import torch

_NAMES = {
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
}


def resolve_dtype(dtype: Any, where: str = "rnnkit") -> torch.dtype:
    """A torch floating dtype from a name, a torch dtype, a numpy dtype or None.

    None gives ``torch.get_default_dtype()``. A Keras ``DTypePolicy`` config
    (``{"config": {"name": "float32"}}``) is accepted as well.
    """
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif isinstance(dtype, dict):
        return resolve_dtype(dtype.get("config", {}).get("name"), where)
    else:
        name = getattr(dtype, "name", None) or getattr(dtype, "__name__", dtype)
        name = str(name).replace("torch.", "")
        if name not in _NAMES:
            raise ValueError(f"{where}: unknown dtype {dtype!r}; expected one of {sorted(_NAMES)} or a torch dtype")
        out = _NAMES[name]
    if not out.is_floating_point:
        raise ValueError(f"{where}: dtype must be floating point, got {out}")
    return out


_INT_NAMES = {
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint8": torch.uint8, "bool": torch.bool,
}


def resolve_input_dtype(dtype: Any, where: str = "rnnkit") -> torch.dtype:
    """What an input may hold: a floating dtype (:func:`resolve_dtype`) or an integer/bool one (token ids)."""
    if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
        return dtype
    name = str(getattr(dtype, "name", None) or dtype).replace("torch.", "")
    if name in _INT_NAMES:
        return _INT_NAMES[name]
    return resolve_dtype(dtype, where)
