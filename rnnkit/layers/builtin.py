"""``SimpleRNN``, ``GRU`` and ``LSTM``: ``RNN`` over the matching built-in cell.

Each takes every Keras 3 constructor argument with its Keras 3 default: the
cell's (``units``, ``activation``, ``recurrent_activation``, ``use_bias``,
``*_initializer``, ``*_regularizer``, ``*_constraint``, ``dropout``,
``recurrent_dropout``, ``seed``, ``unit_forget_bias`` / ``reset_after``,
``implementation``), the ``RNN``'s (``return_sequences``, ``return_state``,
``go_backwards``, ``stateful``, ``unroll``, ``zero_output_for_mask``,
``time_major``) and the ``Layer``'s (``name``, ``dtype``, ``input_shape``,
``activity_regularizer``, ...). ``use_fused`` (alias ``use_cudnn``) picks the
path: ``"auto"``, ``True`` or ``False``.

Cell attributes (``units``, ``activation``, ``dropout``, ...) read through the
layer: ``LSTM(4).units == 4``.
"""

from __future__ import annotations

import inspect
from typing import Any

from rnnkit.cells.base import BuiltinCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.simple_rnn import SimpleRNNCell
from rnnkit.layers.rnn import RNN

_RNN_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask",
             "time_major", "compile")
_LAYER_ARGS = ("name", "trainable", "input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size",
               "activity_regularizer")


def _cell_arg_names(cell_class: type) -> set[str]:
    names: set[str] = set()
    for klass in (cell_class, BuiltinCell):
        names |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    return names


class BuiltinRNN(RNN):
    """Shared constructor, config and attribute forwarding of the built-in layers."""

    cell_class: type = BuiltinCell

    def __init__(self, units: int, use_fused: Any = "auto", use_cudnn: Any = None, **kwargs: Any) -> None:
        if use_cudnn is not None:
            use_fused = use_cudnn
        rnn_kwargs = {k: kwargs.pop(k) for k in _RNN_ARGS if k in kwargs}
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_ARGS if k in kwargs}
        dtype = kwargs.pop("dtype", None)
        unknown = sorted(set(kwargs) - _cell_arg_names(self.cell_class))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {unknown}; "
                "see help(rnnkit." + type(self).__name__ + ") for the accepted arguments"
            )
        cell_name = f"{layer_kwargs['name']}_cell" if "name" in layer_kwargs else None
        cell = self.cell_class(units, dtype=dtype, name=cell_name, **kwargs)
        super().__init__(cell, dtype=dtype, use_fused=use_fused, **rnn_kwargs, **layer_kwargs)

    def __getattr__(self, name: str) -> Any:
        modules = self.__dict__.get("_modules", {})
        if name in modules:  # `self.cell`, on every call: skip the exception path
            return modules[name]
        try:
            return super().__getattr__(name)
        except AttributeError:
            cell = modules.get("cell")
            if cell is not None and not name.startswith("_") and hasattr(cell, name):
                return getattr(cell, name)
            raise

    def get_config(self) -> dict:
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> "BuiltinRNN":
        return cls(**config)


class SimpleRNN(BuiltinRNN):
    """Fully connected RNN, ``h_t = activation(x_t W + h_{t-1} U + b)``; see ``SimpleRNNCell``."""

    cell_class = SimpleRNNCell


class GRU(BuiltinRNN):
    """Gated recurrent unit layer (``reset_after=True`` by default); see ``GRUCell``."""

    cell_class = GRUCell


class LSTM(BuiltinRNN):
    """Long short-term memory layer; see ``LSTMCell`` for equations and gate order."""

    cell_class = LSTMCell
