"""GRU's kernel spec: ``torch.gru`` and the Keras <-> torch weight layouts.

=========  =========================================  ====================================
           Keras (rnnkit) layout                      torch.nn layout (``*_l0``)
=========  =========================================  ====================================
kernel     ``(D, 3U)``, gates ``z r h``               weight_ih ``(3U, D)``, gates ``r z n``
recurrent  ``(U, 3U)``                                weight_hh ``(3U, U)``
bias       ``(2, 3U)``: row 0 input, row 1 recurrent  bias_ih = row 0, bias_hh = row 1
=========  =========================================  ====================================

Only ``reset_after=True`` GRUs have a torch twin (torch applies the reset gate
after the recurrent matrix product); the first two gate blocks swap places.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.cells.gru import GRUCell
from rnnkit.kernels.lstm import gate_blockers
from rnnkit.kernels.spec import KernelSpec, register


def _gru_reorder(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Swap the first two gate blocks along ``dim``: ``z r h`` <-> ``r z n``."""
    a, b, c = w.chunk(3, dim=dim)
    return torch.cat([b, a, c], dim=dim)


def gru_to_torch(kernel, recurrent_kernel, bias=None) -> list[torch.Tensor]:
    """torch GRU weights from a Keras ``reset_after=True`` GRU."""
    weights = [_gru_reorder(kernel.t(), 0), _gru_reorder(recurrent_kernel.t(), 0)]
    if bias is not None:
        weights += [_gru_reorder(bias[0], 0), _gru_reorder(bias[1], 0)]
    return weights


def gru_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[torch.Tensor]:
    """Keras ``[kernel, recurrent_kernel, bias (2, 3U)]`` from torch's GRU weights."""
    out = [_gru_reorder(weight_ih, 0).t(), _gru_reorder(weight_hh, 0).t()]
    if bias_ih is not None:
        out.append(torch.stack([_gru_reorder(bias_ih, 0), _gru_reorder(bias_hh, 0)]))
    return out


class GRUSpec(KernelSpec):
    name = "GRU"
    cell_class = GRUCell

    def blockers(self, cell: Any) -> list[str]:
        out = [] if cell.reset_after else ["GRU reset_after=False has no fused kernel"]
        return out + gate_blockers(cell)

    def kernel(self, cell: Any) -> Callable:
        return torch.gru

    def to_torch(self, cell: Any) -> list[torch.Tensor]:
        return gru_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)

    from_torch = staticmethod(gru_from_torch)


SPEC = register(GRUSpec())
