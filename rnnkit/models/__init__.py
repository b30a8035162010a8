"""Containers that pass masks between layers."""

from rnnkit.models.functional import Input, Model
from rnnkit.models.sequential import Sequential

__all__ = ["Input", "Model", "Sequential"]
