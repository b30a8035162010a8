"""Which path a recurrent layer's call takes, decided by small explicit predicates.

Three paths, fastest first; each is exact (same numbers as the generic loop):

``fused``    PyTorch's fused RNN kernel (``rnnkit.fused.kernels``): a built-in
             LSTM / GRU(reset_after=True) / SimpleRNN(tanh|relu) cell with its
             default activations, no recurrent dropout, per-sequence input
             dropout, no ``unroll``, and no mask or a right-padded one.
``hoisted``  a built-in cell that cannot fuse: the input projections of all
             timesteps in one matrix product, the loop runs only the recurrent
             part (``cell.recurrent_step``).
``generic``  :func:`rnnkit.loop.rnn` calling the cell at every step: custom
             cells, stacked cells, and ``use_fused=False``.

``use_fused=True`` turns "cannot fuse" into an error that names the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rnnkit import activations
from rnnkit.cells.base import BuiltinCell
from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.simple_rnn import SimpleRNNCell

FUSED, HOISTED, GENERIC = "fused", "hoisted", "generic"
_BUILTIN = (LSTMCell, GRUCell, SimpleRNNCell)


@dataclass
class Plan:
    """The chosen path and why (``reasons`` lists what blocked faster paths)."""

    path: str
    reasons: list[str] = field(default_factory=list)
    detail: str = ""

    def __str__(self) -> str:
        names = {FUSED: "fused kernel", HOISTED: "hoisted loop", GENERIC: "generic loop"}
        why = "; ".join(self.reasons) if self.reasons else "the configuration allows it"
        return f"{names[self.path]}{' (' + self.detail + ')' if self.detail else ''}: {why}"


def is_builtin_cell(cell) -> bool:
    """A built-in cell whose step math is not overridden by a subclass."""
    if not isinstance(cell, _BUILTIN):
        return False
    base = next(b for b in _BUILTIN if isinstance(cell, b))
    kind = type(cell)
    return (
        kind.recurrent_step is base.recurrent_step
        and kind.call is BuiltinCell.call
        and kind.project_inputs is BuiltinCell.project_inputs
        and kind.forward is BuiltinCell.forward
    )


def is_hoistable_cell(cell) -> bool:
    """A ``ConvLSTMCell`` whose step is not overridden: no fused kernel, but its
    input convolutions can all run before the loop."""
    kind = type(cell)
    return (
        isinstance(cell, ConvLSTMCell)
        and kind.recurrent_step is ConvLSTMCell.recurrent_step
        and kind.project_inputs is ConvLSTMCell.project_inputs
        and kind.call is BuiltinCell.call
        and kind.forward is BuiltinCell.forward
    )


def is_right_padded(mask: torch.Tensor) -> bool:
    """Each row is ``True...True False...False`` (all-False rows included)."""
    lengths = mask.sum(1, keepdim=True)
    steps = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return bool(torch.equal(mask, steps < lengths))


def config_blockers(cell, unroll: bool, training: bool) -> list[str]:
    """Why this cell configuration cannot run on a fused kernel (static part)."""
    out = []
    if isinstance(cell, GRUCell) and not cell.reset_after:
        out.append("GRU reset_after=False has no fused kernel")
    if isinstance(cell, (LSTMCell, GRUCell)):
        if cell.activation is not activations.tanh:
            out.append(f"activation {activations.serialize(cell.activation)!r} is not 'tanh'")
        if cell.recurrent_activation is not activations.sigmoid:
            out.append(
                f"recurrent_activation {activations.serialize(cell.recurrent_activation)!r} is not 'sigmoid'"
            )
    elif cell.activation not in (activations.tanh, activations.relu):
        out.append(f"activation {activations.serialize(cell.activation)!r} is neither 'tanh' nor 'relu'")
    if unroll:
        out.append("unroll=True asks for the step-by-step loop")
    if training and cell.recurrent_dropout > 0:
        out.append("recurrent_dropout in training needs a per-step mask on the state")
    if training and cell.dropout > 0 and cell._mask_count > 1:
        out.append("implementation=1 dropout uses one input mask per gate")
    if cell.dtype not in (torch.float32, torch.float64) and cell.kernel.device.type == "cpu":
        out.append(f"dtype {cell.dtype} has no fused CPU kernel")
    return out


def select_path(layer, mask: torch.Tensor | None, training: bool, has_constants: bool = False) -> Plan:
    """Pick the path for one call of ``layer`` (an ``RNN`` or a built-in layer)."""
    choice = getattr(layer, "use_fused", "auto")
    cell = layer.cell
    if choice is False:
        return Plan(GENERIC, ["use_fused=False forces the generic loop"])
    if is_hoistable_cell(cell):
        reasons = ["ConvLSTM has no fused kernel"]
        if choice is True:
            raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: {reasons[0]}")
        return Plan(HOISTED, reasons)
    if not is_builtin_cell(cell):
        reasons = [f"{type(cell).__name__} is not a built-in LSTM/GRU/SimpleRNN cell"]
        if choice is True:
            raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: {reasons[0]}")
        return Plan(GENERIC, reasons)
    reasons = config_blockers(cell, layer.unroll, training)
    if has_constants:
        reasons.append("constants are passed to the cell at every step")
    if mask is not None and not is_right_padded(mask):
        reasons.append("the mask is not right-padded (it has holes or leading padding)")
    if not reasons:
        return Plan(FUSED, [])
    if choice is True:
        raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: " + "; ".join(reasons))
    return Plan(HOISTED, reasons)
