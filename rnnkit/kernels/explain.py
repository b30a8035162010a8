"""``explain(layer, inputs, mask=None)``: which path a call would take, and why."""

from __future__ import annotations

from typing import Any

from rnnkit.kernels.bidirectional import pair_blockers
from rnnkit.kernels.path import FUSED, Plan


def explain(layer: Any, inputs: Any, mask: Any = None, training: bool | None = None, constants: Any = None) -> Plan:
    """The :class:`~rnnkit.kernels.path.Plan` for ``layer(inputs, mask=mask)``.

    ``str(plan)`` reads e.g. ``"hoisted loop: recurrent_activation 'hard_sigmoid'
    is not 'sigmoid'"``; ``plan.path`` is ``"fused"``, ``"hoisted"`` or
    ``"generic"``. Nothing is computed; the layer is built if it was not.
    For ``Bidirectional``: one bidirectional kernel call when both halves can
    fuse together, two fused calls when each can alone, else the forward
    half's plan. A mask never changes the path, only how the fused path
    runs (``plan.detail``): unpacked kernel calls when right-padded, else a step loop.
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
    if plan.path == FUSED and masked:
        return Plan(FUSED, plan.reasons, "mask: unpacked kernel calls when right-padded, a hoisted step loop otherwise")
    return plan
