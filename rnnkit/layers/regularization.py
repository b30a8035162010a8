"""``Dropout`` and ``SpatialDropout1D``: Keras 3's ``keras.layers.Dropout`` and ``SpatialDropout1D``.

::

    training:   keep ~ Bernoulli(1 - rate) of shape noise_shape (broadcast to x's shape)
                y = where(keep, x / (1 - rate), 0)
    inference:  y = x

``SpatialDropout1D`` is ``Dropout`` with ``noise_shape = (batch, 1, channels)``:
whole channels are dropped for every timestep of a sequence.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.core.sequences import attach_mask
from rnnkit.engine.layer import Layer
from rnnkit.engine.seeds import SeedStream, keep_masks
from rnnkit.layers.common import check_rank, documented_layer, input_mask, is_training, numeric_input


def _rate(layer: str, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= float(rate) <= 1:
        raise ValueError(f"{layer}: rate must be a number in [0, 1], got {rate!r}")
    return float(rate)


def _noise_shape(layer: str, noise_shape: Any) -> tuple | None:
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(f"{layer}: noise_shape must be a tuple of ints or None, got the string {noise_shape!r}")
    try:
        dims = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"{layer}: noise_shape must be a tuple of ints or None, got {noise_shape!r}") from None
    for i, d in enumerate(dims):
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0):
            raise ValueError(f"{layer}: noise_shape entries must be positive ints or None, got {d!r} at index {i}")
    return dims


class _DropoutBase(Layer):
    """The shared mechanism: the mask drawn from torch's generator or the layer's seeded stream."""

    _stream: SeedStream | None

    def _init_dropout(self, rate: Any, seed: Any) -> None:
        self.rate = _rate(self.name, rate)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{self.name}: seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._stream = None
        self.supports_masking = True

    def _noise(self, x: torch.Tensor) -> tuple | None:
        raise NotImplementedError

    def call(self, inputs: Any, training: bool | None = None) -> torch.Tensor:
        x = numeric_input(self, inputs)
        noise = self._noise(x)
        mask = input_mask(inputs, None)
        if not is_training(self, training) or self.rate == 0.0:
            return attach_mask(x, mask)
        if self.rate == 1.0:
            return attach_mask(torch.zeros_like(x), mask)
        if noise is None and self.seed is None:
            return attach_mask(F.dropout(x, self.rate, training=True), mask)
        shape = tuple(x.shape) if noise is None else noise
        if self.seed is not None and self._stream is None:
            self._stream = SeedStream(self.seed)  # replayed by torch.utils.checkpoint's recomputation
        keep_prob = 1.0 - self.rate
        (keep,) = keep_masks(shape, keep_prob, 1, self._stream, x.device, torch.get_default_dtype())
        y = torch.where(keep, x / keep_prob, torch.zeros((), dtype=x.dtype, device=x.device))
        return attach_mask(y, mask)


@documented_layer(
    rate="Float in [0, 1]: the fraction of the input units dropped in training.",
    noise_shape="Tuple or None: the shape of the binary mask, broadcast against the input's shape (``None`` "
                "entries take the input's size): ``(batch, 1, features)`` drops the same features at every "
                "timestep. ``None``: one draw per input element.",
)
class Dropout(_DropoutBase):
    """Randomly zeroes a fraction ``rate`` of its inputs in training and scales the rest by ``1 / (1 - rate)``.

    In inference (``eval()`` or ``training=False``) it is the identity.
    ``training=None`` follows the module's mode, as ``torch.nn.Dropout``
    (Keras's ``fit`` / ``predict`` set it for you; in rnnkit ``model.train()``
    / ``model.eval()`` do). Without ``noise_shape`` and ``seed`` this is
    ``torch.nn.functional.dropout``; with ``seed`` the masks come from the
    layer's own stream (reproducible; ``torch.utils.checkpoint`` recomputes
    the same mask). No weights; masks pass through (``supports_masking``).

    Call: ``layer(x, training=None)``, ``x`` any shape; returns ``x``'s shape.
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Any = None,
        seed: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self._init_dropout(rate, seed)
        self.noise_shape = _noise_shape(self.name, noise_shape)

    def _noise(self, x: torch.Tensor) -> tuple | None:
        if self.noise_shape is None:
            return None
        if len(self.noise_shape) != x.dim():
            raise ValueError(
                f"{self.name}: noise_shape {self.noise_shape} must have the input's rank {x.dim()} "
                f"(input shape {tuple(x.shape)})"
            )
        shape = tuple(n if d is None else d for d, n in zip(self.noise_shape, x.shape))
        if any(d not in (1, n) for d, n in zip(shape, x.shape)):
            raise ValueError(
                f"{self.name}: noise_shape {self.noise_shape} does not broadcast to the input shape {tuple(x.shape)}"
                " (each entry must be 1, None or the input's size)"
            )
        return shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed, noise_shape=self.noise_shape)
        return config

    def extra_repr(self) -> str:
        return f"rate={self.rate}, name={self.name!r}"


@documented_layer(rate="Float in [0, 1]: the fraction of the channels dropped in training.")
class SpatialDropout1D(_DropoutBase):
    """Dropout of whole channels: one keep/drop draw per (batch row, channel), shared by every timestep.

    ::

        keep ~ Bernoulli(1 - rate) of shape (batch, 1, channels)
        y[b, t, c] = x[b, t, c] * keep[b, 0, c] / (1 - rate)      in training; y = x in inference

    Use it instead of ``Dropout`` when neighbouring timesteps are strongly
    correlated (e.g. after ``Conv1D``). Inputs ``(batch, timesteps,
    channels)`` (rank 3). ``training`` as ``Dropout``.

    Call: ``layer(x, training=None)``; returns ``x``'s shape.
    """

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self._init_dropout(rate, seed)

    def _noise(self, x: torch.Tensor) -> tuple:
        check_rank(self.name, x, exactly=3, layout="(batch, timesteps, channels)")
        return (x.shape[0], 1, x.shape[2])

    def get_config(self) -> dict:
        # Keras writes these four keys only
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": str(self.dtype).replace("torch.", "")}

    def extra_repr(self) -> str:
        return f"rate={self.rate}, name={self.name!r}"
