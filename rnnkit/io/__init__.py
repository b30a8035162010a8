"""Conversions at rnnkit's edges: ``torch.nn`` recurrent modules, tf.keras 2 CuDNN weight lists.

``from_torch`` / ``to_torch``: :mod:`rnnkit.io.torch_nn`.
``cudnn_to_keras_weights`` / ``keras_to_cudnn_weights``: :mod:`rnnkit.io.cudnn`.
"""

from rnnkit.io.cudnn import CUDNN_PLAIN_CLASS, cudnn_to_keras_weights, keras_to_cudnn_weights
from rnnkit.io.torch_nn import from_torch, to_torch

__all__ = ["CUDNN_PLAIN_CLASS", "cudnn_to_keras_weights", "from_torch", "keras_to_cudnn_weights", "to_torch"]
