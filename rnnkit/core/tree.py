"""Minimal nested-structure helpers (lists, tuples and dicts of tensors).

Keras lets states and inputs be nested; these two functions are all the loop
needs: ``flatten`` walks a structure depth-first into a flat list of leaves and
``pack_as`` rebuilds the same structure from such a list.
"""

from __future__ import annotations

from typing import Any


def flatten(x: Any) -> list:
    """Leaves of ``x`` in depth-first order (dict values by sorted key)."""
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in flatten(item)]
    return [x]


def pack_as(structure: Any, leaves: list) -> Any:
    """Rebuild ``structure`` with ``leaves`` (inverse of :func:`flatten`)."""
    it = iter(leaves)

    def build(s):
        if isinstance(s, dict):
            return {k: build(s[k]) for k in sorted(s)}
        if isinstance(s, (list, tuple)):
            items = [build(item) for item in s]
            return items if isinstance(s, list) else tuple(items)
        return next(it)

    out = build(structure)
    rest = list(it)
    if rest:
        raise ValueError(f"pack_as: {len(rest)} leaves left over for structure {structure!r}")
    return out
