"""Inference weights derived from other weights (transposed, extended by a column), kept while their source is
the same unchanged tensor.

The converted weights of a cell are such sources: ``rnnkit.kernels.spec.cell_to_torch`` keeps them while the
cell's parameters are unchanged, so a derived weight is made once per parameter update, not once per call.
Only for calls without gradients (a kept tensor is outside any autograd graph).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LIMIT = 64  # entries kept (the oldest goes first)
_KEPT: dict[tuple[str, int], tuple[torch.Tensor, int, torch.Tensor]] = {}  # (kind, id) -> (source, version, derived)


def kept(kind: str, source: torch.Tensor, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``make(source)``, reused while ``source`` is the same tensor at the same version (``kind`` names what
    ``make`` derives). Tensors made under ``torch.inference_mode`` have no version counter to trust: not kept."""
    if source.is_inference():
        return make(source)
    key = (kind, id(source))
    hit = _KEPT.get(key)
    if hit is not None and hit[0] is source and hit[1] == source._version:
        return hit[2]
    derived = make(source)
    if len(_KEPT) >= LIMIT:
        try:  # the oldest entry (another thread may be changing the dict meanwhile)
            _KEPT.pop(next(iter(_KEPT)), None)
        except (RuntimeError, StopIteration):
            pass
    _KEPT[key] = (source, source._version, derived)  # (holding source: its id cannot be reused meanwhile)
    return derived
