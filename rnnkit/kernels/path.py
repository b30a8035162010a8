"""Which path a recurrent layer's call takes, decided by small explicit predicates.

Three paths, fastest first; each is exact (same numbers as the generic loop):

``fused``    PyTorch's fused RNN kernel (``rnnkit.kernels.fused``): a built-in
             LSTM / GRU(reset_after=True) / SimpleRNN(tanh|relu) cell with its
             default activations, no recurrent dropout, per-sequence input
             dropout, no ``unroll``; any mask (its values never decide the
             path: right-padded rows run unpacked, other masks on the hoisted
             loop eagerly or in the masked op's step loop in a graph).
``hoisted``  a built-in cell that cannot fuse: the input projections of all
             timesteps in one matrix product, the loop runs only the recurrent
             part (``cell.recurrent_step``).
``generic``  :func:`rnnkit.core.loop.rnn` calling the cell at every step: custom
             cells, stacked cells, and ``use_fused=False``.

``use_fused=True`` turns "cannot fuse" into an error that names the reasons.
Under ``torch.func`` transforms (vmap, jvp, grad) built-in cells take the
hoisted loop: the fused kernels have no batching or forward-mode rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rnnkit.kernels.spec import KernelSpec, family_of, spec_for

FUSED, HOISTED, GENERIC = "fused", "hoisted", "generic"


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
    """A cell of a family with a fused kernel, its step math not overridden by a subclass."""
    spec = spec_for(cell)
    return spec is not None and spec.kernel(cell) is not None


def config_blockers(cell, unroll: bool, training: bool, spec: KernelSpec | None = None) -> list[str]:
    """Why this cell configuration cannot run on a fused kernel (static facts only)."""
    spec = spec if spec is not None else family_of(cell)
    out = list(spec.blockers(cell)) if spec is not None else []
    if unroll:
        out.append("unroll=True asks for the step-by-step loop")
    if training and cell.recurrent_dropout > 0:
        out.append("recurrent_dropout in training needs a per-step mask on the state")
    if training and cell.dropout > 0 and cell.mask_count > 1:
        out.append("implementation=1 dropout uses one input mask per gate")
    if cell.dtype not in (torch.float32, torch.float64) and cell.kernel.device.type == "cpu":
        out.append(f"dtype {cell.dtype} has no fused CPU kernel")
    return out


def check_use_fused(name: str, value: Any) -> Any:
    """A layer's ``use_fused``: ``"auto"``, True or False (numpy bools too); anything else is an error."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}: use_fused must be 'auto', True or False, got {value!r}")


def select_path(layer, mask: torch.Tensor | None, training: bool, has_constants: bool = False) -> Plan:
    """Pick the path for one call of ``layer`` (an ``RNN`` or a built-in layer)."""
    choice = getattr(layer, "use_fused", "auto")
    cell = layer.cell
    if choice is False:
        return Plan(GENERIC, ["use_fused=False forces the generic loop"])
    spec = spec_for(cell)
    if spec is None:
        reasons = [f"{type(cell).__name__} is not a built-in LSTM/GRU/SimpleRNN cell"]
        if choice is True:
            raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: {reasons[0]}")
        return Plan(GENERIC, reasons)
    if spec.kernel(cell) is None:
        reasons = spec.blockers(cell)
        if choice is True:
            raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: {reasons[0]}")
        return Plan(HOISTED, reasons)
    reasons = config_blockers(cell, layer.unroll, training, spec)
    if has_constants:
        reasons.append("constants are passed to the cell at every step")
    if torch._C._are_functorch_transforms_active():
        # vmap/jvp have no rule for the fused kernels; the hoisted loop is plain torch code, exact
        reasons.append("torch.func transforms (vmap, jvp, grad) have no rule for the fused kernel")
    # A mask never decides the path (its values are data): the fused path is exact for any mask
    # (rnnkit.kernels.ops.masked_kernel_call: unpacked kernels when right-padded, else a hoisted step loop).
    if not reasons:
        return Plan(FUSED, [])
    if choice is True:
        raise ValueError(f"{layer.name}: use_fused=True, but the layer cannot fuse: " + "; ".join(reasons))
    return Plan(HOISTED, reasons)
