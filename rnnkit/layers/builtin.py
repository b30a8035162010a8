"""``SimpleRNN``, ``GRU`` and ``LSTM``: ``RNN`` over the matching built-in cell.

Each takes every Keras 3 constructor argument, with its Keras 3 default and
in Keras's order (so positional calls mean the same), then rnnkit's own:
``zero_output_for_mask`` and ``time_major`` (``RNN``'s), ``use_fused`` (the
path: ``"auto"``, ``True`` or ``False``; Keras's ``use_cudnn`` is an alias),
``compile``, ``implementation`` and the ``Layer``'s ``name``, ``dtype`` and
``trainable``; ``**kwargs`` takes the other ``Layer`` arguments
(``input_shape``, ...). ``help(rnnkit.LSTM)`` lists them all. The layer builds
its cell from the cell's arguments (:meth:`BuiltinRNN._init_from`) and is
otherwise a plain ``RNN``.

Cell attributes (``units``, ``activation``, ``dropout``, ...) read through the
layer: ``LSTM(4).units == 4``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from rnnkit.cells.args import arguments, documented
from rnnkit.cells.base import BuiltinCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.simple_rnn import SimpleRNNCell
from rnnkit.engine.layer import Layer
from rnnkit.layers.rnn import RNN


def _names(fn: Any) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD} - {"self"}


class BuiltinRNN(RNN):
    """Shared constructor, config and attribute forwarding of the built-in layers; not used directly."""

    cell_class: type = BuiltinCell

    def _init_from(self, args: dict, layer_kwargs: dict) -> None:
        """Build the cell from the constructor's named ``args`` (:func:`~rnnkit.cells.args.arguments`), then the RNN.

        The cell takes the arguments its class names; the ``RNN`` takes the
        others and ``layer_kwargs`` (the constructor's ``**kwargs``), which go
        on to ``Layer``: an unknown name there is the ``Layer``'s ``TypeError``,
        naming this layer. ``use_cudnn`` other than ``"auto"`` (or ``None``)
        overrides ``use_fused``. The cell is ``<name>_cell``, in the layer's dtype.
        """
        args = dict(args)
        use_cudnn = args.pop("use_cudnn", None)
        if use_cudnn is not None and not (isinstance(use_cudnn, str) and use_cudnn == "auto"):
            args["use_fused"] = use_cudnn
        cell_names = _names(self.cell_class.__init__) - _names(Layer.__init__)  # type: ignore[misc]
        cell_args = {k: args.pop(k) for k in list(args) if k in cell_names}
        name = args.get("name")
        cell = self.cell_class(**cell_args, name=f"{name}_cell" if name else None, dtype=args.get("dtype"))
        RNN.__init__(self, cell, **args, **layer_kwargs)

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
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> BuiltinRNN:
        return cls(**config)

    @classmethod
    def from_torch(cls, module: torch.nn.RNNBase, *, return_state: bool = False,
                   ignore_dropout: bool = False) -> Any:
        """The rnnkit layer computing exactly what ``module`` (this layer's ``torch.nn`` twin) computes.

        ``LSTM.from_torch(torch.nn.LSTM(...))``, likewise ``GRU`` and
        ``SimpleRNN`` (``torch.nn.RNN``). A one-layer unidirectional module
        gives an instance of this class; ``num_layers > 1`` an ``RNN`` over
        stacked cells, ``bidirectional`` a ``Bidirectional`` (a ``Sequential``
        of them for several layers). Outputs, states and refusals:
        :mod:`rnnkit.io.torch_nn`.
        """
        from rnnkit.io.torch_nn import from_torch  # io sits above the layers

        return from_torch(module, return_state=return_state, ignore_dropout=ignore_dropout, layer_class=cls)

    def to_torch(self, *, ignore_dropout: bool = False) -> torch.nn.RNNBase:
        """The ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` computing exactly what this layer computes.

        See :func:`rnnkit.io.torch_nn.to_torch` (outputs, states, refusals).
        """
        from rnnkit.io.torch_nn import to_torch

        return to_torch(self, ignore_dropout=ignore_dropout)


@documented()
class SimpleRNN(BuiltinRNN):
    """Fully connected RNN layer, ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    ``RNN`` over a ``SimpleRNNCell`` (equations, weight shapes: its
    docstring). Inputs ``(batch, timesteps, features)`` (``time_major``:
    ``(timesteps, batch, features)``); output ``(batch, units)``, or
    ``(batch, timesteps, units)`` with ``return_sequences``; state ``[h]``.
    Fused kernel: ``torch.rnn_tanh`` / ``torch.rnn_relu``.
    """

    cell_class = SimpleRNNCell

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
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        use_fused: Any = "auto",
        use_cudnn: Any = "auto",
        compile: bool = False,
        implementation: int = 2,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_from(arguments(locals()), kwargs)


@documented()
class GRU(BuiltinRNN):
    """Gated recurrent unit layer (``reset_after=True`` by default, cuDNN/torch compatible).

    ``RNN`` over a ``GRUCell``: gate order ``z r h`` (torch: ``r z n``);
    equations, both variants and weight shapes in its docstring. Inputs
    ``(batch, timesteps, features)`` (``time_major``: ``(timesteps, batch,
    features)``); output ``(batch, units)``, or ``(batch, timesteps, units)``
    with ``return_sequences``; state ``[h]``. Fused kernel: ``torch.gru``
    (``reset_after=True`` only).
    """

    cell_class = GRUCell

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
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        use_fused: Any = "auto",
        compile: bool = False,
        implementation: int = 2,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_from(arguments(locals()), kwargs)


@documented()
class LSTM(BuiltinRNN):
    """Long short-term memory layer.

    ``RNN`` over an ``LSTMCell``: gate order ``i f c o`` (torch: ``i f g o``);
    equations and weight shapes in its docstring. Inputs ``(batch,
    timesteps, features)`` (``time_major``: ``(timesteps, batch,
    features)``); output ``(batch, units)``, or ``(batch, timesteps, units)``
    with ``return_sequences``; states ``[h, c]``. Fused kernel: ``torch.lstm``.
    """

    cell_class = LSTMCell

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
        use_cudnn: Any = "auto",
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        use_fused: Any = "auto",
        compile: bool = False,
        implementation: int = 2,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_from(arguments(locals()), kwargs)
