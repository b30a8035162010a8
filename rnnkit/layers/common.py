"""What the non-recurrent layers share: argument descriptions, input conversion, masks, the training flag.

* :func:`documented_layer` appends the ``Args:`` section to a layer class
  (one entry per constructor parameter, in signature order, from
  :data:`LAYER_ARGS` or the class's own wording; a parameter without a
  description is an error at import time);
* :func:`numeric_input` converts an input by rnnkit's dtype rule
  (``rnnkit.core.sequences.as_tensor``), :func:`plain_input` only turns numpy
  into a tensor (layers that only move values keep the dtype);
* :func:`input_mask` is an explicit ``mask=`` or, as in Keras's eager calls,
  the ``_keras_mask`` an rnnkit layer attached to the input;
  :func:`attach_mask` sets that convenience attribute on an output;
* :func:`is_training` is ``training`` or, when None, the module's
  ``train()`` / ``eval()`` mode;
* :func:`mixes_samples` says whether a module's output for one sample
  depends on the other samples of the batch (``TimeDistributed`` reads it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnnkit.cells.args import documented
from rnnkit.core.sequences import as_tensor, to_tensor

_INIT = "(a name, a Keras config dict, an ``rnnkit.initializers`` object or a callable ``fn(shape, dtype)``)"

LAYER_ARGS: dict[str, str] = {
    "name": "The layer's name (default: the snake-cased class name, numbered: ``dense``, ``dense_1``, ...).",
    "dtype": "Dtype of the weights and of the computation: a name (``\"float32\"``, the default), a Keras "
             "dtype-policy config or a ``torch.dtype``; numeric inputs are cast to it (Keras's rule).",
    "trainable": "If False, the weights are frozen (``requires_grad=False``).",
    "kwargs": "Other ``rnnkit.Layer`` arguments: ``input_shape``, ``input_dim`` (with ``input_length``), "
              "``batch_input_shape`` and ``batch_size`` build the weights at construction; any other name is "
              "a ``TypeError`` that suggests the closest accepted one.",
    "activation": "Activation applied last (a Keras name such as ``\"relu\"``, a callable, or ``None`` for "
                  "linear), resolved by ``rnnkit.activations.get``.",
    "use_bias": "Whether the layer adds a ``bias`` vector.",
    "kernel_initializer": "Initializer of ``kernel`` " + _INIT + ".",
    "bias_initializer": "Initializer of ``bias`` " + _INIT + ".",
    "kernel_regularizer": "Regularizer of ``kernel``; its penalty is in ``losses``.",
    "bias_regularizer": "Regularizer of ``bias``; its penalty is in ``losses``.",
    "activity_regularizer": "Regularizer of the layer's output; its penalty for the last call is in ``losses``.",
    "kernel_constraint": "Constraint projected onto ``kernel`` by ``apply_constraints()``.",
    "bias_constraint": "Constraint projected onto ``bias`` by ``apply_constraints()``.",
    "data_format": "``\"channels_last\"`` (``None`` means this: ``(batch, steps, channels)``) or "
                   "``\"channels_first\"`` (``(batch, channels, steps)``).",
    "seed": "Int or None: the seed of the dropout masks (a private stream: the same seed draws the same "
            "masks whatever else uses torch's global generator).",
}


def documented_layer(**overrides: str) -> Callable[[type], type]:
    """Class decorator: the ``Args:`` section from :data:`LAYER_ARGS` and the class's own ``overrides``."""
    return documented(**{**LAYER_ARGS, **overrides})


def plain_input(layer: str, x: Any, what: str = "inputs") -> torch.Tensor:
    """``x`` as a tensor, dtype unchanged (numpy arrays and nested lists converted)."""
    return to_tensor(x, what, layer)


def numeric_input(layer: Any, x: Any, device: torch.device | None = None, what: str = "inputs") -> torch.Tensor:
    """``x`` in ``layer.dtype`` by rnnkit's dtype rule (bool and complex inputs are a ``TypeError``)."""
    if isinstance(x, torch.Tensor) and x.dtype == layer.dtype and (device is None or x.device == device):
        return x
    return as_tensor(x, layer.dtype, device, what, layer.name)


def check_rank(layer: str, x: torch.Tensor, *, exactly: int | None = None, at_least: int | None = None,
               layout: str = "") -> None:
    """A ``ValueError`` naming the layer when ``x`` has the wrong rank."""
    if (exactly is not None and x.dim() != exactly) or (at_least is not None and x.dim() < at_least):
        want = f"rank {exactly}" if exactly is not None else f"rank {at_least} or more"
        raise ValueError(f"{layer}: expected inputs of {want}{' ' + layout if layout else ''}, "
                         f"got shape {tuple(x.shape)} (rank {x.dim()})")


def as_bool_mask(layer: str, mask: Any, device: torch.device | None = None) -> torch.Tensor:
    """A boolean mask tensor from a bool or integer 0/1 mask (tensor or numpy)."""
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(np.asarray(mask))
    if mask.dtype.is_floating_point or mask.dtype.is_complex:
        raise TypeError(f"{layer}: mask must be boolean (or integer 0/1), got dtype {mask.dtype}")
    if mask.dtype != torch.bool:
        mask = mask != 0
    return mask if device is None else mask.to(device)


def input_mask(inputs: Any, mask: Any) -> Any:
    """``mask`` if given, else the ``_keras_mask`` attached to ``inputs`` (per input for a list)."""
    if mask is not None:
        return mask
    if isinstance(inputs, (list, tuple)):
        masks = [getattr(x, "_keras_mask", None) for x in inputs]
        return masks if any(m is not None for m in masks) else None
    return getattr(inputs, "_keras_mask", None)




def is_training(module: torch.nn.Module, training: bool | None) -> bool:
    """``training`` if given, else the module's mode (``train()`` / ``eval()``)."""
    return module.training if training is None else bool(training)


def mixes_samples(module: torch.nn.Module, training: bool | None) -> bool:
    """Whether ``module``'s output for one batch row can depend on the other rows.

    True when ``module`` or one of its sub-modules normalizes with batch
    statistics in this call (rnnkit's ``BatchNormalization`` in training
    mode, which declares ``batch_statistics_in_training = True``;
    ``torch.nn.BatchNorm*`` in ``train()`` mode or without running stats) or
    carries states from call to call (``stateful=True``). A wrapper can fold
    extra axes into the batch only when this is False.
    """
    for m in module.modules():
        if getattr(m, "stateful", False) is True:
            return True
        if getattr(type(m), "batch_statistics_in_training", False) and is_training(m, training) \
                and getattr(m, "trainable", True):
            return True
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats):
            return True
    return False


def positive_int(layer: str, arg: str, value: Any) -> int:
    """``value`` as an int, or a ``ValueError`` naming the layer (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{layer}: {arg} must be a positive integer, got {value!r} (of type {type(value).__name__})")
    return int(value)


def standard_data_format(layer: str, value: Any) -> str:
    """Keras's ``standardize_data_format``: None -> ``"channels_last"``, any case accepted."""
    if value is None:
        return "channels_last"
    fmt = str(value).lower()
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first' (or None), got {value!r}")
    return fmt


def unsupported(layer: str, **values: Any) -> None:
    """A ``ValueError`` for Keras arguments rnnkit does not implement, when set to anything but their default."""
    for arg, value in values.items():
        if value is not None:
            raise ValueError(f"{layer}: {arg}={value!r} is not supported by rnnkit; leave it None")
