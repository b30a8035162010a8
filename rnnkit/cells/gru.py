"""``GRUCell``: gated recurrent unit (Cho et al., 2014), both Keras variants.

Equations, gate order and weight layout: the ``GRUCell`` docstring.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.cells.args import arguments, documented_cell
from rnnkit.cells.base import BuiltinCell
from rnnkit.engine import activations


@documented_cell()
class GRUCell(BuiltinCell):
    """Cell of ``GRU``: one step of a gated recurrent unit; arguments and defaults as Keras 3.

    Gate order ``z r h`` (Keras; torch orders ``r z n``). With ``x_z, x_r, x_h``
    the blocks of ``x_t @ kernel + input_bias`` and ``U_z, U_r, U_h`` those of
    ``recurrent_kernel``::

        z = recurrent_activation(x_z + h_{t-1} @ U_z [+ b_rz])
        r = recurrent_activation(x_r + h_{t-1} @ U_r [+ b_rr])
        reset_after=True  (default, cuDNN/torch compatible):
            hh = activation(x_h + r * (h_{t-1} @ U_h + b_rh))
        reset_after=False (original paper):
            hh = activation(x_h + (r * h_{t-1}) @ U_h)
        h_t = z * h_{t-1} + (1 - z) * hh     output_t = h_t

    Shapes (``N`` batch, ``D`` input features, ``U`` units): ``x_t (N, D)``,
    state ``[h]`` ``(N, U)``; weights ``kernel (D, 3U)``, ``recurrent_kernel
    (U, 3U)``, ``bias (2, 3U)`` when ``reset_after`` (row 0 the input bias,
    row 1 the recurrent bias ``b_r*``) else ``(3U,)``. With ``reset_after``
    it is ``torch.nn.GRUCell`` after reordering the gate blocks to ``r z n``
    (``rnnkit.kernels.gru``), given ``tanh`` / ``sigmoid`` activations.

    ``cell(inputs, [h], training=None) -> (h_t, [h_t])``; inputs and states
    may be tensors or numpy arrays (floats are cast to the cell's dtype).
    """

    n_gates = 3

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
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
        reset_after: bool = True,
        seed: int | None = None,
        implementation: int = 2,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        args = arguments(locals())
        recurrent_activation, reset_after = args.pop("recurrent_activation"), args.pop("reset_after")
        super().__init__(**args, **kwargs)
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
