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

tf.keras 2's ``CuDNNGRU`` (:func:`cudnn_gru_to_keras` /
:func:`keras_to_cudnn_gru`) is ``GRU(reset_after=True)`` with cuDNN's per-gate
kernel layout (see :mod:`rnnkit.kernels.lstm`): kernel block ``g`` is cuDNN's
row-major ``(U, D)`` matrix ``W_g`` read as ``(D, U)`` (Keras: ``W_g.T``),
recurrent block ``g`` is ``R_g`` (Keras: ``R_g.T``), and the bias is ``(6U,)``,
the input biases then the recurrent ones (Keras: the same numbers as
``(2, 3U)``). Its blocks are in Keras's gate order ``z r h``, not cuDNN's
``r z h``: tf.keras 2's layer reorders them when it calls cuDNN. So from torch
(``r z n``): ``kernel = [weight_ih[U:2U].reshape(D, U) | weight_ih[:U].reshape(D, U)
| weight_ih[2U:].reshape(D, U)]``, and likewise for ``weight_hh`` and the biases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnnkit.cells.gru import GRUCell
from rnnkit.kernels.lstm import cudnn_kernels_to_keras, gate_blockers, keras_kernels_to_cudnn
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


def cudnn_gru_to_keras(kernel, recurrent_kernel, bias) -> list[np.ndarray]:
    """Keras ``GRU(reset_after=True)`` ``[kernel, recurrent_kernel, bias (2, 3U)]`` from tf.keras 2 ``CuDNNGRU``."""
    kernel, recurrent_kernel = cudnn_kernels_to_keras(kernel, recurrent_kernel, 3)
    bias = np.asarray(bias)
    if bias.shape != (2 * kernel.shape[1],):
        raise ValueError(f"cudnn_gru_to_keras: expected a CuDNNGRU bias of shape ({2 * kernel.shape[1]},), "
                         f"got {bias.shape}")
    return [kernel, recurrent_kernel, bias.reshape(2, -1)]


def keras_to_cudnn_gru(kernel, recurrent_kernel, bias) -> list[np.ndarray]:
    """tf.keras 2 ``CuDNNGRU`` ``[kernel, recurrent_kernel, bias (6U,)]`` from Keras ``GRU(reset_after=True)``."""
    kernel, recurrent_kernel = keras_kernels_to_cudnn(kernel, recurrent_kernel, 3)
    bias = np.asarray(bias)
    if bias.shape != (2, kernel.shape[1]):
        raise ValueError(f"keras_to_cudnn_gru: expected a GRU(reset_after=True) bias of shape "
                         f"(2, {kernel.shape[1]}), got {bias.shape}")
    return [kernel, recurrent_kernel, bias.reshape(-1)]


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

    def to_native(self, cell: Any) -> tuple[list[torch.Tensor], str]:
        # torch's layout, Keras's gate order (z r h): views of the cell's weights, no reordering
        bias = cell.bias
        weights = [cell.kernel.t(), cell.recurrent_kernel.t()]
        return (weights + [bias[0], bias[1]] if bias is not None else weights), "gru_keras"

    from_torch = staticmethod(gru_from_torch)


SPEC = register(GRUSpec())
