"""``Conv1D``: Keras 3's ``keras.layers.Conv1D``, a temporal convolution.

::

    y[b, t, f] = activation(bias[f] + sum_{k, c} x_pad[b, t * stride + k * dilation, g(f) + c] * kernel[k, c, f])

    kernel: (kernel_size, in_channels // groups, filters)     bias: (filters,)
    g(f):   the first input channel of filter f's group

Shapes (``channels_last``): ``(batch, steps, in_channels)`` ->
``(batch, new_steps, filters)``; ``channels_first`` swaps the last two axes
of both. ``new_steps``:

    "valid":   (steps - (kernel_size - 1) * dilation - 1) // stride + 1
    "same":    ceil(steps / stride)      (padding split evenly, the odd step at the end, as Keras/TF)
    "causal":  as "valid" after (kernel_size - 1) * dilation zeros on the left: y[t] sees x[<= t]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.cells.conv_lstm import conv_output_length, same_padding
from rnnkit.engine import activations as activations_mod
from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.layer import Layer
from rnnkit.layers.common import check_rank, documented_layer, numeric_input, positive_int, standard_data_format


def _one_int(layer: str, arg: str, value: Any) -> int:
    """Keras's ``standardize_tuple(value, 1, arg)``: an int or a 1-tuple, positive."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{layer}: {arg} must be an int or a tuple of 1 int, got {value!r}")
        value = value[0]
    return positive_int(layer, arg, value)


@documented_layer(
    filters="Positive int: the number of output channels.",
    kernel_size="Int or tuple of 1 int: the length of the convolution window.",
    strides="Int or tuple of 1 int: the step between windows; above 1 it excludes ``dilation_rate`` above 1.",
    padding="``\"valid\"`` (no padding), ``\"same\"`` (output length ``ceil(steps / stride)``) or "
            "``\"causal\"`` (left padding only: output step t sees input steps up to t); any case.",
    dilation_rate="Int or tuple of 1 int: the spacing of the window's taps.",
    groups="Positive int dividing ``filters`` and the input channels: each group of ``in_channels // groups`` "
           "input channels makes ``filters // groups`` outputs.",
)
class Conv1D(Layer):
    """1-D convolution over the steps axis (a cross-correlation, as every deep learning library's).

    Weights, in Keras layout and order: ``kernel`` ``(kernel_size,
    in_channels // groups, filters)`` (``torch.nn.Conv1d.weight`` is its
    ``permute(2, 1, 0)``), then ``bias`` ``(filters,)`` when ``use_bias``.
    They are created at the first call (or ``build``, or ``input_shape=``).
    The computation is ``torch.nn.functional.conv1d``.

    Masks: like Keras's ``Conv1D``, this layer does not support masking (a
    container warns that the mask stops here).

    Call: ``layer(x)``, ``x`` of rank 3 (see the module docstring); returns
    ``(batch, new_steps, filters)`` (``channels_last``).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple,
        strides: int | tuple = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, activity_regularizer=activity_regularizer,
                         **kwargs)
        self.filters = positive_int(self.name, "filters", filters)
        self.groups = positive_int(self.name, "groups", groups)
        if self.filters % self.groups:
            raise ValueError(f"{self.name}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self.kernel_size = (_one_int(self.name, "kernel_size", kernel_size),)
        self.strides = (_one_int(self.name, "strides", strides),)
        self.dilation_rate = (_one_int(self.name, "dilation_rate", dilation_rate),)
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(
                f"{self.name}: strides > 1 is not supported with dilation_rate > 1, got strides={strides!r} and "
                f"dilation_rate={dilation_rate!r}"
            )
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same", "causal"):
            raise ValueError(f"{self.name}: padding must be 'valid', 'same' or 'causal', got {padding!r}")
        self.data_format = standard_data_format(self.name, data_format)
        self.activation = activations_mod.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_mod.get(kernel_initializer)
        self.bias_initializer = initializers_mod.get(bias_initializer)
        self.kernel_regularizer = regularizers_mod.get(kernel_regularizer)
        self.bias_regularizer = regularizers_mod.get(bias_regularizer)
        self.kernel_constraint = constraints_mod.get(kernel_constraint)
        self.bias_constraint = constraints_mod.get(bias_constraint)

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Any) -> None:
        """Create ``kernel`` ``(kernel_size, in_channels // groups, filters)`` and ``bias`` ``(filters,)``."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[self._channel_axis] is None:
            raise ValueError(f"{self.name}: Conv1D needs an input shape of rank 3 with known channels, "
                             f"got {input_shape}")
        channels = int(input_shape[self._channel_axis])
        if channels % self.groups:
            raise ValueError(f"{self.name}: the input channels ({channels}) must be divisible by groups "
                             f"({self.groups}); input shape {input_shape}")
        self.kernel = self.add_weight(shape=(self.kernel_size[0], channels // self.groups, self.filters),
                                      initializer=self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def input_shape_from_weights(self, weights: dict) -> tuple | None:
        kernel = weights.get("kernel")
        if not isinstance(kernel, torch.Tensor) or kernel.dim() != 3:
            return None
        channels = int(kernel.shape[1]) * self.groups
        return (None, None, channels) if self.data_format == "channels_last" else (None, channels, None)

    def _pads(self, steps: int) -> tuple[int, int]:
        k, s, d = self.kernel_size[0], self.strides[0], self.dilation_rate[0]
        if self.padding == "same":
            return same_padding(steps, k, s, d)
        if self.padding == "causal":
            return (k - 1) * d, 0
        return 0, 0

    def call(self, inputs: Any) -> torch.Tensor:
        kernel = self.kernel
        x = numeric_input(self, inputs, kernel.device)
        layout = "(batch, steps, channels)" if self.data_format == "channels_last" else "(batch, channels, steps)"
        check_rank(self.name, x, exactly=3, layout=layout)
        channels = kernel.shape[1] * self.groups
        if x.shape[self._channel_axis] != channels:
            raise ValueError(f"{self.name}: expected {channels} input channels (the number the layer was built "
                             f"with) on axis {self._channel_axis}, got inputs of shape {tuple(x.shape)}")
        if self.data_format == "channels_last":
            x = x.transpose(1, 2)
        left, right = self._pads(x.shape[2])
        span = (self.kernel_size[0] - 1) * self.dilation_rate[0] + 1
        if x.shape[2] + left + right < span:
            raise ValueError(f"{self.name}: {x.shape[2]} steps are fewer than the window's span {span} "
                             f"(kernel_size={self.kernel_size[0]}, dilation_rate={self.dilation_rate[0]}) with "
                             f"padding={self.padding!r}")
        if left or right:
            x = F.pad(x, (left, right))
        y = F.conv1d(x, kernel.permute(2, 1, 0), self.bias if self.use_bias else None, self.strides[0], 0,
                     self.dilation_rate[0], self.groups)
        if self.data_format == "channels_last":
            y = y.transpose(1, 2)
        return self.activation(y)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, a, b = tuple(input_shape)
        steps = a if self.data_format == "channels_last" else b
        if steps is not None:
            k, s, d = self.kernel_size[0], self.strides[0], self.dilation_rate[0]
            pad = "valid" if self.padding == "valid" else "same"
            steps = conv_output_length(int(steps), k, s, d, pad) if self.padding != "causal" else \
                conv_output_length(int(steps) + (k - 1) * d, k, s, d, "valid")
        return (batch, steps, self.filters) if self.data_format == "channels_last" else (batch, self.filters, steps)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            activation=activations_mod.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers_mod.serialize(self.kernel_initializer),
            bias_initializer=initializers_mod.serialize(self.bias_initializer),
            kernel_regularizer=regularizers_mod.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers_mod.serialize(self.bias_regularizer),
            activity_regularizer=regularizers_mod.serialize(self.activity_regularizer),
            kernel_constraint=constraints_mod.serialize(self.kernel_constraint),
            bias_constraint=constraints_mod.serialize(self.bias_constraint),
        )
        return config

    def extra_repr(self) -> str:
        return (f"{self.filters}, kernel_size={self.kernel_size}, strides={self.strides}, padding={self.padding!r}, "
                f"name={self.name!r}")
