"""tf.keras 2 ``CuDNNLSTM`` / ``CuDNNGRU`` weight lists <-> plain ``LSTM`` / ``GRU(reset_after=True)`` ones.

For a Keras-file loader: an ``.h5`` file written by tf.keras 2 holds a CuDNN
layer's weights in cuDNN's layout (see :mod:`rnnkit.kernels.lstm` and
:mod:`rnnkit.kernels.gru`, where the conversion lives). These helpers take a
layer's whole weight list, by its ``class_name`` as the file spells it::

    cudnn_to_keras_weights("CuDNNLSTM", [kernel, recurrent_kernel, bias])   # -> LSTM weights
    cudnn_to_keras_weights("CuDNNGRU", six_arrays)   # Bidirectional(CuDNNGRU): forward, then backward

``rnnkit.CuDNNLSTM`` / ``CuDNNGRU`` take the CuDNN layout in ``set_weights``
directly; these are for loading the weights into ``LSTM`` / ``GRU``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnkit.kernels.gru import cudnn_gru_to_keras, keras_to_cudnn_gru
from rnnkit.kernels.lstm import cudnn_lstm_to_keras, keras_to_cudnn_lstm

#: tf.keras 2 CuDNN class name -> the plain Keras class (``GRU`` with ``reset_after=True``)
CUDNN_PLAIN_CLASS = {"CuDNNLSTM": "LSTM", "CuDNNGRU": "GRU"}

_TO_KERAS: dict[str, Callable[..., list]] = {"CuDNNLSTM": cudnn_lstm_to_keras, "CuDNNGRU": cudnn_gru_to_keras}
_TO_CUDNN: dict[str, Callable[..., list]] = {"CuDNNLSTM": keras_to_cudnn_lstm, "CuDNNGRU": keras_to_cudnn_gru}


def _per_triple(where: str, table: dict, class_name: str, weights: list) -> list[np.ndarray]:
    if class_name not in table:
        raise ValueError(f"{where}: expected class_name 'CuDNNLSTM' or 'CuDNNGRU', got {class_name!r}")
    weights = list(weights)
    if not weights or len(weights) % 3:
        raise ValueError(f"{where}: a {class_name} has 3 weights (kernel, recurrent_kernel, bias) per direction; "
                         f"got {len(weights)}")
    return [w for i in range(0, len(weights), 3) for w in table[class_name](*weights[i:i + 3])]


def cudnn_to_keras_weights(class_name: str, weights: list) -> list[np.ndarray]:
    """A tf.keras 2 ``CuDNNLSTM`` / ``CuDNNGRU`` weight list as the ``LSTM`` / ``GRU(reset_after=True)`` list.

    Args:
        class_name: ``"CuDNNLSTM"`` or ``"CuDNNGRU"``.
        weights: 3 arrays per direction (a ``Bidirectional`` wrapper's 6:
            forward, then backward).
    """
    return _per_triple("cudnn_to_keras_weights", _TO_KERAS, class_name, weights)


def keras_to_cudnn_weights(class_name: str, weights: list) -> list[np.ndarray]:
    """The inverse of :func:`cudnn_to_keras_weights` (a CuDNNLSTM bias is split in equal halves)."""
    return _per_triple("keras_to_cudnn_weights", _TO_CUDNN, class_name, weights)
