"""``SimpleRNNCell``: the fully connected Elman cell.

Equations (``x`` ``(batch, input_dim)``, ``h`` ``(batch, units)``)::

    h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)
    output_t = h_t

Weights (Keras layout): ``kernel (input_dim, units)``,
``recurrent_kernel (units, units)``, ``bias (units,)``. State: ``[h]``.
Equivalent to ``torch.nn.RNNCell`` with ``weight_ih = kernel.T``,
``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0``.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.cells.base import BuiltinCell


class SimpleRNNCell(BuiltinCell):
    """Cell of ``SimpleRNN``; arguments and defaults as Keras 3."""

    n_gates = 1

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        h_prev = states[0]
        h = self.activation(x_proj + self.recurrent_matmul(h_prev, self.recurrent_kernel, training))
        return h, [h]
