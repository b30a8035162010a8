"""``ConvLSTM1D``, ``ConvLSTM2D``, ``ConvLSTM3D``: ``RNN`` over a ``ConvLSTMCell``.

Inputs ``(batch, time, *spatial, channels)`` with ``data_format="channels_last"``
(the default), ``(batch, time, channels, *spatial)`` with ``"channels_first"``;
``spatial`` has 1, 2 or 3 axes. The output (and each state) is
``(batch, [time,] *out_spatial, filters)`` in the same order, ``out_spatial``
being the input convolution's output size (``padding``, ``strides``,
``dilation_rate``). Equations, gate order and weight shapes: see
:class:`rnnkit.cells.conv_lstm.ConvLSTMCell`.

Every Keras 3 constructor argument, with its Keras 3 default and in Keras's
order, then rnnkit's own (``unroll``, ``zero_output_for_mask``,
``time_major``, ``use_fused``, ``compile``, ``name``, ``dtype``,
``trainable``; ``**kwargs`` for the other ``Layer`` arguments): one explicit
signature, ``ConvLSTM.__init__``, shared by the three classes. Cell attributes
read through the layer: ``ConvLSTM2D(4, 3).filters == 4``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.cells.args import arguments, documented
from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.layers.builtin import BuiltinRNN


class ConvLSTM(BuiltinRNN):
    """Shared body of ``ConvLSTM1D/2D/3D`` (``rank`` spatial axes); not used directly."""

    rank: int = 0
    cell_class = ConvLSTMCell

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
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
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        use_fused: Any = "auto",
        compile: bool = False,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        if self.rank not in (1, 2, 3):
            raise TypeError(f"{type(self).__name__}: use ConvLSTM1D, ConvLSTM2D or ConvLSTM3D")
        self._init_from(dict(arguments(locals()), rank=self.rank), kwargs)

    def _layout(self) -> str:
        lead = "(timesteps, batch" if self.time_major else "(batch, timesteps"
        return self.cell.step_layout().replace("(batch", lead)

    def _check_rank(self, shape: tuple) -> None:
        if len(shape) != self.rank + 3:
            raise ValueError(
                f"{self.name}: expected input of rank {self.rank + 3} {self._layout()}, "
                f"got shape {tuple(shape)} (rank {len(shape)})"
            )

    def build(self, input_shape: tuple) -> None:
        self._check_rank(tuple(input_shape))
        super().build(input_shape)

    def _check_features(self, shape: tuple) -> None:
        """Rank, channels and spatial size against what the layer was built with."""
        self._check_rank(shape)
        if self._feature_shape is None or tuple(shape[2:]) == tuple(self._feature_shape):
            return
        cell = self.cell
        spatial, channels = cell.split_shape((None,) + tuple(shape[2:]))
        axis = "last" if cell.channels_last else "third"
        if channels != cell.input_dim:
            raise ValueError(
                f"{self.name}: expected {cell.input_dim} input channels ({axis} axis, "
                f"data_format={cell.data_format!r}) as at build time, got {channels} in input of shape {tuple(shape)}"
            )
        raise ValueError(
            f"{self.name}: expected spatial shape {cell.spatial_dims} as at build time (the state shape "
            f"depends on it), got {tuple(spatial)} in input of shape {tuple(shape)}"
        )

    def call(self, sequences, initial_state=None, mask=None, training=None, constants=None):
        shape = getattr(sequences, "shape", None)
        self._check_features(tuple(shape) if shape is not None else np.shape(sequences))
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training,
                            constants=constants)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        b_axis, t_axis = self._batch_time_axes()
        batch, steps = input_shape[b_axis], input_shape[t_axis]
        state = self.cell.compute_output_shape((batch,) + input_shape[2:])[0]
        if self.return_sequences:
            out = ((steps, batch) if self.time_major else (batch, steps)) + state[1:]
        else:
            out = state
        return [out, state, state] if self.return_state else out

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("rank", None)  # fixed by the class
        config.setdefault("activity_regularizer", None)  # Keras lists it even when unset
        return config


@documented()
class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM: inputs ``(batch, time, steps, channels)``; see ``ConvLSTMCell``.

    Output ``(batch, [time,] new_steps, filters)`` (``channels_first``: the
    channel axis after the time axis); states ``[h, c]`` of the output's
    one-step shape. Gate order ``i f c o``; equations in ``ConvLSTMCell``.
    """

    rank = 1


@documented()
class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM: inputs ``(batch, time, rows, cols, channels)``; see ``ConvLSTMCell``.

    Output ``(batch, [time,] new_rows, new_cols, filters)`` (``channels_first``:
    the channel axis after the time axis); states ``[h, c]`` of the output's
    one-step shape. Gate order ``i f c o``; equations in ``ConvLSTMCell``.
    """

    rank = 2


@documented()
class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM: inputs ``(batch, time, dim1, dim2, dim3, channels)``; see ``ConvLSTMCell``.

    Output ``(batch, [time,] new_dim1, new_dim2, new_dim3, filters)``
    (``channels_first``: the channel axis after the time axis); states
    ``[h, c]`` of the output's one-step shape. Gate order ``i f c o``;
    equations in ``ConvLSTMCell``.
    """

    rank = 3
