"""Weight regularizers with Keras 3 names, arguments and math.

A regularizer is called on a weight tensor and returns a differentiable
scalar tensor (same dtype and device as the weight) to add to the loss:

* ``L1(l1=0.01)``:        ``l1 * sum(|x|)``
* ``L2(l2=0.01)``:        ``l2 * sum(x**2)`` (no factor 1/2, as in Keras)
* ``L1L2(l1=0, l2=0)``:   the sum of both
* ``OrthogonalRegularizer(factor=0.01, mode="rows")``: Keras's penalty on the
  mean absolute cosine between distinct rows (or columns) of a 2-D weight.
"""

import math
import numbers

import torch

from rnnkit.engine.registry import Configurable, Registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "get", "serialize"]

_EPSILON = 1e-7  # keras.backend.epsilon()


def _factor(value, name):
    """Validate a penalty factor: a finite, non-negative real number."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or math.isnan(value) or math.isinf(value) or value < 0):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative finite "
                         f"float; received {name}={value!r}")
    return float(value)


class Regularizer(Configurable):
    """Base class: subclasses implement ``__call__(weight) -> scalar tensor``."""

    def __call__(self, x):
        return torch.zeros((), dtype=x.dtype, device=x.device)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; both factors default to 0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        penalty = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.l1:
            penalty = penalty + self.l1 * torch.sum(torch.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * torch.sum(torch.square(x))
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1=0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return self.l1 * torch.sum(torch.abs(x))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return self.l2 * torch.sum(torch.square(x))

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Encourage the rows (``mode="rows"``) or columns of a 2-D weight to be orthogonal.

    Penalty: ``factor * 0.5 * sum(|G - diag(G)|) / (n * (n - 1) / 2)`` where
    ``G`` is the Gram matrix of the L2-normalised rows (or columns) and ``n``
    their count.
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError(f"Invalid value for argument mode: expected 'rows' or 'columns'; "
                             f"received mode={mode!r}")
        self.mode = mode

    def __call__(self, x):
        if x.dim() != 2:
            raise ValueError("OrthogonalRegularizer expects a rank-2 weight; received shape "
                             f"{tuple(x.shape)} of rank {x.dim()}")
        vecs = x if self.mode == "rows" else x.T
        inv_norm = torch.rsqrt(torch.sum(vecs * vecs, dim=1, keepdim=True))
        vecs = vecs * torch.clamp(inv_norm, max=1.0 / _EPSILON)
        n = vecs.shape[0]
        gram = vecs @ vecs.T
        off_diag = gram * (1.0 - torch.eye(n, dtype=x.dtype, device=x.device))
        return self.factor * 0.5 * torch.sum(torch.abs(off_diag)) / (n * (n - 1.0) / 2.0)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


def l1_l2(l1=0.01, l2=0.01):
    """``L1L2`` with both factors defaulting to 0.01 (the ``"l1_l2"`` string)."""
    return L1L2(l1=l1, l2=l2)


# Names resolved by get(): class names plus Keras's snake_case aliases.  The
# string "l1_l2" gives L1L2(0.01, 0.01) as documented by Keras; the class name
# "L1L2" (and Keras 3's "l1l2") gives the class defaults L1L2(0.0, 0.0).
_BY_NAME = {"L1": L1, "L2": L2, "L1L2": L1L2, "OrthogonalRegularizer": OrthogonalRegularizer,
            "l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": l1_l2,
            "orthogonal_regularizer": OrthogonalRegularizer}
_REGISTRY = Registry("regularizer", _BY_NAME, Regularizer, expected="None, a callable, a Regularizer",
                     label_class=False)


def get(identifier):
    """Resolve a regularizer identifier.

    ``None`` -> ``None``; a name (``"l2"``, ``"L1L2"``, ...) -> a default
    instance; a ``{"class_name", "config"}`` dict -> instance from its config
    (name lookup only); a Regularizer subclass -> a default instance; any
    other callable (including instances) -> itself.
    """
    return _REGISTRY.get(identifier)


def serialize(regularizer):
    """Return ``{"class_name": ..., "config": ...}`` (``None`` stays ``None``).

    Names and dicts are resolved first; plain functions cannot be serialized
    and raise ``ValueError``.
    """
    return _REGISTRY.serialize(regularizer)
