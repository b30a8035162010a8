"""Recurrent cells: one file per cell family."""

from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.simple_rnn import SimpleRNNCell
from rnnkit.cells.stacked import StackedRNNCells

__all__ = ["ConvLSTMCell", "GRUCell", "LSTMCell", "SimpleRNNCell", "StackedRNNCells"]
