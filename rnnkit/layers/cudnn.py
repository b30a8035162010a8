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

from typing import Any

import numpy as np

from rnnkit.layers.builtin import GRU, LSTM

_COMMON = (
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "return_sequences", "return_state", "go_backwards", "stateful",
)
_LAYER = ("name", "dtype", "trainable", "input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size")


class _CuDNNMixin:
    keras2_args: tuple = _COMMON
    base_name = ""

    def _check_args(self, kwargs: dict) -> None:
        unknown = sorted(set(kwargs) - set(self.keras2_args) - set(_LAYER))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {unknown}; Keras 2's "
                f"{type(self).__name__} has only {list(self.keras2_args)} - use rnnkit.{self.base_name} for the others"
            )

    def get_config(self) -> dict:
        config = super().get_config()
        keep = set(self.keras2_args) | {"name", "dtype", "trainable", "units"}
        return {k: v for k, v in config.items() if k in keep}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        return cls(**config)


class CuDNNLSTM(_CuDNNMixin, LSTM):
    """Fused-only LSTM with Keras 2's ``CuDNNLSTM`` arguments (``unit_forget_bias`` included)."""

    keras2_args = _COMMON + ("unit_forget_bias",)
    base_name = "LSTM"

    def __init__(self, units: int, **kwargs: Any) -> None:
        self._check_args(kwargs)
        super().__init__(units, use_fused=True, **kwargs)

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        if len(weights) == 3 and np.shape(weights[2]) == (8 * self.units,):
            bias = np.asarray(weights[2])
            weights[2] = bias[: 4 * self.units] + bias[4 * self.units :]
        super().set_weights(weights)


class CuDNNGRU(_CuDNNMixin, GRU):
    """Fused-only GRU (``reset_after=True``) with Keras 2's ``CuDNNGRU`` arguments."""

    base_name = "GRU"

    def __init__(self, units: int, **kwargs: Any) -> None:
        self._check_args(kwargs)
        super().__init__(units, use_fused=True, reset_after=True, **kwargs)

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        if len(weights) == 3 and np.shape(weights[2]) == (6 * self.units,):
            weights[2] = np.asarray(weights[2]).reshape(2, 3 * self.units)
        super().set_weights(weights)
