"""Recurrent layers and the non-recurrent layers found around them."""

from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from rnnkit.layers.convolutional import Conv1D
from rnnkit.layers.core import Activation, Dense
from rnnkit.layers.cudnn import CuDNNGRU, CuDNNLSTM
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.masking import Masking
from rnnkit.layers.merging import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from rnnkit.layers.normalization import BatchNormalization, LayerNormalization
from rnnkit.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from rnnkit.layers.regularization import Dropout, SpatialDropout1D
from rnnkit.layers.reshaping import Flatten, Permute, RepeatVector, Reshape
from rnnkit.layers.rnn import RNN
from rnnkit.layers.wrappers import TimeDistributed

__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "CuDNNGRU", "CuDNNLSTM", "GRU", "LSTM", "RNN",
           "SimpleRNN"]
__all__ += ["Embedding", "Masking"]
__all__ += ["Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Conv1D", "Dense", "Dot", "Dropout",
            "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum",
            "Multiply", "Permute", "RepeatVector", "Reshape", "SpatialDropout1D", "Subtract", "TimeDistributed"]
