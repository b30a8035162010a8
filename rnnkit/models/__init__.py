"""Containers that pass masks between layers."""

from rnnkit.models.sequential import Sequential

__all__ = ["Sequential"]
