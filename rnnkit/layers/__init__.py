"""Recurrent layers and the non-recurrent layers found around them."""

from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from rnnkit.layers.cudnn import CuDNNGRU, CuDNNLSTM
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.masking import Masking
from rnnkit.layers.rnn import RNN

__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "CuDNNGRU", "CuDNNLSTM", "GRU", "LSTM", "RNN",
           "SimpleRNN"]
__all__ += ["Embedding", "Masking"]
