"""rnnkit: the Keras recurrent-layer system as a PyTorch library."""

from rnnkit.cells import ConvLSTMCell, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.core.loop import rnn
from rnnkit.engine import activations, constraints, initializers, regularizers
from rnnkit.engine.layer import Layer, regularization_losses
from rnnkit.io.keras_model import load_keras_model, load_keras_weights, model_from_keras_config
from rnnkit.io.keras_save import save_keras_model
from rnnkit.io.torch_nn import from_torch, to_torch
from rnnkit.kernels.explain import explain
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Activation,
    Add,
    Average,
    BatchNormalization,
    Bidirectional,
    Concatenate,
    Conv1D,
    ConvLSTM1D,
    ConvLSTM2D,
    ConvLSTM3D,
    CuDNNGRU,
    CuDNNLSTM,
    Dense,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    LayerNormalization,
    Masking,
    Maximum,
    Minimum,
    Multiply,
    Permute,
    RepeatVector,
    Reshape,
    SimpleRNN,
    SpatialDropout1D,
    Subtract,
    TimeDistributed,
)
from rnnkit.models import Input, Model, Sequential

__version__ = "0.1.0"

__all__ = [
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "ConvLSTMCell",
    "Bidirectional",
    "CuDNNGRU",
    "CuDNNLSTM",
    "Embedding",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Layer",
    "Masking",
    "RNN",
    "Input",
    "load_keras_model",
    "load_keras_weights",
    "model_from_keras_config",
    "save_keras_model",
    "Model",
    "Sequential",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "activations",
    "explain",
    "functional",
    "constraints",
    "initializers",
    "regularization_losses",
    "regularizers",
    "rnn",
]
__all__ += ["Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Conv1D", "Dense", "Dot", "Dropout",
            "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum",
            "Multiply", "Permute", "RepeatVector", "Reshape", "SpatialDropout1D", "Subtract", "TimeDistributed"]
__all__ += ["from_torch", "to_torch"]
from rnnkit.io.onnx import export_onnx  # noqa: E402  (onnx and onnxscript are imported when it is called)

__all__ += ["export_onnx"]
