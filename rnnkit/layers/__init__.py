"""Recurrent layers."""

from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.rnn import RNN

__all__ = ["Bidirectional", "GRU", "LSTM", "RNN", "SimpleRNN"]
