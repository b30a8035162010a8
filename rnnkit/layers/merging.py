"""Merge layers: Keras 3's ``Concatenate``, ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum`` and ``Dot``, each called on a list of tensors.

::

    Add:        y = x1 + x2 + ... + xn             Subtract:  y = x1 - x2      (exactly 2 inputs)
    Multiply:   y = x1 * x2 * ... * xn             Average:   y = (x1 + ... + xn) / n
    Maximum:    y = max(x1, ..., xn)               Minimum:   y = min(x1, ..., xn)
    Concatenate(axis):  y = cat([x1, ..., xn], axis)
    Dot(axes):  y[b, ...] = sum_k x1[b, ..k..] * x2[b, ..k..]   (k: axes[0] of x1 with axes[1] of x2)

Elementwise merges broadcast as Keras does: inputs of lower rank get size-1
axes inserted at axis 1 until the ranks agree, then the usual trailing-axis
broadcasting applies; the batch sizes must be equal.

Masks (boolean ``(batch, timesteps)``, one per input or None; ``mask=`` or
each input's ``_keras_mask``), as Keras 3 uses them:

* every elementwise merge's output mask is the OR of the masks (None if an
  input has none); ``Concatenate`` treats a missing mask as all True and
  concatenates along ``axis`` (``compute_mask`` below); ``Dot`` drops masks;
* ``Maximum`` / ``Minimum`` take, at a step masked in one input, the other
  inputs' values; ``Multiply`` uses 1 for a masked input's values and, when
  every input has a mask, returns 0 where all are masked (inputs of equal
  rank; Keras loses the masks when it inserts axes). ``Add``, ``Subtract``,
  ``Average`` and ``Concatenate`` compute on every value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.core.sequences import attach_mask
from rnnkit.engine.layer import Layer
from rnnkit.layers.common import as_bool_mask, documented_layer, input_mask, numeric_input


class _Merge(Layer):
    """Shared: the input list, shape checks, Keras's rank alignment and mask merging."""

    min_inputs = 1
    max_inputs: int | None = None

    def __init__(self, name: str | None = None, dtype: Any = None, trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.supports_masking = True

    def _inputs(self, inputs: Any) -> list[torch.Tensor]:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{self.name}: a {type(self).__name__} layer is called on a list of tensors, "
                             f"got {type(inputs).__name__}")
        n = len(inputs)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            want = f"exactly {self.max_inputs}" if self.max_inputs == self.min_inputs else f"at least {self.min_inputs}"
            raise ValueError(f"{self.name}: a {type(self).__name__} layer takes {want} inputs, got {n}")
        xs = [numeric_input(self, x, what=f"input {i}") for i, x in enumerate(inputs)]
        for i, x in enumerate(xs):
            if x.dim() < 1 or x.shape[0] != xs[0].shape[0]:
                raise ValueError(f"{self.name}: every input needs the same batch size; got shapes "
                                 f"{[tuple(t.shape) for t in xs]} (input {i} differs)")
        return xs

    def _masks(self, inputs: Any, xs: list[torch.Tensor], mask: Any) -> list[torch.Tensor | None] | None:
        masks = input_mask(inputs, mask)
        if masks is None:
            return None
        if not isinstance(masks, (list, tuple)) or len(masks) != len(xs):
            raise ValueError(f"{self.name}: mask must be a list with one mask (or None) per input ({len(xs)}), "
                             f"got {masks!r}")
        return [None if m is None else as_bool_mask(self.name, m, x.device) for m, x in zip(masks, xs)]

    def _aligned(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Keras's rank alignment (axes of size 1 at axis 1) and its trailing-axis shape check."""
        rank = max(x.dim() for x in xs)
        out = []
        for x in xs:
            while x.dim() < rank:
                x = x.unsqueeze(1)
            out.append(x)
        for axis in range(1, rank):
            sizes = {x.shape[axis] for x in out} - {1}
            if len(sizes) > 1:
                raise ValueError(f"{self.name}: inputs have incompatible shapes {[tuple(x.shape) for x in xs]} "
                                 f"(axis {axis} of the rank-aligned inputs: sizes {sorted(sizes)})")
        return out

    def _merge(self, xs: list[torch.Tensor], masks: list[torch.Tensor | None] | None) -> torch.Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple:
        """The broadcast of the rank-aligned shapes (None where unknown)."""
        shapes = [tuple(s) for s in input_shape]
        rank = max(len(s) for s in shapes)
        aligned = [s[:1] + (1,) * (rank - len(s)) + s[1:] for s in shapes]
        out = []
        for dims in zip(*aligned):
            known = {d for d in dims if d is not None} - {1}
            out.append(None if None in dims and not known else (known.pop() if known else 1))
        return tuple(out)

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        xs = self._inputs(inputs)
        masks = self._masks(inputs, xs, mask)
        same_rank = len({x.dim() for x in xs}) == 1
        y = self._merge(self._aligned(xs), masks if same_rank else None)
        return attach_mask(y, self.compute_mask(xs, masks))

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        """The OR of the inputs' masks; None when ``mask`` is None or any input has none (Keras)."""
        masks = self._check_mask_list(inputs, mask)
        if masks is None or any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = out | m
        return out

    def _check_mask_list(self, inputs: Any, mask: Any) -> list | None:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)):
            raise ValueError(f"{self.name}: mask should be a list (one per input), got {type(mask).__name__}")
        if not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            n = len(inputs) if isinstance(inputs, (list, tuple)) else "a single input"
            raise ValueError(f"{self.name}: inputs and mask must be lists of the same length, got {n} and {len(mask)}")
        return [None if m is None else as_bool_mask(self.name, m) for m in mask]


def _expand(layer: str, mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """``mask`` ``x.shape[:-1]`` broadcast over ``x``'s last axis (Keras's ``broadcast_to(expand_dims(mask, -1))``)."""
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"{layer}: a mask must have its input's shape without the last axis, got mask shape "
                         f"{tuple(mask.shape)} for an input of shape {tuple(x.shape)}")
    return mask.unsqueeze(-1).expand(x.shape)


def _masked_fold(layer: str, op: Callable, xs: list[torch.Tensor], masks: list | None) -> torch.Tensor:
    """Keras's ``_apply_merge_op_and_or_mask``: a masked value is replaced by the running result (or the reverse)."""
    masks = masks or [None] * len(xs)
    out, out_mask = xs[0], _expand(layer, masks[0], xs[0])
    for x, m in zip(xs[1:], masks[1:]):
        m = _expand(layer, m, x)
        if m is not None:
            x = torch.where(m, x, out)
        if out_mask is not None:
            out = torch.where(out_mask, out, x)
        out_mask = out_mask | m if (m is not None and out_mask is not None) else None
        out = op(out, x)
    return out


def _sum(xs: list[torch.Tensor]) -> torch.Tensor:
    """The broadcast sum of the inputs, in their order."""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


@documented_layer()
class Add(_Merge):
    """Elementwise sum of the inputs (see the module docstring for broadcasting and masks).

    Call: ``layer([x1, x2, ...], mask=None)``; returns the broadcast shape.
    """

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        return _sum(xs)


@documented_layer()
class Subtract(_Merge):
    """``x1 - x2`` for exactly two inputs.

    Call: ``layer([x1, x2], mask=None)``; returns the broadcast shape.
    """

    min_inputs = max_inputs = 2

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        return xs[0] - xs[1]


@documented_layer()
class Multiply(_Merge):
    """Elementwise product; a masked input contributes 1, a step masked everywhere gives 0 (Keras 3).

    Call: ``layer([x1, x2, ...], mask=None)``; returns the broadcast shape.
    """

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        masks = masks or [None] * len(xs)
        every = all(m is not None for m in masks)
        out, out_mask = None, None
        for x, m in zip(xs, masks):
            m = _expand(self.name, m, x)
            if m is not None:
                x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                if every:
                    out_mask = m if out_mask is None else out_mask | m
            out = x if out is None else out * x
        assert out is not None  # at least one input
        if out_mask is not None:
            out = torch.where(out_mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


@documented_layer()
class Average(_Merge):
    """Elementwise mean of the inputs.

    Call: ``layer([x1, x2, ...], mask=None)``; returns the broadcast shape.
    """

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        return _sum(xs) / len(xs)


@documented_layer()
class Maximum(_Merge):
    """Elementwise maximum; a masked input's values are replaced by the others' (Keras 3).

    Call: ``layer([x1, x2, ...], mask=None)``; returns the broadcast shape.
    """

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        return _masked_fold(self.name, torch.maximum, xs, masks)


@documented_layer()
class Minimum(_Merge):
    """Elementwise minimum; a masked input's values are replaced by the others' (Keras 3).

    Call: ``layer([x1, x2, ...], mask=None)``; returns the broadcast shape.
    """

    def _merge(self, xs: list[torch.Tensor], masks: Any) -> torch.Tensor:
        return _masked_fold(self.name, torch.minimum, xs, masks)


@documented_layer(axis="Int: the axis along which the inputs are joined (default -1, the features).")
class Concatenate(_Merge):
    """Joins the inputs along ``axis``; every other axis must agree.

    Output mask (Keras 3's ``compute_mask``): each input's mask (all True
    where it has none) is broadcast to the input's shape, the masks are
    concatenated along ``axis`` and reduced with ``any`` over the last axis.
    For ``axis=-1`` that is the OR of the masks; for the time axis it is the
    masks joined in time.

    Call: ``layer([x1, x2, ...], mask=None)``; returns the joined tensor.
    """

    def __init__(self, axis: int = -1, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{self.name}: axis must be an int, got {axis!r}")
        self.axis = axis

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        xs = self._inputs(inputs)
        rank = xs[0].dim()
        if any(x.dim() != rank for x in xs) or not -rank <= self.axis < rank:
            raise ValueError(f"{self.name}: inputs must have one rank with axis {self.axis} in range, got shapes "
                             f"{[tuple(x.shape) for x in xs]}")
        axis = self.axis % rank
        for x in xs:
            if any(x.shape[d] != xs[0].shape[d] for d in range(rank) if d != axis):
                raise ValueError(f"{self.name}: inputs must match except on the concatenation axis {self.axis}, "
                                 f"got shapes {[tuple(t.shape) for t in xs]}")
        masks = self._masks(inputs, xs, mask)
        return attach_mask(torch.cat(xs, dim=axis), self.compute_mask(xs, masks))

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        masks = self._check_mask_list(inputs, mask)
        if masks is None or all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(inputs, masks):
            shape = tuple(x.shape)
            if m is None:
                full.append(torch.ones(shape, dtype=torch.bool, device=x.device))
            elif m.dim() < len(shape):
                full.append(m.to(x.device).unsqueeze(-1).expand(shape))
            else:
                full.append(m.to(x.device))
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            out[self.axis] = None if out[self.axis] is None or shape[self.axis] is None else \
                out[self.axis] + shape[self.axis]
        return tuple(out)

    def get_config(self) -> dict:
        config = super().get_config()
        config["axis"] = self.axis
        return config


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Keras's ``ops.normalize(x, axis)``: ``x * min(1 / ||x||, 1 / 1e-7)``."""
    return x * torch.rsqrt(x.square().sum(dim=axis, keepdim=True)).clamp(max=1e7)


def batch_dot(x: torch.Tensor, y: torch.Tensor, axes: tuple[int, int]) -> torch.Tensor:
    """Keras's ``batch_dot``: per batch row, contract ``x``'s axis ``axes[0]`` with ``y``'s ``axes[1]`` (both > 0).

    The output axes are ``x``'s remaining axes then ``y``'s; two rank-2
    inputs give ``(batch, 1)``.
    """
    xm, ym = x.movedim(axes[0], -1), y.movedim(axes[1], 1)
    batch, k = x.shape[0], xm.shape[-1]
    out = torch.bmm(xm.reshape(batch, -1, k), ym.reshape(batch, k, -1))
    out = out.reshape(batch, *xm.shape[1:-1], *ym.shape[2:])
    return out.unsqueeze(-1) if out.dim() == 1 else out


@documented_layer(
    axes="Int or pair of ints: the axis of each input to contract (an int: the same for both); never 0, the "
         "batch axis. Negative values count from the end.",
    normalize="If True, L2-normalize both inputs along their contracted axes first, so that the output is the "
              "cosine similarity.",
)
class Dot(_Merge):
    """Dot product of two inputs along ``axes``, per batch row (Keras's ``batch_dot``).

    ::

        x1: (batch, n, d), x2: (batch, m, d), axes=2  ->  y: (batch, n, m),  y[b, i, j] = sum_k x1[b,i,k] x2[b,j,k]
        x1: (batch, d),    x2: (batch, d),    axes=1  ->  y: (batch, 1)

    The output has ``x1``'s remaining axes then ``x2``'s. Masks stop here
    (``compute_mask`` is None).

    Call: ``layer([x1, x2], mask=None)``.
    """

    min_inputs = max_inputs = 2

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, name: str | None = None,
                 dtype: Any = None, trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if not isinstance(axes, int) or isinstance(axes, bool):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"{self.name}: axes must be an int or a pair of ints, got {axes!r}")
            if len(axes) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"{self.name}: axes must be an int or a pair of ints, got {axes!r}")
        self.axes = axes
        self.normalize = bool(normalize)

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        x1, x2 = self._inputs(inputs)
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        axes = tuple(a % x.dim() if a < 0 else a for a, x in zip(pair, (x1, x2)))
        if x1.dim() < 2 or x2.dim() < 2 or 0 in axes or axes[0] >= x1.dim() or axes[1] >= x2.dim():
            raise ValueError(f"{self.name}: Dot needs inputs of rank 2 or more and axes in 1..rank-1 (never the "
                             f"batch axis 0), got shapes {tuple(x1.shape)}, {tuple(x2.shape)} with axes={self.axes}")
        if x1.shape[axes[0]] != x2.shape[axes[1]]:
            raise ValueError(f"{self.name}: the contracted axes differ in size: {x1.shape[axes[0]]} (axis {axes[0]} "
                             f"of {tuple(x1.shape)}) != {x2.shape[axes[1]]} (axis {axes[1]} of {tuple(x2.shape)})")
        if self.normalize:
            x1, x2 = _l2_normalize(x1, axes[0]), _l2_normalize(x2, axes[1])
        return batch_dot(x1, x2, (axes[0], axes[1]))

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        """None: the contraction has no per-step meaning (Keras)."""
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple:
        s1, s2 = (list(s) for s in input_shape)
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        a1, a2 = (a % len(s) if a < 0 else a for a, s in zip(pair, (s1, s2)))
        out = s1[:a1] + s1[a1 + 1:] + s2[1:a2] + s2[a2 + 1:]
        return tuple(out + [1] if len(out) == 1 else out)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(axes=self.axes, normalize=self.normalize)
        return config
