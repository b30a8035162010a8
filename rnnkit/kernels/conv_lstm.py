"""ConvLSTM's spec: no fused kernel, but its input convolutions are hoisted.

``ConvLSTMCell.project_inputs`` runs the input convolution of every timestep
as one convolution over ``batch * time`` images before the loop; the loop then
runs only the recurrent convolution and the gates.
"""

from __future__ import annotations

from typing import Any

from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.kernels.spec import KernelSpec, register


class ConvLSTMSpec(KernelSpec):
    name = "ConvLSTM"
    cell_class = ConvLSTMCell

    def blockers(self, cell: Any) -> list[str]:
        return ["ConvLSTM has no fused kernel"]


SPEC = register(ConvLSTMSpec())
