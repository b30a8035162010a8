"""rnnkit: the Keras recurrent-layer system as a PyTorch library."""

from rnnkit.cells import ConvLSTMCell, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.core.loop import rnn
from rnnkit.engine import activations, constraints, initializers, regularizers
from rnnkit.engine.layer import Layer, regularization_losses
from rnnkit.kernels.explain import explain
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    ConvLSTM1D,
    ConvLSTM2D,
    ConvLSTM3D,
    CuDNNGRU,
    CuDNNLSTM,
    Embedding,
    Masking,
    SimpleRNN,
)
from rnnkit.models import Sequential

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
