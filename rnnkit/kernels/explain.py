"""``explain(layer, inputs, mask=None)``: which path a call would take, and why."""

from __future__ import annotations

from typing import Any

from rnnkit.kernels import native
from rnnkit.kernels.bidirectional import pair_blockers
from rnnkit.kernels.fused import native_chosen
from rnnkit.kernels.ops import mode_of
from rnnkit.kernels.path import FUSED, Plan
from rnnkit.kernels.spec import kernel_for


def explain(layer: Any, inputs: Any, mask: Any = None, training: bool | None = None, constants: Any = None) -> Plan:
    """The :class:`~rnnkit.kernels.path.Plan` for ``layer(inputs, mask=mask)``.

    ``str(plan)`` reads e.g. ``"hoisted loop: recurrent_activation 'hard_sigmoid'
    is not 'sigmoid'"``; ``plan.path`` is ``"fused"``, ``"hoisted"`` or
    ``"generic"``. Nothing is computed; the layer is built if it was not.
    For ``Bidirectional``: one bidirectional kernel call when both halves can
    fuse together, two fused calls when each can alone, else the forward
    half's plan. A mask never changes the path, only how the fused path
    runs; ``plan.detail`` names the kernel (``torch.lstm``..., or ``native
    kernel``: :mod:`rnnkit.kernels.native`, with the reason when it cannot be
    had) and how masked rows run. For ``RNN(..., compile=True)`` off the fused
    path, ``plan.detail`` says what the compiled loop has compiled so far and
    how long its compiling calls took.
    """
    if not getattr(layer, "built", True):
        layer.build_from(inputs)
    target = getattr(layer, "forward_layer", layer)
    call = target.prepare(inputs, None, mask, training, constants)
    plan = call.plan()
    masked = call.mask is not None
    if target is not layer:
        blockers = pair_blockers(call, layer.backward_layer.prepare(inputs, None, mask, training, constants))
        if not blockers:
            detail = ("one bidirectional kernel call when the mask is right-padded, one masked call per half "
                      "otherwise") if masked else "one bidirectional kernel call"
            return Plan(FUSED, [], detail)
        if plan.path == FUSED:
            return Plan(FUSED, blockers, "two kernel calls")
    if plan.path == FUSED:
        return Plan(FUSED, plan.reasons, kernel_detail(call))
    compiled = target.compiled_report() if hasattr(target, "compiled_report") else None
    if compiled is not None:  # RNN(..., compile=True): its loop compiled, and what that cost
        return Plan(plan.path, plan.reasons, compiled)
    return plan


def kernel_detail(call: Any) -> str:
    """Which kernel a fused call runs eagerly: torch's or rnnkit's native one (and why not), and, with a
    mask, how its rows run."""
    cell, x = call.layer.cell, call.inputs
    mode = mode_of(kernel_for(cell))
    if native_chosen(cell, x, mode=mode):
        return "native kernel" + (", any mask" if call.mask is not None else "")
    why_not = native.blocker(x, [cell.kernel])
    torch_kernel = f"torch.{mode}"
    if why_not is not None and native.preferred(mode, x.shape[0], cell.units):  # why the native one is not run
        torch_kernel += f" ({why_not})"
    if call.mask is None:
        return torch_kernel
    holes = "the native kernel" if why_not is None else f"a hoisted step loop ({why_not})"
    return f"{torch_kernel}; mask: right-padded rows in one unmasked call, other masks on {holes}"
