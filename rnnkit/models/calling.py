"""Calling one layer inside a container, the mask handed over explicitly.

``call_with_mask(owner, layer, x, mask, training)`` is the one rule both
containers (``Sequential`` and the functional ``Model``) follow:

* an rnnkit layer gets ``mask=`` when its call takes a ``mask`` argument and
  a mask is given, ``training=`` when its call takes it and it is given;
  the output's mask is ``layer.compute_mask(x, mask)`` (Keras's rule); a
  layer that does not support masking drops a given mask with a warning;
* a container (anything with ``forward_with_mask``) returns its own mask;
* a plain torch module is called as ``module(x)``: its output keeps the mask
  when it has the input's two leading dims (batch and time), else drops it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from rnnkit.core.protocol import call_accepts, cell_method
from rnnkit.engine.layer import Layer


def as_mask(mask: Any, like: Any) -> Any:
    """A given mask as a boolean tensor on ``like``'s device (0/1 integers accepted); lists stay lists."""
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)) and not isinstance(like, torch.Tensor):
        return [as_mask(m, x) for m, x in zip(mask, like)]
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(np.asarray(mask))
    if mask.dtype != torch.bool:
        mask = mask != 0
    if isinstance(like, torch.Tensor) and mask.device != like.device:
        mask = mask.to(like.device)
    return mask


def keeps_leading_dims(x: Any, y: Any) -> bool:
    """Whether ``y`` has ``x``'s two leading dims (batch and time, or time and batch)."""
    return (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dim() >= 2 and y.dim() >= 2
            and x.shape[:2] == y.shape[:2])


def _given(mask: Any) -> bool:
    if isinstance(mask, (list, tuple)):
        return any(m is not None for m in mask)
    return mask is not None


def call_with_mask(owner: str, layer: torch.nn.Module, x: Any, mask: Any, training: bool | None,
                   kwargs: dict | None = None) -> tuple[Any, Any]:
    """``(output, output_mask)`` of ``layer`` on ``x`` (see the module docstring); ``owner`` names the container."""
    kwargs = dict(kwargs or {})
    forward_with_mask = getattr(layer, "forward_with_mask", None)
    if forward_with_mask is not None:
        return forward_with_mask(x, mask, training)
    if not isinstance(layer, Layer):
        y = layer(x, **kwargs)
        return y, (mask if mask is not None and keeps_leading_dims(x, y) else None)
    method = cell_method(layer)
    if _given(mask) and call_accepts(method, "mask"):
        kwargs["mask"] = mask
    if training is not None and call_accepts(method, "training"):
        kwargs["training"] = training
    y = layer(x, **kwargs)
    if _given(mask) and not layer.supports_masking:
        warnings.warn(
            f"{owner}: layer {layer.name!r} ({type(layer).__name__}) does not support masking; "
            "the mask stops there and later layers see none",
            stacklevel=3,
        )
    return y, layer.compute_mask(x, mask)
