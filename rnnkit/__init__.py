"""rnnkit: the Keras recurrent-layer system as a PyTorch library."""

from rnnkit.engine import activations, constraints, initializers, regularizers
from rnnkit.cells import ConvLSTMCell, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.kernels.explain import explain
from rnnkit.engine.layer import Layer
from rnnkit.engine.layer import regularization_losses
from rnnkit.layers import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, GRU, LSTM, RNN, Bidirectional, CuDNNGRU, CuDNNLSTM, SimpleRNN
from rnnkit.core.loop import rnn
from rnnkit.layers import Embedding, Masking
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
