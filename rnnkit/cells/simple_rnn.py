"""``SimpleRNNCell``: the fully connected Elman cell (equations in its docstring)."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.cells.args import arguments, documented_cell
from rnnkit.cells.base import BuiltinCell


@documented_cell()
class SimpleRNNCell(BuiltinCell):
    """Cell of ``SimpleRNN``: the fully connected Elman step; arguments and defaults as Keras 3.

    One gate block::

        h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)
        output_t = h_t

    Shapes (``N`` batch, ``D`` input features, ``U`` units): ``x_t (N, D)``,
    state ``[h]`` ``(N, U)``; weights ``kernel (D, U)``, ``recurrent_kernel
    (U, U)``, ``bias (U,)``. Equivalent to ``torch.nn.RNNCell`` with
    ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``,
    ``bias_ih = bias``, ``bias_hh = 0`` (``activation`` ``tanh`` or ``relu``).

    ``cell(inputs, [h], training=None) -> (h_t, [h_t])``; inputs and states
    may be tensors or numpy arrays (floats are cast to the cell's dtype).
    """

    n_gates = 1

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        implementation: int = 2,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**arguments(locals()), **kwargs)

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        h_prev = states[0]
        h = self.activation(x_proj + self.recurrent_matmul(h_prev, self.recurrent_kernel, training))
        return h, [h]
