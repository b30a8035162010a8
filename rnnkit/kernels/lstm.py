"""LSTM's kernel spec: ``torch.lstm`` and the Keras <-> torch weight layouts.

=========  =========================================  ====================================
           Keras (rnnkit) layout                      torch.nn layout (``*_l0``)
=========  =========================================  ====================================
kernel     ``(D, 4U)``, gates ``i f c o``             weight_ih ``(4U, D)``, gates ``i f g o``
recurrent  ``(U, 4U)``                                weight_hh ``(4U, U)``
bias       ``(4U,)``                                  bias_ih = bias, bias_hh = 0
=========  =========================================  ====================================

The gate order is the same (Keras's ``c`` is torch's ``g``): only transposes.
Going back, ``bias_ih + bias_hh`` is folded into Keras's single bias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.cells.lstm import LSTMCell
from rnnkit.engine import activations
from rnnkit.kernels.spec import KernelSpec, register


def lstm_to_torch(kernel, recurrent_kernel, bias=None) -> list[torch.Tensor]:
    """``[weight_ih, weight_hh, bias_ih, bias_hh]`` (biases omitted without ``bias``)."""
    weights = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        weights += [bias, torch.zeros_like(bias)]
    return weights


def lstm_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[torch.Tensor]:
    """Keras ``[kernel, recurrent_kernel, bias]`` from torch's LSTM weights."""
    out = [weight_ih.t(), weight_hh.t()]
    if bias_ih is not None:
        out.append(bias_ih + bias_hh)
    return out


def gate_blockers(cell: Any) -> list[str]:
    """Gated cells fuse only with ``tanh`` / ``sigmoid`` activations."""
    out = []
    if cell.activation is not activations.tanh:
        out.append(f"activation {activations.serialize(cell.activation)!r} is not 'tanh'")
    if cell.recurrent_activation is not activations.sigmoid:
        out.append(f"recurrent_activation {activations.serialize(cell.recurrent_activation)!r} is not 'sigmoid'")
    return out


class LSTMSpec(KernelSpec):
    name = "LSTM"
    cell_class = LSTMCell

    def blockers(self, cell: Any) -> list[str]:
        return gate_blockers(cell)

    def kernel(self, cell: Any) -> Callable:
        return torch.lstm

    def to_torch(self, cell: Any) -> list[torch.Tensor]:
        return lstm_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)

    from_torch = staticmethod(lstm_from_torch)


SPEC = register(LSTMSpec())
