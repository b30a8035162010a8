"""``LSTMCell``: long short-term memory (Hochreiter & Schmidhuber, 1997).

Equations, gate order and weight layout: the ``LSTMCell`` docstring. Also
here: :func:`lstm_gates`, the gate math ``ConvLSTMCell`` shares, and
:class:`UnitForgetBias`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.cells.args import arguments, documented_cell
from rnnkit.cells.base import BuiltinCell
from rnnkit.engine import activations, initializers


class UnitForgetBias(initializers.Initializer):
    """``base`` for the i/c/o blocks of a ``(4*units,)`` bias, ones for the forget block.

    The ``bias_initializer`` of ``LSTMCell`` and ``ConvLSTMCell`` when
    ``unit_forget_bias=True``.
    """

    def __init__(self, base: Any, units: int) -> None:
        self.base, self.units = base, units

    def __call__(self, shape, dtype=torch.float32):
        u = self.units
        return torch.cat(
            [self.base((u,), dtype=dtype), torch.ones(u, dtype=dtype), self.base((2 * u,), dtype=dtype)]
        )

    def get_config(self) -> dict:
        return {}


def lstm_gates(z: torch.Tensor, c_prev: torch.Tensor, activation: Callable, recurrent_activation: Callable,
               axis: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM gates: ``(h_t, c_t)`` from the pre-activations ``z`` and ``c_{t-1}``.

    ``z`` holds the four gate blocks ``i f c o`` along ``axis`` (the channel
    axis for ``ConvLSTMCell``); ``c_prev`` has the shape of one block::

        i = recurrent_activation(z_i)        f = recurrent_activation(z_f)
        c_t = f * c_{t-1} + i * activation(z_c)
        o = recurrent_activation(z_o)
        h_t = o * activation(c_t)
    """
    # One recurrent_activation over all four blocks (the c block of it is
    # unused): one op and one autograd node per step instead of three.
    i, f, _, o = recurrent_activation(z).chunk(4, dim=axis)
    c = f * c_prev + i * activation(z.chunk(4, dim=axis)[2])
    h = o * activation(c)
    return h, c


@documented_cell()
class LSTMCell(BuiltinCell):
    """Cell of ``LSTM``: one step of long short-term memory; arguments and defaults as Keras 3.

    Gate order ``i f c o`` (Keras; torch calls the candidate ``g``). With
    ``z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias`` split in four
    blocks of ``units``::

        i = recurrent_activation(z_i)        f = recurrent_activation(z_f)
        c_t = f * c_{t-1} + i * activation(z_c)
        o = recurrent_activation(z_o)
        h_t = o * activation(c_t)            output_t = h_t

    Shapes (``N`` batch, ``D`` input features, ``U`` units): ``x_t (N, D)``,
    states ``[h, c]`` each ``(N, U)``; weights ``kernel (D, 4U)``,
    ``recurrent_kernel (U, 4U)``, ``bias (4U,)``, blocks in gate order.
    ``unit_forget_bias=True`` initialises the forget block of the bias to ones.
    Equivalent to ``torch.nn.LSTMCell`` with ``weight_ih = kernel.T``,
    ``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0``
    (same gate order), given ``tanh`` / ``sigmoid`` activations.

    ``cell(inputs, [h, c], training=None) -> (h_t, [h_t, c_t])``; inputs and
    states may be tensors or numpy arrays (floats are cast to the cell's dtype).
    """

    n_gates = 4
    torch_layout = True  # (oneDNN / cuDNN read kernel.T and recurrent_kernel.T without a copy)

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
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
        args = arguments(locals())
        recurrent_activation, unit_forget_bias = args.pop("recurrent_activation"), args.pop("unit_forget_bias")
        super().__init__(**args, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def _bias_initializer(self) -> Any:
        return UnitForgetBias(self.bias_initializer, self.units) if self.unit_forget_bias else self.bias_initializer

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        h_prev, c_prev = states[0], states[1]
        z = x_proj + self.recurrent_matmul(h_prev, self.recurrent_kernel, training)
        h, c = lstm_gates(z, c_prev, self.activation, self.recurrent_activation)
        return h, [h, c]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            unit_forget_bias=self.unit_forget_bias,
        )
        return config
