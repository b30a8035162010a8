"""Weight constraints with Keras 3 names, arguments and math.

A constraint is called on a weight tensor and returns the projected tensor
(a new tensor; the caller copies it back, typically under ``torch.no_grad``
after each optimizer step).  Norms are L2 norms over ``axis`` (an int or a
list/tuple of ints) with ``keepdims``; rescaling divides by
``norm + 1e-7`` exactly as Keras does, so an all-zero slice stays zero.

* ``MaxNorm(max_value=2, axis=0)``: ``w * clip(n, 0, max) / (eps + n)``
* ``NonNeg()``: ``max(w, 0)``
* ``UnitNorm(axis=0)``: ``w / (eps + n)``
* ``MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0)``:
  ``w * (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)``
"""

import torch

from rnnkit.engine.registry import Configurable, Registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "get", "serialize"]

_EPSILON = 1e-7  # keras.backend.epsilon()


def _norms(w, axis):
    """L2 norms of ``w`` over ``axis`` (int or sequence), keeping dims."""
    dims = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return torch.sqrt(torch.sum(torch.square(w), dim=dims, keepdim=True))


def _as_tensor(w):
    return w if isinstance(w, torch.Tensor) else torch.as_tensor(w, dtype=torch.float32)


class Constraint(Configurable):
    """Base class: subclasses implement ``__call__(w) -> projected w``."""

    def __call__(self, w):
        return w


class MaxNorm(Constraint):
    """Rescale slices whose L2 norm over ``axis`` exceeds ``max_value``.

    For a Dense kernel ``(input_dim, units)`` the default ``axis=0``
    constrains each unit's incoming weight vector.
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = _as_tensor(w)
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0, self.max_value)
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Clip negative weights to zero."""

    def __call__(self, w):
        return torch.clamp(_as_tensor(w), min=0)


class UnitNorm(Constraint):
    """Scale slices over ``axis`` to unit L2 norm."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _as_tensor(w)
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the L2 norm of slices over ``axis`` into ``[min_value, max_value]``.

    ``rate=1`` enforces the bounds strictly; ``rate<1`` moves the norm only
    part of the way: ``(1 - rate) * n + rate * clip(n, min, max)``.
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        w = _as_tensor(w)
        norms = _norms(w, self.axis)
        desired = (self.rate * torch.clamp(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value,
                "rate": self.rate, "axis": self.axis}


_BY_NAME = {**{c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)},
            "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}
_REGISTRY = Registry("constraint", _BY_NAME, Constraint, expected="None, a callable, a Constraint")


def get(identifier):
    """Resolve a constraint identifier.

    ``None`` -> ``None``; a name (``"max_norm"`` or ``"MaxNorm"``) -> a default
    instance; a ``{"class_name", "config"}`` dict -> instance from its config
    (name lookup only); a Constraint subclass -> a default instance; any other
    callable (including instances) -> itself.
    """
    return _REGISTRY.get(identifier)


def serialize(constraint):
    """Return ``{"class_name": ..., "config": ...}`` (``None`` stays ``None``).

    Names and dicts are resolved first; plain functions cannot be serialized
    and raise ``ValueError``.
    """
    return _REGISTRY.serialize(constraint)
