"""``CuDNNLSTM`` and ``CuDNNGRU``: the Keras 2 fused-only layers, kept for porting.

They are ``LSTM`` / ``GRU(reset_after=True)`` with the activations fixed
(``tanh``, ``sigmoid``), no dropout, and the fused kernel required
(``use_fused=True``): cuDNN on a GPU, oneDNN / the native kernel on CPU, so
cuDNN itself is not needed. Same numbers as ``LSTM`` / ``GRU`` with the same weights, once
converted from tf.keras 2's CuDNN layout (below).

Arguments are the Keras 2 ones only; anything else (``activation``,
``dropout``...) is a ``TypeError`` that points to ``LSTM`` / ``GRU``.

Weights: ``get_weights()`` / ``set_weights()`` speak tf.keras 2's CuDNN
layout, what its ``CuDNNLSTM`` / ``CuDNNGRU`` hold: each gate's input kernel
block is cuDNN's row-major ``(units, input_dim)`` matrix read as
``(input_dim, units)``, each recurrent block is the transpose of Keras's, and
the bias is ``(8*units,)`` (CuDNNLSTM: input then recurrent biases) or
``(6*units,)`` (CuDNNGRU). The conversion lives in :mod:`rnnkit.kernels.lstm`
and :mod:`rnnkit.kernels.gru` (``cudnn_lstm_to_keras`` ...). As tf.keras 2's
weight loader does, ``set_weights`` also takes the plain ``LSTM`` /
``GRU(reset_after=True)`` layout, told apart by the bias shape (``(4*units,)``
/ ``(2, 3*units)``). Inside, the parameters (``weights``, ``state_dict()``)
are in the plain Keras layout, as ``LSTM`` / ``GRU`` hold them. CuDNNLSTM's
``get_weights`` splits the summed bias in equal halves (tf.keras 2's converter
does the same): only the sum of the two halves is used. A container
(``Bidirectional``, ``Sequential``) lists its layers' parameters, so its own
``get_weights`` gives them in the plain layout; its ``set_weights`` takes either.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rnnkit.cells.args import arguments, documented
from rnnkit.engine.meta import unexpected_arguments
from rnnkit.kernels.gru import cudnn_gru_to_keras, keras_to_cudnn_gru
from rnnkit.kernels.lstm import cudnn_lstm_to_keras, keras_to_cudnn_lstm
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
    n_gates = 0
    # tf.keras 2 CuDNN layout <-> plain Keras layout: (kernel, recurrent_kernel, bias) -> list
    from_cudnn: Callable[..., list]
    to_cudnn: Callable[..., list]

    def _init_keras2(self, args: dict, kwargs: dict) -> None:
        """Refuse what Keras 2's layer did not take (in ``kwargs``), then build the base layer, fused-only."""
        accepted = self._keras2_args()
        unknown = sorted(k for k in kwargs if k not in _LAYER)
        if unknown:
            raise unexpected_arguments(
                type(self).__name__, unknown, accepted,
                f" Keras 2's {type(self).__name__} has only {list(accepted)}"
                f" - use rnnkit.{self.base_name} for the others",
            )
        self._init_from(dict(args, use_fused=True, **self.fixed), kwargs)

    @classmethod
    def _keras2_args(cls) -> tuple:
        return tuple(k for k in inspect.signature(cls.__init__).parameters if k not in ("self", "kwargs"))

    def get_weights(self) -> list[np.ndarray]:
        """The weights in tf.keras 2's CuDNN layout (see the module docstring)."""
        weights = super().get_weights()
        return self.to_cudnn(*weights) if len(weights) == 3 else weights

    def set_weights(self, weights: list) -> None:
        """Set the weights from tf.keras 2's CuDNN layout, or from the plain Keras layout (by the bias shape)."""
        weights = [w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w for w in weights]
        if len(weights) == 3 and np.shape(weights[2]) == self.cudnn_bias_shape():
            weights = self.from_cudnn(*weights)
        super().set_weights(weights)

    def cudnn_bias_shape(self) -> tuple:
        """Shape of tf.keras 2's CuDNN bias for this layer."""
        return (2 * self.n_gates * self.units,)

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
    the same numbers as ``LSTM`` (gate order ``i f c o``) with the same weights;
    ``get_weights`` / ``set_weights`` in tf.keras 2's ``CuDNNLSTM`` layout (module docstring).
    """

    base_name = "LSTM"
    n_gates = 4
    from_cudnn = staticmethod(cudnn_lstm_to_keras)
    to_cudnn = staticmethod(keras_to_cudnn_lstm)

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


@documented(kwargs=_KWARGS.format("GRU"))
class CuDNNGRU(_CuDNNMixin, GRU):
    """Fused-only GRU with Keras 2's ``CuDNNGRU`` arguments.

    ``GRU(reset_after=True, use_fused=True)`` with ``tanh`` / ``sigmoid`` and
    no dropout: the same numbers as ``GRU`` (gate order ``z r h``) with the same weights;
    ``get_weights`` / ``set_weights`` in tf.keras 2's ``CuDNNGRU`` layout (module docstring).
    """

    base_name = "GRU"
    fixed = {"reset_after": True}
    n_gates = 3
    from_cudnn = staticmethod(cudnn_gru_to_keras)
    to_cudnn = staticmethod(keras_to_cudnn_gru)

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
