"""Recurrent layers."""

from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.cudnn import CuDNNGRU, CuDNNLSTM
from rnnkit.layers.rnn import RNN

__all__ = ["Bidirectional", "CuDNNGRU", "CuDNNLSTM", "GRU", "LSTM", "RNN", "SimpleRNN"]
