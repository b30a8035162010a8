"""SimpleRNN's kernel spec: ``torch.rnn_tanh`` / ``torch.rnn_relu``.

=========  ============================  ==============================
           Keras (rnnkit) layout         torch.nn layout (``*_l0``)
=========  ============================  ==============================
kernel     ``(D, U)``                    weight_ih ``(U, D)``
recurrent  ``(U, U)``                    weight_hh ``(U, U)``
bias       ``(U,)``                      bias_ih = bias, bias_hh = 0
=========  ============================  ==============================

The same transposes as the LSTM's, with one gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.cells.simple_rnn import SimpleRNNCell
from rnnkit.engine import activations
from rnnkit.kernels.lstm import lstm_from_torch, lstm_to_torch
from rnnkit.kernels.spec import KernelSpec, register

simple_rnn_to_torch = lstm_to_torch
simple_rnn_from_torch = lstm_from_torch


class SimpleRNNSpec(KernelSpec):
    name = "SimpleRNN"
    cell_class = SimpleRNNCell

    def blockers(self, cell: Any) -> list[str]:
        if cell.activation in (activations.tanh, activations.relu):
            return []
        return [f"activation {activations.serialize(cell.activation)!r} is neither 'tanh' nor 'relu'"]

    def kernel(self, cell: Any) -> Callable:
        return torch.rnn_relu if cell.activation is activations.relu else torch.rnn_tanh

    def to_torch(self, cell: Any) -> list[torch.Tensor]:
        return simple_rnn_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)

    from_torch = staticmethod(simple_rnn_from_torch)


SPEC = register(SimpleRNNSpec())
