"""Sequences, masks and states: checking what users hand to a recurrent layer,
and the mask <-> lengths helpers.

Every check raises with the layer's name, what was expected and what arrived,
before anything reaches torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit.core.tree import flatten


def as_tensor(x: Any, dtype: torch.dtype, device: torch.device | None, what: str, layer: str) -> torch.Tensor:
    """``x`` (tensor, numpy array, nested list or number) as a tensor for a layer of ``dtype`` on ``device``.

    The input dtype rule (Keras's, with ``torch.autocast`` in the place of
    Keras's autocast scope):

    * floating inputs (numpy ones included) are cast to the layer's dtype
      (``dtype``), except where ``torch.autocast`` is active for the device:
      there float16, bfloat16 and float32 inputs keep their dtype and autocast
      picks each operation's precision, as it does for ``torch.nn.LSTM``
      (float64 ones, which autocast leaves alone, are still cast to the
      layer's dtype: numpy's default dtype works under autocast too);
    * integer inputs are cast to the layer's dtype (Keras computes them in
      the layer's dtype too), under autocast as well;
    * inputs that cannot be cast meaningfully (bool, complex) are a
      ``TypeError`` naming the layer (``layer``) and the argument (``what``).
    """
    t = to_tensor(x, what, layer)
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"{layer}: {what} must hold real numbers, got dtype {t.dtype}")
    if t.dtype != dtype and not (t.is_floating_point() and t.dtype != torch.float64
                                 and _autocasting(device if device is not None else t.device)):
        t = t.to(dtype=dtype)
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def to_tensor(x: Any, what: str, layer: str) -> torch.Tensor:
    """``x`` (tensor, numpy array, nested list or number) as a tensor, its dtype unchanged."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)):
        try:
            return torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{layer}: {what} must be a tensor or numpy array, got {type(x).__name__} ({err})"
            ) from None
    raise TypeError(f"{layer}: {what} must be a tensor or numpy array, got {type(x).__name__}")


def _autocasting(device: torch.device) -> bool:
    """Whether ``torch.autocast`` is active for ``device``'s type."""
    return torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type)


def check_sequences(x: torch.Tensor, layer: str, feature_shape: tuple | None) -> None:
    if x.dim() < 3:
        raise ValueError(
            f"{layer}: expected input of rank 3 or more (batch, timesteps, features...), "
            f"got shape {tuple(x.shape)} (rank {x.dim()})"
        )
    if feature_shape is not None and tuple(x.shape[2:]) != tuple(feature_shape):
        raise ValueError(
            f"{layer}: expected features of shape {tuple(feature_shape)} (the shape the layer was built with), "
            f"got input of shape {tuple(x.shape)} with features {tuple(x.shape[2:])}"
        )


def check_mask(mask: Any, batch: int, timesteps: int, layer: str, device: torch.device) -> torch.Tensor:
    """A boolean ``(batch, timesteps)`` mask from a bool or integer 0/1 mask."""
    if isinstance(mask, np.ndarray) or isinstance(mask, (list, tuple)):
        mask = torch.as_tensor(np.asarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{layer}: mask must be a boolean tensor (batch, timesteps), got {type(mask).__name__}")
    if mask.dtype.is_floating_point or mask.dtype.is_complex:
        raise TypeError(f"{layer}: mask must be boolean (or integer 0/1), got dtype {mask.dtype}")
    if tuple(mask.shape) != (batch, timesteps):
        raise ValueError(
            f"{layer}: mask must have shape (batch, timesteps) = {(batch, timesteps)}, got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        mask = mask != 0
    return mask.to(device)


def state_shapes(state_size: Any, batch: int) -> Any:
    """Expected state shapes, nested like ``state_size``.

    A ``torch.Size`` entry is one multi-dimensional state (``ConvLSTMCell``:
    ``(*out_spatial, filters)``), not a nest of sizes.
    """
    if isinstance(state_size, torch.Size):
        return (batch,) + tuple(state_size)
    if isinstance(state_size, (list, tuple)):
        return [state_shapes(s, batch) for s in state_size]
    dims = tuple(state_size) if hasattr(state_size, "__len__") else (int(state_size),)
    return (batch,) + dims


def check_states(states: Any, state_size: list, batch: int, layer: str, dtype, device, what="initial_state") -> list:
    """Validate user states against ``state_size``; returns them as tensors, nested as expected.

    A flat list with one tensor per leaf state is accepted for stacked cells.
    """
    if not isinstance(states, (list, tuple)):
        states = [states]
    expected = [state_shapes(s, batch) for s in state_size]
    leaves_expected = _shape_leaves(expected)
    flat = flatten(list(states))
    if len(flat) != len(leaves_expected):
        raise ValueError(
            f"{layer}: {what} must hold {len(leaves_expected)} state tensor(s) of shapes {leaves_expected}, "
            f"got {len(flat)}"
        )
    tensors = []
    for i, (s, shape) in enumerate(zip(flat, leaves_expected)):
        t = as_tensor(s, dtype, device, what, layer)
        if tuple(t.shape) != shape:
            raise ValueError(f"{layer}: {what}[{i}] must have shape {shape}, got {tuple(t.shape)}")
        tensors.append(t)
    return _pack_shapes(expected, tensors)


def count_states(state_size: list) -> int:
    """How many state tensors a ``state_size`` list describes (shape tuples are one each)."""
    return len(_shape_leaves([state_shapes(s, 0) for s in state_size]))


def _shape_leaves(expected: Any) -> list:
    if isinstance(expected, tuple):
        return [expected]
    return [leaf for e in expected for leaf in _shape_leaves(e)]


def _pack_shapes(expected: Any, tensors: list) -> Any:
    it = iter(tensors)

    def build(e):
        if isinstance(e, tuple):
            return next(it)
        return [build(x) for x in e]

    return build(expected)


def lengths_to_mask(lengths: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Boolean ``(batch, timesteps)`` mask, True for ``t < lengths[b]``."""
    steps = torch.arange(timesteps, device=lengths.device)
    return steps.unsqueeze(0) < lengths.reshape(-1, 1)


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of ``x`` ``(batch, time, ...)``.

    ``x'[b, t] = x[b, L_b - 1 - t]`` for ``t < L_b``, ``x[b, t]`` after; its own
    inverse (``tf.reverse_sequence`` with batch axis 0, time axis 1).
    """
    batch, timesteps = x.shape[0], x.shape[1]
    lengths = lengths.to(device=x.device, dtype=torch.int64).reshape(batch, 1)
    steps = torch.arange(timesteps, device=x.device).unsqueeze(0)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    rows = torch.arange(batch, device=x.device).unsqueeze(1)
    return x[rows, index]


def right_padded_lengths(mask: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(lengths, right_padded)``: the valid steps per row ``(B,)`` and whether every row is
    ``True...True False...False``, all-False rows included (one host sync)."""
    lengths = mask.sum(1)
    steps = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return lengths, bool(torch.equal(mask, steps < lengths.unsqueeze(1)))


def attach_mask(outputs: Any, mask: Any) -> Any:
    """``outputs`` with ``_keras_mask`` set to ``mask``: a convenience for calls outside a container.

    Not under ``torch.compile`` / ``torch.export`` (a graph's tensors carry no
    attributes); nothing correct depends on it: containers use ``compute_mask``.
    """
    if mask is not None and isinstance(outputs, torch.Tensor) and not torch.compiler.is_compiling():
        outputs._keras_mask = mask  # type: ignore[attr-defined]
    return outputs
