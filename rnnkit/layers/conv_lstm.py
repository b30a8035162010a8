"""``ConvLSTM1D``, ``ConvLSTM2D``, ``ConvLSTM3D``: ``RNN`` over a ``ConvLSTMCell``.

Inputs ``(batch, time, *spatial, channels)`` with ``data_format="channels_last"``
(the default), ``(batch, time, channels, *spatial)`` with ``"channels_first"``;
``spatial`` has 1, 2 or 3 axes. The output (and each state) is
``(batch, [time,] *out_spatial, filters)`` in the same order, ``out_spatial``
being the input convolution's output size (``padding``, ``strides``,
``dilation_rate``). Equations, gate order and weight shapes: see
:class:`rnnkit.cells.conv_lstm.ConvLSTMCell`.

Every Keras 3 constructor argument, with its Keras 3 default: the cell's
(``filters``, ``kernel_size``, ``strides``, ``padding``, ``data_format``,
``dilation_rate``, activations, ``use_bias``, ``*_initializer``,
``unit_forget_bias``, ``*_regularizer``, ``*_constraint``, ``dropout``,
``recurrent_dropout``, ``seed``), the ``RNN``'s (``return_sequences``,
``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
``zero_output_for_mask``, ``time_major``, ``use_fused``) and the ``Layer``'s
(``name``, ``dtype``, ``activity_regularizer``, ...). Cell attributes read
through the layer: ``ConvLSTM2D(4, 3).filters == 4``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.layers.builtin import _LAYER_ARGS, _RNN_ARGS, BuiltinRNN
from rnnkit.layers.rnn import RNN

_CELL_ARGS = frozenset(inspect.signature(ConvLSTMCell.__init__).parameters) - {
    "self", "kwargs", "rank", "filters", "kernel_size",
}


class ConvLSTM(BuiltinRNN):
    """Shared body of ``ConvLSTM1D/2D/3D`` (``rank`` spatial axes); not used directly."""

    rank: int = 0
    cell_class = ConvLSTMCell

    def __init__(self, filters: int, kernel_size: Any, use_fused: Any = "auto", **kwargs: Any) -> None:
        if self.rank not in (1, 2, 3):
            raise TypeError(f"{type(self).__name__}: use ConvLSTM1D, ConvLSTM2D or ConvLSTM3D")
        rnn_kwargs = {k: kwargs.pop(k) for k in _RNN_ARGS if k in kwargs}
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_ARGS if k in kwargs}
        dtype = kwargs.pop("dtype", None)
        unknown = sorted(set(kwargs) - _CELL_ARGS)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {unknown}; "
                f"see help(rnnkit.{type(self).__name__}) for the accepted arguments"
            )
        cell_name = f"{layer_kwargs['name']}_cell" if "name" in layer_kwargs else None
        cell = ConvLSTMCell(self.rank, filters, kernel_size, dtype=dtype, name=cell_name, **kwargs)
        # BuiltinRNN.__init__ builds a units-based cell; the routing above is its ConvLSTM twin.
        RNN.__init__(self, cell, dtype=dtype, use_fused=use_fused, **rnn_kwargs, **layer_kwargs)

    def _layout(self) -> str:
        lead = "(timesteps, batch" if self.time_major else "(batch, timesteps"
        return self.cell._step_layout().replace("(batch", lead)

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
        spatial, channels = cell._split_shape((None,) + tuple(shape[2:]))
        axis = "last" if cell._channels_last else "third"
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


class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM: inputs ``(batch, time, steps, channels)``; see ``ConvLSTMCell``."""

    rank = 1


class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM: inputs ``(batch, time, rows, cols, channels)``; see ``ConvLSTMCell``."""

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM: inputs ``(batch, time, dim1, dim2, dim3, channels)``; see ``ConvLSTMCell``."""

    rank = 3
