"""``LSTMCell``: long short-term memory (Hochreiter & Schmidhuber, 1997).

Gate order ``i f c o`` (Keras; torch calls the candidate ``g``). With
``z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias`` split in four::

    i = recurrent_activation(z_i)        f = recurrent_activation(z_f)
    c_t = f * c_{t-1} + i * activation(z_c)
    o = recurrent_activation(z_o)
    h_t = o * activation(c_t)            output_t = h_t

Weights: ``kernel (input_dim, 4*units)``, ``recurrent_kernel (units, 4*units)``,
``bias (4*units,)``. ``unit_forget_bias=True`` initialises the forget block of
the bias to ones. States: ``[h, c]``, each ``(batch, units)``.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import initializers
from rnnkit.cells.base import BuiltinCell


class _UnitForgetBias(initializers.Initializer):
    """``bias_initializer`` for the i/c/o blocks, ones for the forget block."""

    def __init__(self, base: Any, units: int) -> None:
        self.base, self.units = base, units

    def __call__(self, shape, dtype=torch.float32):
        u = self.units
        return torch.cat(
            [self.base((u,), dtype=dtype), torch.ones(u, dtype=dtype), self.base((2 * u,), dtype=dtype)]
        )

    def get_config(self) -> dict:
        return {}


class LSTMCell(BuiltinCell):
    """Cell of ``LSTM``; Keras 3 arguments plus ``recurrent_activation`` and ``unit_forget_bias``."""

    n_gates = 4

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 unit_forget_bias: bool = True, **kwargs: Any) -> None:
        from rnnkit import activations

        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def _bias_initializer(self) -> Any:
        if self.unit_forget_bias:
            return _UnitForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        h_prev, c_prev = states[0], states[1]
        z = x_proj + self.recurrent_matmul(h_prev, self.recurrent_kernel, training)
        z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_prev + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self) -> dict:
        from rnnkit import activations

        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            unit_forget_bias=self.unit_forget_bias,
        )
        return config
