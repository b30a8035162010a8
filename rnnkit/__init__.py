"""rnnkit: the Keras recurrent-layer system as a PyTorch library."""

from rnnkit.engine import activations, constraints, initializers, regularizers
from rnnkit.cells import ConvLSTMCell, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.kernels.explain import explain
from rnnkit.engine.layer import Layer
from rnnkit.layers import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, GRU, LSTM, RNN, Bidirectional, CuDNNGRU, CuDNNLSTM, SimpleRNN
from rnnkit.core.loop import rnn

__version__ = "0.1.0"

__all__ = [
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "ConvLSTMCell",
    "Bidirectional",
    "CuDNNGRU",
    "CuDNNLSTM",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Layer",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "activations",
    "explain",
    "functional",
    "constraints",
    "initializers",
    "regularizers",
    "rnn",
]
