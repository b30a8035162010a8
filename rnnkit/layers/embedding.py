"""``Embedding``: integer ids to dense vectors, Keras 3's ``keras.layers.Embedding``.

::

    y[b, t, :] = embeddings[x[b, t], :]          embeddings: (input_dim, output_dim)
    mask[b, t] = x[b, t] != 0                    only with mask_zero=True (x as given: 0.5 is not masked)

Shapes: ``x`` ``(batch, timesteps)`` of integer ids in ``[0, input_dim)`` (any
rank works: ``(*dims)`` -> ``(*dims, output_dim)``); float ids are truncated to
integers, as Keras casts them to ``int32``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from rnnkit.core.sequences import attach_mask
from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.layer import Layer


def _positive_int(layer: str, arg: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{layer}: {arg} must be a positive integer, got {value!r} (of type {type(value).__name__})")
    return int(value)


class Embedding(Layer):
    """Turns non-negative integer ids into dense vectors of fixed size.

    The lookup is ``torch.nn.functional.embedding`` on the ``embeddings``
    weight, stored in Keras's layout ``(input_dim, output_dim)`` (the same as
    ``torch.nn.Embedding.weight``), so ``get_weights()`` / ``set_weights()``
    exchange it with Keras directly. The weight is created at construction
    (its shape does not depend on the input), so ``layer.parameters()`` is
    ready for an optimizer at once.

    With ``mask_zero=True`` id 0 is padding: ``compute_mask(ids)`` is
    ``ids != 0`` (``(batch, timesteps)``, True = use the step), which
    ``rnnkit.Sequential`` hands to the next layer; the output also carries it
    as ``_keras_mask`` for calls outside a container. ``input_dim`` then counts
    the padding id too (vocabulary size + 1).

    Args:
        input_dim: size of the vocabulary, i.e. the largest id + 1.
        output_dim: size of each embedding vector.
        embeddings_initializer: initializer of ``embeddings`` (Keras's
            ``"uniform"``: ``RandomUniform(-0.05, 0.05)``).
        embeddings_regularizer: regularizer of ``embeddings`` (see ``losses``).
        embeddings_constraint: constraint of ``embeddings`` (see
            ``apply_constraints``).
        mask_zero: whether id 0 is padding to be masked out.
        weights: initial embeddings, an ``(input_dim, output_dim)`` array or a
            one-element list holding it.
        lora_rank: Keras 3's LoRA rank; not supported (anything but None is an
            error).
        lora_alpha: Keras 3's LoRA scale; not supported (anything but None is
            an error).
        quantization_config: Keras 3's quantization; only None (as Keras
            configs write it) is accepted.
        input_length: deprecated in Keras 3 and ignored, with a warning.
        name: layer name (default ``"embedding"``, ``"embedding_1"``, ...).
        dtype: dtype of ``embeddings`` and of the output (default float32).
        trainable: whether ``embeddings`` is trained.
        activity_regularizer: regularizer applied to the output (see ``losses``).
        input_shape: accepted for Keras compatibility; the weight does not depend on it.
        batch_input_shape: accepted for Keras compatibility.
        batch_size: accepted for Keras compatibility.

    Call: ``layer(ids)`` with ``ids`` an integer tensor or numpy array; returns
    ``(*ids.shape, output_dim)`` in ``dtype``. An id outside
    ``[0, input_dim)`` is an error naming the range of the ids (on CPU; on
    other devices torch's own kernel check applies).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        weights: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        input_length: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        activity_regularizer: Any = None,
        input_shape: tuple | None = None,
        batch_input_shape: tuple | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, activity_regularizer=activity_regularizer,
                         input_shape=input_shape, batch_input_shape=batch_input_shape, batch_size=batch_size)
        self.input_dim = _positive_int(self.name, "input_dim", input_dim)
        self.output_dim = _positive_int(self.name, "output_dim", output_dim)
        if lora_rank is not None or lora_alpha is not None:
            raise ValueError(
                f"{self.name}: LoRA (lora_rank={lora_rank!r}, lora_alpha={lora_alpha!r}) is not supported by "
                "rnnkit.Embedding; leave both None"
            )
        if quantization_config is not None:
            raise ValueError(f"{self.name}: quantization (quantization_config) is not supported by rnnkit.Embedding")
        if input_length is not None:
            warnings.warn(f"{self.name}: argument `input_length` is deprecated (Keras 3) and ignored; remove it",
                          stacklevel=2)
        self.embeddings_initializer = initializers_mod.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers_mod.get(embeddings_regularizer)
        self.embeddings_constraint = constraints_mod.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.build()
        if weights is not None:
            self.set_weights(list(weights) if isinstance(weights, (list, tuple)) and len(weights) == 1 else [weights])

    def build(self, input_shape: Any = None) -> None:
        """Create ``embeddings`` ``(input_dim, output_dim)``; the input shape plays no part."""
        if "embeddings" in self._parameters:
            return
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )

    def _as_tensor(self, inputs: Any) -> torch.Tensor:
        """``inputs`` as a tensor on the weight's device, in its own dtype (checked to be numeric)."""
        if not isinstance(inputs, torch.Tensor):
            if not isinstance(inputs, (np.ndarray, np.generic, list, tuple, int)):
                raise TypeError(
                    f"{self.name}: inputs must be integer ids (a tensor or numpy array), got {type(inputs).__name__}"
                )
            inputs = torch.as_tensor(np.asarray(inputs))
        if inputs.dtype == torch.bool or inputs.dtype.is_complex:
            raise TypeError(f"{self.name}: inputs must be integer ids, got dtype {inputs.dtype}")
        return inputs.to(device=self.embeddings.device)

    def call(self, inputs: Any) -> torch.Tensor:
        raw = self._as_tensor(inputs)
        ids = raw.to(torch.int64)  # floats truncated, as Keras casts them
        try:
            out = torch.nn.functional.embedding(ids, self.embeddings)
        except (IndexError, RuntimeError):
            # Only now look at the values (a host sync): the usual call has no data-dependent check.
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(
                    f"{self.name}: ids must be in [0, input_dim) = [0, {self.input_dim}), "
                    f"got ids from {lo} to {hi}"
                ) from None
            raise
        if self.mask_zero:
            attach_mask(out, raw != 0)
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        """``inputs != 0`` with ``mask_zero``, else None (an incoming ``mask`` is replaced, as in Keras).

        As Keras, the inputs themselves are compared: a float id ``0.5`` is
        not masked (though it looks up row 0).
        """
        if not self.mask_zero:
            return None
        return self._as_tensor(inputs) != 0

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers_mod.serialize(self.embeddings_initializer),
            embeddings_regularizer=regularizers_mod.serialize(self.embeddings_regularizer),
            embeddings_constraint=constraints_mod.serialize(self.embeddings_constraint),
            mask_zero=self.mask_zero,
        )
        return config

    def extra_repr(self) -> str:
        flags = ", mask_zero=True" if self.mask_zero else ""
        return f"{self.input_dim}, {self.output_dim}, name={self.name!r}{flags}"
