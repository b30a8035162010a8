"""``Masking``: skip the timesteps whose features all equal ``mask_value``, Keras 3's ``keras.layers.Masking``.

::

    mask[b, t]  = any_f(x[b, t, f] != mask_value)          (batch, timesteps)
    y[b, t, :]  = x[b, t, :] if mask[b, t] else 0
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.core.sequences import as_tensor, attach_mask
from rnnkit.engine.layer import Layer


class Masking(Layer):
    """Masks the timesteps whose every feature equals ``mask_value``.

    ``compute_mask(x)`` is ``any(x != mask_value, axis=-1)``: a step is used
    (True) when at least one feature differs from ``mask_value``. The output is
    ``x`` with the masked steps set to zero (``torch.where``: with
    ``mask_value=inf`` they are 0, not ``inf * 0 = NaN``). An incoming mask is replaced, not
    combined, as in Keras. ``rnnkit.Sequential`` hands the mask to the next
    layer; the output also carries it as ``_keras_mask`` for calls outside a
    container. Holes are allowed: the recurrent layers after it carry their
    states over masked steps wherever they are.

    Args:
        mask_value: the padding value (compared with ``!=``; a NaN never matches).
        name: layer name (default ``"masking"``, ``"masking_1"``, ...).
        dtype: dtype numpy inputs are converted to (tensors keep theirs).
        trainable: kept for Keras compatibility (the layer has no weights).
        input_shape: Keras's eager-build argument (nothing to build).
        batch_input_shape: Keras's eager-build argument (nothing to build).
        batch_size: Keras's eager-build argument (nothing to build).

    Call: ``layer(x)``, ``x`` ``(batch, timesteps, features...)`` (rank 2 or
    more: the last axis is the features); returns a tensor of ``x``'s shape.
    """

    def __init__(
        self,
        mask_value: float = 0.0,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        input_shape: tuple | None = None,
        batch_input_shape: tuple | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_input_shape=batch_input_shape, batch_size=batch_size)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            try:
                mask_value = float(mask_value)
            except (TypeError, ValueError):
                raise TypeError(f"{self.name}: mask_value must be a number, got {mask_value!r}") from None
        self.mask_value = mask_value
        self.supports_masking = True

    def _inputs(self, inputs: Any) -> torch.Tensor:
        x = inputs if isinstance(inputs, torch.Tensor) else as_tensor(inputs, self.dtype, None, "input", self.name)
        if x.dim() < 2:
            raise ValueError(
                f"{self.name}: expected inputs of rank 2 or more (batch, ..., features), got shape {tuple(x.shape)}"
            )
        return x

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        """``any(inputs != mask_value, axis=-1)``; ``mask`` is ignored (Keras)."""
        return (self._inputs(inputs) != self.mask_value).any(dim=-1)

    def call(self, inputs: Any) -> torch.Tensor:
        x = self._inputs(inputs)
        keep = (x != self.mask_value).any(dim=-1)
        out = torch.where(keep.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return attach_mask(out, keep)

    def get_config(self) -> dict:
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config

    def extra_repr(self) -> str:
        return f"mask_value={self.mask_value!r}, name={self.name!r}"
