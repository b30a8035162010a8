"""``explain(layer, inputs, mask=None)``: which path a call would take, and why."""

from __future__ import annotations

from typing import Any

from rnnkit.fused.bidirectional import pair_blockers
from rnnkit.fused.predicates import FUSED, Plan, select_path


def explain(layer: Any, inputs: Any, mask: Any = None, training: bool | None = None, constants: Any = None) -> Plan:
    """The :class:`~rnnkit.fused.predicates.Plan` for ``layer(inputs, mask=mask)``.

    ``str(plan)`` reads e.g. ``"hoisted loop: recurrent_activation 'hard_sigmoid'
    is not 'sigmoid'"``; ``plan.path`` is ``"fused"``, ``"hoisted"`` or
    ``"generic"``. Nothing is computed; the layer is built if it was not.
    For ``Bidirectional``: one bidirectional kernel call when both halves can
    fuse together, two fused calls when each can alone, else the forward
    half's plan.
    """
    if not getattr(layer, "built", True):
        layer._maybe_build(inputs)
    target = getattr(layer, "forward_layer", layer)
    _, _, mask, constants = target._prepare(inputs, None, mask, constants)
    training = target.training if training is None else bool(training)
    plan = select_path(target, mask, training, constants is not None)
    if target is not layer:
        blockers = pair_blockers(target, layer.backward_layer, mask, training, constants is not None)
        if not blockers:
            return Plan(FUSED, [], "one bidirectional kernel call")
        if plan.path == FUSED:
            return Plan(FUSED, blockers, "two kernel calls")
    return plan
