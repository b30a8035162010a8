"""``CuDNNLSTM`` and ``CuDNNGRU``: the Keras 2 fused-only layers, kept for porting.

They are ``LSTM`` / ``GRU(reset_after=True)`` with the activations fixed
(``tanh``, ``sigmoid``), no dropout, and the fused kernel required
(``use_fused=True``): cuDNN on a GPU, oneDNN / the native kernel on CPU, so
cuDNN itself is not needed. Same weights, same numbers as ``LSTM`` / ``GRU``.

Arguments are the Keras 2 ones only; anything else (``activation``,
``dropout``...) is a ``TypeError`` that points to ``LSTM`` / ``GRU``.
``set_weights`` also takes Keras 2's own CuDNN bias layouts: ``(8*units,)``
for CuDNNLSTM (input then recurrent bias, summed) and ``(6*units,)`` for
CuDNNGRU (reshaped to ``(2, 3*units)``).
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnkit.cells.args import arguments, documented
from rnnkit.layers.builtin import GRU, LSTM

if TYPE_CHECKING:  # the mixin's hosts' base: where ``super()`` and ``_init_from`` resolve in CuDNNLSTM / CuDNNGRU
    from rnnkit.layers.builtin import BuiltinRNN as _MixinBase
else:
    _MixinBase = object

_LAYER = ("input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size")
_KWARGS = ("``input_shape``, ``input_dim`` (with ``input_length``), ``batch_input_shape`` and ``batch_size`` build "
           "the weights at construction; anything else (``activation``, ``dropout``...) is a ``TypeError`` that "
           "points to ``rnnkit.{}``.")


class _CuDNNMixin(_MixinBase):
    """The Keras 2 argument check, config and construction shared by ``CuDNNLSTM`` and ``CuDNNGRU``."""

    base_name = ""
    fixed: dict = {}

    def _init_keras2(self, args: dict, kwargs: dict) -> None:
        """Refuse what Keras 2's layer did not take (in ``kwargs``), then build the base layer, fused-only."""
        accepted = self._keras2_args()
        unknown = sorted(k for k in kwargs if k not in _LAYER)
        if unknown:
            hints = [f"{m[0]!r} for {k!r}" for k in unknown if (m := difflib.get_close_matches(k, accepted, 1))]
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {unknown}"
                + (f"; did you mean {', '.join(hints)}?" if hints else "")
                + f" Keras 2's {type(self).__name__} has only {list(accepted)}"
                f" - use rnnkit.{self.base_name} for the others"
            )
        self._init_from(dict(args, use_fused=True, **self.fixed), kwargs)

    @classmethod
    def _keras2_args(cls) -> tuple:
        return tuple(k for k in inspect.signature(cls.__init__).parameters if k not in ("self", "kwargs"))

    def get_config(self) -> dict:
        config = super().get_config()
        keep = set(self._keras2_args())
        return {k: v for k, v in config.items() if k in keep}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        return cls(**config)


@documented(kwargs=_KWARGS.format("LSTM"))
class CuDNNLSTM(_CuDNNMixin, LSTM):
    """Fused-only LSTM with Keras 2's ``CuDNNLSTM`` arguments (``unit_forget_bias`` included).

    ``LSTM(use_fused=True)`` with ``tanh`` / ``sigmoid`` and no dropout:
    the same weights and numbers as ``LSTM`` (gate order ``i f c o``).
    """

    base_name = "LSTM"

    def __init__(
        self,
        units: int,
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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_keras2(arguments(locals()), kwargs)

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        if len(weights) == 3 and np.shape(weights[2]) == (8 * self.units,):
            bias = np.asarray(weights[2])
            weights[2] = bias[: 4 * self.units] + bias[4 * self.units :]
        super().set_weights(weights)


@documented(kwargs=_KWARGS.format("GRU"))
class CuDNNGRU(_CuDNNMixin, GRU):
    """Fused-only GRU with Keras 2's ``CuDNNGRU`` arguments.

    ``GRU(reset_after=True, use_fused=True)`` with ``tanh`` / ``sigmoid`` and
    no dropout: the same weights and numbers as ``GRU`` (gate order ``z r h``).
    """

    base_name = "GRU"
    fixed = {"reset_after": True}

    def __init__(
        self,
        units: int,
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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        self._init_keras2(arguments(locals()), kwargs)

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        if len(weights) == 3 and np.shape(weights[2]) == (6 * self.units,):
            weights[2] = np.asarray(weights[2]).reshape(2, 3 * self.units)
        super().set_weights(weights)
