"""``explain(layer, inputs, mask=None)``: which path a call would take, and why."""

from __future__ import annotations

from typing import Any

from rnnkit.fused.predicates import Plan, select_path


def explain(layer: Any, inputs: Any, mask: Any = None, training: bool | None = None, constants: Any = None) -> Plan:
    """The :class:`~rnnkit.fused.predicates.Plan` for ``layer(inputs, mask=mask)``.

    ``str(plan)`` reads e.g. ``"hoisted loop: recurrent_activation 'hard_sigmoid'
    is not 'sigmoid'"``; ``plan.path`` is ``"fused"``, ``"hoisted"`` or
    ``"generic"``. Nothing is computed; the layer is built if it was not.
    For ``Bidirectional`` the forward layer's plan is returned.
    """
    target = getattr(layer, "forward_layer", layer)
    if not getattr(target, "built", True):
        target._maybe_build(inputs)
    _, _, mask, constants = target._prepare(inputs, None, mask, constants)
    training = target.training if training is None else bool(training)
    return select_path(target, mask, training, constants is not None)
