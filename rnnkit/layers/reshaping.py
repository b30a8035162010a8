"""``Flatten``, ``Reshape``, ``Permute``, ``RepeatVector``: Keras 3's reshaping layers.

::

    Flatten:       (batch, d1, ..., dn)   -> (batch, d1 * ... * dn)
    Reshape(s):    (batch, d1, ..., dn)   -> (batch, *s)            one entry of s may be -1 (inferred)
    Permute(p):    (batch, d1, ..., dn)   -> (batch, d_p1, ..., d_pn)  p a permutation of 1..n
    RepeatVector:  (batch, features)      -> (batch, n, features)

The batch axis is never touched. None of them has weights, and none keeps a
mask (as in Keras: ``supports_masking`` is False, a container warns that the
mask stops there). Values and dtypes pass unchanged (numpy inputs become
tensors of the same dtype).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnkit.engine.layer import Layer
from rnnkit.layers.common import check_rank, documented_layer, plain_input, positive_int, standard_data_format


@documented_layer(data_format="``\"channels_last\"`` (``None`` means this) or ``\"channels_first\"``: with "
                              "``\"channels_first\"`` the channel axis (1) is moved last before flattening, so "
                              "the order matches a ``channels_last`` model's.")
class Flatten(Layer):
    """Flattens every axis but the batch axis.

    ::

        y = x.reshape(batch, -1)                          channels_last
        y = x.movedim(1, -1).reshape(batch, -1)           channels_first (rank 3 or more)

    A rank-1 input ``(batch,)`` becomes ``(batch, 1)``.

    Call: ``layer(x)``; returns ``(batch, prod(x.shape[1:]))``.
    """

    def __init__(self, data_format: str | None = None, name: str | None = None, dtype: Any = None,
                 trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.data_format = standard_data_format(self.name, data_format)

    def call(self, inputs: Any) -> torch.Tensor:
        x = plain_input(self.name, inputs)
        check_rank(self.name, x, at_least=1, layout="(batch, ...)")
        if self.data_format == "channels_first" and x.dim() > 2:
            x = x.movedim(1, -1)
        return x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(x.shape[0], 1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        dims = tuple(input_shape)[1:]
        return (input_shape[0], None if None in dims else math.prod(dims))

    def get_config(self) -> dict:
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


@documented_layer(target_shape="Tuple of ints: the output shape without the batch axis; one entry may be "
                               "``-1`` (or ``None``), inferred from the input's size.")
class Reshape(Layer):
    """Reshapes the non-batch axes to ``target_shape``.

    ::

        y = x.reshape(batch, *target_shape)        the element count per sample must not change

    Call: ``layer(x)``; returns ``(batch, *target_shape)`` with the unknown
    entry resolved.
    """

    def __init__(self, target_shape: Any, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        try:
            target = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{self.name}: target_shape must be a tuple of ints, got {target_shape!r}") from None
        for d in target:
            if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < -1):
                raise ValueError(
                    f"{self.name}: target_shape entries must be non-negative ints or -1 (one unknown), "
                    f"got {target_shape!r}"
                )
        if sum(d is None or d == -1 for d in target) > 1:
            raise ValueError(f"{self.name}: target_shape may have one unknown entry (-1) at most, got {target!r}")
        self.target_shape = target

    def _resolved(self, input_shape: tuple) -> tuple:
        """``target_shape`` with its unknown entry computed from the per-sample ``input_shape`` (None if unknown)."""
        target = tuple(-1 if d is None else d for d in self.target_shape)
        if None in input_shape:
            return tuple(None if d == -1 else d for d in target)
        size = math.prod(input_shape)
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if known == 0 or size % known:
                raise ValueError(
                    f"{self.name}: cannot reshape inputs of shape (batch, {', '.join(map(str, input_shape))}) "
                    f"to (batch, {', '.join(map(str, self.target_shape))}): {size} elements per sample do not "
                    f"divide into {known}"
                )
            return tuple(size // known if d == -1 else d for d in target)
        if known != size:
            raise ValueError(
                f"{self.name}: cannot reshape inputs of shape (batch, {', '.join(map(str, input_shape))}) "
                f"({size} elements per sample) to target_shape {self.target_shape} ({known} elements)"
            )
        return target

    def call(self, inputs: Any) -> torch.Tensor:
        x = plain_input(self.name, inputs)
        check_rank(self.name, x, at_least=1, layout="(batch, ...)")
        return x.reshape((x.shape[0], *self._resolved(tuple(x.shape[1:]))))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self._resolved(tuple(input_shape)[1:]))

    def get_config(self) -> dict:
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


@documented_layer(dims="Tuple of ints: a permutation of ``1 .. rank-1`` (the batch axis 0 stays first); "
                       "``(2, 1)`` swaps the two axes of ``(batch, timesteps, features)``.")
class Permute(Layer):
    """Permutes the non-batch axes.

    ::

        y = x.permute(0, *dims)          y.shape = (batch, x.shape[dims[0]], ..., x.shape[dims[-1]])

    Inputs must have rank ``len(dims) + 1``.

    Call: ``layer(x)``; returns the permuted tensor (a view).
    """

    def __init__(self, dims: Any, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        try:
            perm = tuple(dims)
        except TypeError:
            raise TypeError(f"{self.name}: dims must be a tuple of ints, got {dims!r}") from None
        if sorted(perm) != list(range(1, len(perm) + 1)) or any(isinstance(d, bool) for d in perm):
            raise ValueError(
                f"{self.name}: dims must be a permutation of 1..{len(perm)} (consecutive, starting from 1; the "
                f"batch axis 0 is not permuted), got {dims!r}"
            )
        self.dims = perm

    def call(self, inputs: Any) -> torch.Tensor:
        x = plain_input(self.name, inputs)
        check_rank(self.name, x, exactly=len(self.dims) + 1, layout=f"(batch + the {len(self.dims)} axes of dims)")
        return x.permute(0, *self.dims)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict:
        config = super().get_config()
        config["dims"] = self.dims
        return config


@documented_layer(n="Positive int: how many times the input is repeated along the new axis 1.")
class RepeatVector(Layer):
    """Repeats a ``(batch, features)`` input ``n`` times along a new axis 1.

    ::

        y[b, i, :] = x[b, :]        for i in 0 .. n-1          y: (batch, n, features)

    Typical use: feed an encoder's last output to every step of a decoder
    (``RNN(return_sequences=True)``).

    Call: ``layer(x)``, ``x`` of rank 2; returns ``(batch, n, features)``.
    """

    def __init__(self, n: int, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"{self.name}: n must be an int, got {n!r} (of type {type(n).__name__})")
        self.n = positive_int(self.name, "n", n)

    def call(self, inputs: Any) -> torch.Tensor:
        x = plain_input(self.name, inputs)
        check_rank(self.name, x, exactly=2, layout="(batch, features)")
        return x.unsqueeze(1).expand(x.shape[0], self.n, x.shape[1]).contiguous()

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict:
        config = super().get_config()
        config["n"] = self.n
        return config
