"""LSTM's kernel spec: ``torch.lstm`` and the Keras <-> torch weight layouts.

=========  =========================================  ====================================
           Keras (rnnkit) layout                      torch.nn layout (``*_l0``)
=========  =========================================  ====================================
kernel     ``(D, 4U)``, gates ``i f c o``             weight_ih ``(4U, D)``, gates ``i f g o``
recurrent  ``(U, 4U)``                                weight_hh ``(4U, U)``
bias       ``(4U,)``                                  bias_ih = bias, bias_hh = 0
=========  =========================================  ====================================

The gate order is the same (Keras's ``c`` is torch's ``g``): only transposes.
Going back, ``bias_ih + bias_hh`` is folded into Keras's single bias.

tf.keras 2's ``CuDNNLSTM`` stores its weights in cuDNN's layout
(:func:`cudnn_lstm_to_keras` / :func:`keras_to_cudnn_lstm`; the kernel part,
shared with ``CuDNNGRU``: :func:`cudnn_kernels_to_keras`). cuDNN keeps one
row-major ``(U, D)`` matrix ``W_g`` per gate, exactly torch's
``weight_ih[g*U:(g+1)*U]``; tf.keras 2 holds the same numbers in its
``(D, 4U)`` kernel without transposing them:

=========  ===========================================  ==========================================
           tf.keras 2 ``CuDNNLSTM``                     Keras (rnnkit) layout
=========  ===========================================  ==========================================
kernel     block ``g`` = ``W_g.reshape(D, U)``          block ``g`` = ``W_g.T``
           (cuDNN's memory, read as ``(D, U)``)
recurrent  block ``g`` = ``R_g`` ``(U, U)``             block ``g`` = ``R_g.T``
bias       ``(8U,)``: input biases then recurrent       ``(4U,)``: their sum
           ones, each ``i f c o``
=========  ===========================================  ==========================================

(``R_g`` is torch's ``weight_hh[g*U:(g+1)*U]``; gates ``i f c o`` in all
three.) Going to cuDNN, the bias is split in equal halves, as tf.keras 2's own
converter does (``_convert_rnn_weights`` in its ``hdf5_format.py``): only the
sum of the halves matters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnnkit.cells.lstm import LSTMCell
from rnnkit.engine import activations
from rnnkit.kernels.spec import KernelSpec, register


def lstm_to_torch(kernel, recurrent_kernel, bias=None) -> list[torch.Tensor]:
    """``[weight_ih, weight_hh, bias_ih, bias_hh]`` (biases omitted without ``bias``), contiguous: oneDNN's
    LSTM trains 1-2% slower on transposed views (measured against ``torch.nn.LSTM``'s own parameters).
    ``LSTMCell`` stores its weights in this layout, so these are views of them; weights given another
    layout (``load_state_dict(assign=True)``) are copied."""
    weights = [kernel.t().contiguous(), recurrent_kernel.t().contiguous()]
    if bias is not None:
        weights += [bias, torch.zeros_like(bias)]
    return weights


def lstm_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[torch.Tensor]:
    """Keras ``[kernel, recurrent_kernel, bias]`` from torch's LSTM weights."""
    out = [weight_ih.t(), weight_hh.t()]
    if bias_ih is not None:
        out.append(bias_ih + bias_hh)
    return out


def _per_gate(w: np.ndarray, n_gates: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` applied to each of the ``n_gates`` column blocks of ``w``, blocks concatenated back."""
    return np.concatenate([fn(block) for block in np.split(w, n_gates, axis=1)], axis=1)


def _kernel_shapes(where: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, n_gates: int) -> tuple[int, int]:
    """``(D, U)`` of a ``(D, n_gates*U)`` kernel and ``(U, n_gates*U)`` recurrent kernel, or a ValueError."""
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != n_gates * recurrent_kernel.shape[0]:
        raise ValueError(f"{where}: expected a recurrent kernel of shape (units, {n_gates}*units), "
                         f"got {recurrent_kernel.shape}")
    units = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != n_gates * units:
        raise ValueError(f"{where}: expected a kernel of shape (input_dim, {n_gates * units}) for {units} units, "
                         f"got {kernel.shape}")
    return kernel.shape[0], units


def cudnn_kernels_to_keras(kernel, recurrent_kernel, n_gates: int) -> tuple[np.ndarray, np.ndarray]:
    """Keras ``(kernel, recurrent_kernel)`` from tf.keras 2 CuDNN ones (both ``(D | U, n_gates*U)``, see above).

    Per gate block: the kernel block's memory is cuDNN's row-major ``(U, D)``
    ``W_g``, so the Keras block is ``block.reshape(U, D).T``; the recurrent
    block is transposed. Gate order is kept (``i f c o`` / ``z r h``).
    """
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    d, u = _kernel_shapes("cudnn_kernels_to_keras", kernel, recurrent_kernel, n_gates)
    return (_per_gate(kernel, n_gates, lambda b: b.reshape(u, d).T),
            _per_gate(recurrent_kernel, n_gates, np.transpose))


def keras_kernels_to_cudnn(kernel, recurrent_kernel, n_gates: int) -> tuple[np.ndarray, np.ndarray]:
    """tf.keras 2 CuDNN ``(kernel, recurrent_kernel)`` from Keras ones (inverse of :func:`cudnn_kernels_to_keras`)."""
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    d, u = _kernel_shapes("keras_kernels_to_cudnn", kernel, recurrent_kernel, n_gates)
    return (_per_gate(kernel, n_gates, lambda b: np.ascontiguousarray(b.T).reshape(d, u)),
            _per_gate(recurrent_kernel, n_gates, np.transpose))


def _check_bias(where: str, bias: np.ndarray, shape: tuple, layout: str) -> np.ndarray:
    if bias.shape != shape:
        raise ValueError(f"{where}: expected a {layout} bias of shape {shape}, got {bias.shape}")
    return bias


def cudnn_lstm_to_keras(kernel, recurrent_kernel, bias) -> list[np.ndarray]:
    """Keras LSTM ``[kernel, recurrent_kernel, bias (4U,)]`` from tf.keras 2 ``CuDNNLSTM`` weights (bias ``(8U,)``)."""
    kernel, recurrent_kernel = cudnn_kernels_to_keras(kernel, recurrent_kernel, 4)
    u4 = kernel.shape[1]
    bias = _check_bias("cudnn_lstm_to_keras", np.asarray(bias), (2 * u4,), "CuDNNLSTM")
    return [kernel, recurrent_kernel, bias[:u4] + bias[u4:]]


def keras_to_cudnn_lstm(kernel, recurrent_kernel, bias) -> list[np.ndarray]:
    """tf.keras 2 ``CuDNNLSTM`` ``[kernel, recurrent_kernel, bias (8U,)]`` from Keras LSTM weights (bias halved)."""
    kernel, recurrent_kernel = keras_kernels_to_cudnn(kernel, recurrent_kernel, 4)
    bias = _check_bias("keras_to_cudnn_lstm", np.asarray(bias), (kernel.shape[1],), "Keras LSTM")
    half = bias * 0.5
    return [kernel, recurrent_kernel, np.concatenate([half, half])]


def gate_blockers(cell: Any) -> list[str]:
    """Gated cells fuse only with ``tanh`` / ``sigmoid`` activations."""
    out = []
    if cell.activation is not activations.tanh:
        out.append(f"activation {activations.serialize(cell.activation)!r} is not 'tanh'")
    if cell.recurrent_activation is not activations.sigmoid:
        out.append(f"recurrent_activation {activations.serialize(cell.recurrent_activation)!r} is not 'sigmoid'")
    return out


class LSTMSpec(KernelSpec):
    name = "LSTM"
    cell_class = LSTMCell

    def blockers(self, cell: Any) -> list[str]:
        return gate_blockers(cell)

    def kernel(self, cell: Any) -> Callable:
        return torch.lstm

    def to_torch(self, cell: Any) -> list[torch.Tensor]:
        return lstm_to_torch(cell.kernel, cell.recurrent_kernel, cell.bias)

    from_torch = staticmethod(lstm_from_torch)


SPEC = register(LSTMSpec())
