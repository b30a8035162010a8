"""``GRUCell``: gated recurrent unit (Cho et al., 2014), both Keras variants.

Gate order ``z r h`` (Keras; torch orders ``r z n``). With ``x_z, x_r, x_h``
the blocks of ``x_t @ kernel + input_bias``::

    z = recurrent_activation(x_z + h_{t-1} @ U_z [+ b_rz])
    r = recurrent_activation(x_r + h_{t-1} @ U_r [+ b_rr])
    reset_after=True  (default, cuDNN/torch compatible):
        hh = activation(x_h + r * (h_{t-1} @ U_h + b_rh))
    reset_after=False (original paper):
        hh = activation(x_h + (r * h_{t-1}) @ U_h)
    h_t = z * h_{t-1} + (1 - z) * hh     output_t = h_t

Weights: ``kernel (input_dim, 3*units)``, ``recurrent_kernel (units, 3*units)``,
``bias (2, 3*units)`` when ``reset_after`` (row 0 input bias, row 1 recurrent
bias ``b_r*``) else ``(3*units,)``. State: ``[h]``.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.engine import activations
from rnnkit.cells.base import BuiltinCell


class GRUCell(BuiltinCell):
    """Cell of ``GRU``; Keras 3 arguments plus ``recurrent_activation`` and ``reset_after``."""

    n_gates = 3

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    @property
    def input_bias(self) -> torch.Tensor | None:
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        h_prev = states[0]
        u = self.units
        x_z, x_r, x_h = x_proj.split(u, dim=-1)
        if self.reset_after:
            inner = self.recurrent_matmul(h_prev, self.recurrent_kernel, training)
            if self.bias is not None:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = inner.split(u, dim=-1)
        else:
            inner = self.recurrent_matmul(h_prev, self.recurrent_kernel[:, : 2 * u], training)
            r_z, r_r = inner.split(u, dim=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        if self.reset_after:
            hh = self.activation(x_h + r * r_h)
        else:
            # (r * h) @ U_h, with the h-gate recurrent dropout mask (Keras impl. 1)
            r_h = self.recurrent_matmul(r * h_prev, self.recurrent_kernel[:, 2 * u :], training, first_gate=2)
            hh = self.activation(x_h + r_h)
        h = z * h_prev + (1.0 - z) * hh
        return h, [h]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            reset_after=self.reset_after,
        )
        return config
