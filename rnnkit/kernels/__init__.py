"""Fast paths: one spec per cell family, the path choice, the fused runners.

Importing this package registers every family's spec (one file each).
"""

from rnnkit.kernels import conv_lstm, gru, lstm, simple_rnn  # noqa: F401  (registers the specs)
from rnnkit.kernels.spec import KernelSpec, cell_to_torch, kernel_for, register, spec_for

__all__ = ["KernelSpec", "cell_to_torch", "kernel_for", "register", "spec_for"]
