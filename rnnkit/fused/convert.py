"""Keras <-> torch weight layouts, one pair of functions per cell family.

This is the only place that knows both layouts.

=========  ======================================  ==========================================
family     Keras (rnnkit) layout                   torch.nn layout (``*_l0``)
=========  ======================================  ==========================================
LSTM       kernel ``(D, 4U)``, gates ``i f c o``;   weight_ih ``(4U, D)``, gates ``i f g o``;
           recurrent ``(U, 4U)``; bias ``(4U,)``    weight_hh ``(4U, U)``; bias_ih, bias_hh
GRU        kernel ``(D, 3U)``, gates ``z r h``;     weight_ih ``(3U, D)``, gates ``r z n``;
           recurrent ``(U, 3U)``; bias ``(2, 3U)``  weight_hh ``(3U, U)``; bias_ih = row 0,
           (row 0 input, row 1 recurrent)           bias_hh = row 1 (reordered)
SimpleRNN  kernel ``(D, U)``, recurrent ``(U, U)``, weight_ih ``(U, D)``, weight_hh ``(U, U)``,
           bias ``(U,)``                            bias_ih = bias, bias_hh = 0
=========  ======================================  ==========================================

Keras's single LSTM/SimpleRNN bias maps to ``bias_ih`` with ``bias_hh = 0``;
going back, ``bias_ih + bias_hh`` is folded into it. Only ``reset_after=True``
GRUs have a torch twin. ``to_torch`` is differentiable (used on every fused
call, so gradients reach the Keras-layout parameters); ``from_torch`` works on
plain arrays/tensors.
"""

from __future__ import annotations

import torch


def _gru_reorder(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Swap the first two gate blocks along ``dim``: ``z r h`` <-> ``r z n``."""
    a, b, c = w.chunk(3, dim=dim)
    return torch.cat([b, a, c], dim=dim)


def lstm_to_torch(kernel, recurrent_kernel, bias=None) -> list[torch.Tensor]:
    """``[weight_ih, weight_hh, bias_ih, bias_hh]`` (biases omitted without ``bias``)."""
    weights = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        weights += [bias, torch.zeros_like(bias)]
    return weights


def lstm_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[torch.Tensor]:
    """Keras ``[kernel, recurrent_kernel, bias]`` from torch's LSTM weights."""
    out = [weight_ih.t(), weight_hh.t()]
    if bias_ih is not None:
        out.append(bias_ih + bias_hh)
    return out


def gru_to_torch(kernel, recurrent_kernel, bias=None) -> list[torch.Tensor]:
    """torch GRU weights from a Keras ``reset_after=True`` GRU."""
    weights = [_gru_reorder(kernel.t(), 0), _gru_reorder(recurrent_kernel.t(), 0)]
    if bias is not None:
        weights += [_gru_reorder(bias[0], 0), _gru_reorder(bias[1], 0)]
    return weights


def gru_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[torch.Tensor]:
    """Keras ``[kernel, recurrent_kernel, bias (2, 3U)]`` from torch's GRU weights."""
    out = [_gru_reorder(weight_ih, 0).t(), _gru_reorder(weight_hh, 0).t()]
    if bias_ih is not None:
        out.append(torch.stack([_gru_reorder(bias_ih, 0), _gru_reorder(bias_hh, 0)]))
    return out


simple_rnn_to_torch = lstm_to_torch  # same transposes, one gate
simple_rnn_from_torch = lstm_from_torch


def cell_to_torch(cell) -> list[torch.Tensor]:
    """torch-layout weights of a built-in rnnkit cell (differentiable)."""
    from rnnkit.cells.gru import GRUCell
    from rnnkit.cells.lstm import LSTMCell

    if isinstance(cell, LSTMCell):
        return lstm_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)
    if isinstance(cell, GRUCell):
        return gru_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)
    return simple_rnn_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)
