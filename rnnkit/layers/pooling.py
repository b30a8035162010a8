"""``GlobalAveragePooling1D`` and ``GlobalMaxPooling1D``: Keras 3's global pooling over the steps axis.

::

    average, no mask:  y[b, c] = mean_t x[b, t, c]
    average, mask:     y[b, c] = sum_t mask[b, t] * x[b, t, c] / sum_t mask[b, t]
    max:               y[b, c] = max_t x[b, t, c]

Shapes (``channels_last``): ``(batch, steps, channels)`` -> ``(batch, channels)``,
or ``(batch, 1, channels)`` with ``keepdims=True``; with ``channels_first``
the input is ``(batch, channels, steps)`` and the kept axis is the last.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.engine.layer import Layer
from rnnkit.layers.common import (
    as_bool_mask,
    check_rank,
    documented_layer,
    input_mask,
    numeric_input,
    standard_data_format,
)

_KEEPDIMS = "If True, the pooled axis stays, with size 1 (rank 3 output); else it is removed (rank 2)."


class _GlobalPooling1D(Layer):
    """Shared: arguments, the steps axis, output shapes and config."""

    def __init__(self, data_format: str | None, keepdims: bool, name: str | None, dtype: Any, trainable: bool,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.data_format = standard_data_format(self.name, data_format)
        self.keepdims = bool(keepdims)

    @property
    def steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _inputs(self, inputs: Any) -> torch.Tensor:
        x = numeric_input(self, inputs)
        layout = "(batch, steps, channels)" if self.data_format == "channels_last" else "(batch, channels, steps)"
        check_rank(self.name, x, exactly=3, layout=layout)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, a, b = tuple(input_shape)
        channels = b if self.data_format == "channels_last" else a
        if not self.keepdims:
            return (batch, channels)
        return (batch, 1, channels) if self.data_format == "channels_last" else (batch, channels, 1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


@documented_layer(keepdims=_KEEPDIMS)
class GlobalAveragePooling1D(_GlobalPooling1D):
    """Average over the steps axis; with a mask, over the unmasked steps only.

    The mask (``mask=`` or the input's ``_keras_mask``) is boolean ``(batch,
    steps)``, True = use the step, as Keras's: masked steps (their values,
    NaN included) are left out of the sum and the count. A row whose every
    step is masked divides 0 by 0 (NaN), as in Keras. The mask stops here
    (``compute_mask`` is None; ``supports_masking`` is True, so a container
    hands it over without a warning).

    Call: ``layer(x, mask=None)``; returns ``(batch, channels)`` (see
    ``keepdims``). No weights.
    """

    def __init__(self, data_format: str | None = None, keepdims: bool = False, name: str | None = None,
                 dtype: Any = None, trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, name, dtype, trainable, **kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> torch.Tensor:
        x = self._inputs(inputs)
        mask = input_mask(inputs, mask)
        axis = self.steps_axis
        if mask is None:
            return x.mean(dim=axis, keepdim=self.keepdims)
        mask = as_bool_mask(self.name, mask, x.device)
        if tuple(mask.shape) != (x.shape[0], x.shape[axis]):
            raise ValueError(
                f"{self.name}: mask must have shape (batch, steps) = {(x.shape[0], x.shape[axis])}, "
                f"got {tuple(mask.shape)} for inputs of shape {tuple(x.shape)}"
            )
        keep = mask.unsqueeze(2 if axis == 1 else 1)
        total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=axis,
                                                                                          keepdim=self.keepdims)
        return total / keep.to(x.dtype).sum(dim=axis, keepdim=self.keepdims)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        """None: the steps axis is pooled away."""
        return None


@documented_layer(keepdims=_KEEPDIMS)
class GlobalMaxPooling1D(_GlobalPooling1D):
    """Maximum over the steps axis.

    As in Keras this layer does not support masking: a mask is ignored and
    stops here (a container warns). Mask the padding out first
    (e.g. ``Masking`` zeros it, or pool a recurrent layer's last output).

    Call: ``layer(x)``; returns ``(batch, channels)`` (see ``keepdims``). No
    weights.
    """

    def __init__(self, data_format: str | None = None, keepdims: bool = False, name: str | None = None,
                 dtype: Any = None, trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(data_format, keepdims, name, dtype, trainable, **kwargs)

    def call(self, inputs: Any) -> torch.Tensor:
        return self._inputs(inputs).amax(dim=self.steps_axis, keepdim=self.keepdims)
