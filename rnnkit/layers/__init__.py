"""Recurrent layers."""

from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.rnn import RNN

__all__ = ["GRU", "LSTM", "RNN", "SimpleRNN"]
