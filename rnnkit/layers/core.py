"""``Dense`` and ``Activation``: Keras 3's ``keras.layers.Dense`` and ``keras.layers.Activation``.

::

    Dense:       y = activation(x @ kernel + bias)      kernel: (input_dim, units), bias: (units,)
    Activation:  y = activation(x)

Shapes: ``Dense`` takes ``(batch, ..., input_dim)`` (rank 2 or more) and
returns ``(batch, ..., units)``: the kernel is applied to the last axis, so
on sequences ``(batch, timesteps, features)`` it works per step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.core.sequences import attach_mask
from rnnkit.engine import activations as activations_mod
from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.layer import Layer
from rnnkit.layers.common import (
    check_rank,
    documented_layer,
    input_mask,
    numeric_input,
    positive_int,
    unsupported,
)


@documented_layer(
    units="Positive int: the size of the output's last axis.",
    lora_rank="Keras 3's LoRA rank; not supported (anything but None is an error).",
    lora_alpha="Keras 3's LoRA scale; not supported (anything but None is an error).",
    quantization_config="Keras 3's quantization; only None (as Keras configs write it) is accepted.",
)
class Dense(Layer):
    """A densely connected layer applied to the last axis of its input.

    ::

        y[..., j] = activation(sum_i x[..., i] * kernel[i, j] + bias[j])

    Weights, in Keras order and layout (``get_weights()`` / ``set_weights()``
    exchange them with ``keras.layers.Dense``): ``kernel``
    ``(input_dim, units)`` (the transpose of ``torch.nn.Linear.weight``),
    then ``bias`` ``(units,)`` when ``use_bias``. They are created at the
    first call (or ``build((batch, ..., input_dim))``, or at construction with
    ``input_shape=`` / ``input_dim=``); an unbuilt ``Dense`` loading a
    ``state_dict`` builds itself from the stored kernel.

    Masks: the output keeps the input's mask (``supports_masking``, as in
    Keras: a ``Dense`` on sequences works per step).

    Call: ``layer(x)``, ``x`` ``(batch, ..., input_dim)`` (tensor or numpy,
    cast to ``dtype``); returns ``(batch, ..., units)``.
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, activity_regularizer=activity_regularizer,
                         **kwargs)
        self.units = positive_int(self.name, "units", units)
        unsupported(self.name, lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config)
        self.activation = activations_mod.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_mod.get(kernel_initializer)
        self.bias_initializer = initializers_mod.get(bias_initializer)
        self.kernel_regularizer = regularizers_mod.get(kernel_regularizer)
        self.bias_regularizer = regularizers_mod.get(bias_regularizer)
        self.kernel_constraint = constraints_mod.get(kernel_constraint)
        self.bias_constraint = constraints_mod.get(bias_constraint)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        """Create ``kernel`` ``(input_shape[-1], units)`` and ``bias`` ``(units,)``."""
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: Dense needs an input shape of rank 2 or more with a known last axis "
                f"(batch, ..., input_dim), got {input_shape}"
            )
        self.kernel = self.add_weight(shape=(int(input_shape[-1]), self.units), initializer=self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def call(self, inputs: Any) -> torch.Tensor:
        kernel = self.kernel
        x = numeric_input(self, inputs, kernel.device)
        check_rank(self.name, x, at_least=2, layout="(batch, ..., input_dim)")
        if x.shape[-1] != kernel.shape[0]:
            raise ValueError(
                f"{self.name}: expected inputs with last axis {kernel.shape[0]} (the size the layer was built "
                f"with), got shape {tuple(x.shape)}"
            )
        y = F.linear(x, kernel.t(), self.bias if self.use_bias else None)
        return attach_mask(self.activation(y), input_mask(inputs, None))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)[:-1] + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations_mod.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers_mod.serialize(self.kernel_initializer),
            bias_initializer=initializers_mod.serialize(self.bias_initializer),
            kernel_regularizer=regularizers_mod.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers_mod.serialize(self.bias_regularizer),
            kernel_constraint=constraints_mod.serialize(self.kernel_constraint),
            bias_constraint=constraints_mod.serialize(self.bias_constraint),
            quantization_config=None,
        )
        return config

    def extra_repr(self) -> str:
        return f"{self.units}, activation={activations_mod.serialize(self.activation)!r}, name={self.name!r}"


@documented_layer(activation="Activation to apply: a Keras name (``\"relu\"``, ``\"softmax\"``, ...), a callable, "
                             "or ``None`` for linear, resolved by ``rnnkit.activations.get``.")
class Activation(Layer):
    """Applies an activation function elementwise (``softmax`` and the like over the last axis).

    ::

        y = activation(x)                    same shape as x

    No weights. Masks pass through unchanged (``supports_masking``).

    Call: ``layer(x)``, ``x`` any shape (tensor or numpy, cast to ``dtype``).
    """

    def __init__(
        self,
        activation: Any,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.activation = activations_mod.get(activation)
        self.supports_masking = True

    def call(self, inputs: Any) -> torch.Tensor:
        return attach_mask(self.activation(numeric_input(self, inputs)), input_mask(inputs, None))

    def get_config(self) -> dict:
        config = super().get_config()
        config["activation"] = activations_mod.serialize(self.activation)
        return config

    def extra_repr(self) -> str:
        return f"{activations_mod.serialize(self.activation)!r}, name={self.name!r}"
