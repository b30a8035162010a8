"""``BatchNormalization`` and ``LayerNormalization``: Keras 3's normalization layers.

::

    BatchNormalization (statistics over every axis but ``axis``, per channel c):
      training:   mean_c, var_c = batch moments (biased variance; masked steps left out)
                  moving_mean_c     <- moving_mean_c * momentum + mean_c * (1 - momentum)
                  moving_variance_c <- moving_variance_c * momentum + var_c * (1 - momentum)
      inference:  mean_c, var_c = moving_mean_c, moving_variance_c
      y = (x - mean_c) / sqrt(var_c + epsilon) * gamma_c + beta_c

    LayerNormalization (statistics over ``axis`` of each sample):
      y = (x - mean) / sqrt(var + epsilon) * gamma + beta
      rms_scaling=True (Keras's deprecated flag, kept as Keras computes it):  y = x / sqrt(var + epsilon) * gamma

Note Keras's ``momentum`` is the weight of the *old* value (default 0.99),
the complement of ``torch.nn.BatchNorm``'s ``momentum`` (default 0.1), and
its moving variance is the biased batch variance.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.core.sequences import attach_mask
from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.layer import Layer
from rnnkit.layers.common import as_bool_mask, documented_layer, input_mask, is_training, numeric_input

_KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): guards the masked moments' division

_NORM_ARGS = dict(
    epsilon="Small float added to the variance before the square root.",
    center="If True, add the learned offset ``beta``; if False, no ``beta`` weight is created.",
    scale="If True, multiply by the learned ``gamma``; if False, no ``gamma`` weight is created (fine when the "
          "next layer is linear, e.g. ``relu``).",
    beta_initializer="Initializer of ``beta`` (default zeros).",
    gamma_initializer="Initializer of ``gamma`` (default ones).",
    beta_regularizer="Regularizer of ``beta``; its penalty is in ``losses``.",
    gamma_regularizer="Regularizer of ``gamma``; its penalty is in ``losses``.",
    beta_constraint="Constraint projected onto ``beta`` by ``apply_constraints()``.",
    gamma_constraint="Constraint projected onto ``gamma`` by ``apply_constraints()``.",
)


def _axis_shape(axis: int, size: int) -> tuple:
    """An input shape (None where unknown) with ``size`` at ``axis``, for building from stored weights."""
    return (None,) * axis + (size,) if axis >= 0 else (None, size) + (None,) * (-axis - 1)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """At least float32 for the statistics (as Keras: half inputs are normalized in float32)."""
    return torch.promote_types(x.dtype, torch.float32)


@documented_layer(
    axis="Int: the channel axis, normalized per entry (default -1, the features; 1 for ``channels_first``).",
    momentum="Float: the weight of the old moving statistics in each update (Keras's convention: 0.99).",
    moving_mean_initializer="Initializer of ``moving_mean`` (default zeros).",
    moving_variance_initializer="Initializer of ``moving_variance`` (default ones).",
    renorm="Keras's batch renormalization; not supported (True is an error).",
    renorm_clipping="Keras's renorm clipping dict; only None (renorm off) is accepted.",
    renorm_momentum="Keras's renorm momentum; ignored while ``renorm`` is False.",
    synchronized="Keras's cross-replica statistics (TensorFlow only in Keras); not supported (True is an error).",
    **_NORM_ARGS,
)
class BatchNormalization(Layer):
    """Normalizes each channel with the batch's statistics in training and moving averages in inference.

    Weights, in Keras order (``get_weights()`` equals ``keras.layers.
    BatchNormalization``'s list): ``gamma`` (if ``scale``), ``beta`` (if
    ``center``), ``moving_mean``, ``moving_variance``, each ``(channels,)``.
    The last two are non-trainable weights (``requires_grad=False``
    parameters, in ``state_dict``), updated in place by training calls.

    Training: ``training=None`` follows ``train()`` / ``eval()`` (as
    ``torch.nn.BatchNorm1d``); a layer with ``trainable=False`` always runs
    in inference mode, as in Keras. With a mask (``mask=`` or the input's
    ``_keras_mask``, shape ``x.shape[:-1]``, True = use the entry) the batch
    statistics of a training call count the unmasked entries only::

        mean = sum(mask * x) / (sum(mask) + 1e-7)
        var  = sum(mask * (x - mean)^2) / (sum(mask) + 1e-7)

    Every entry, masked or not, is then normalized; the mask passes on.

    Call: ``layer(x, training=None, mask=None)``, any rank; returns ``x``'s shape.
    """

    batch_statistics_in_training = True  # read by rnnkit.layers.common.mixes_samples

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        renorm: bool = False,
        renorm_clipping: Any = None,
        renorm_momentum: float = 0.99,
        synchronized: bool = False,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{self.name}: axis must be an int, got {axis!r}")
        if renorm or renorm_clipping is not None:
            raise ValueError(f"{self.name}: batch renormalization (renorm=True) is not supported by rnnkit")
        if synchronized:
            raise ValueError(f"{self.name}: synchronized=True is not supported (TensorFlow only in Keras)")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.renorm_momentum = float(renorm_momentum)
        self.beta_initializer = initializers_mod.get(beta_initializer)
        self.gamma_initializer = initializers_mod.get(gamma_initializer)
        self.moving_mean_initializer = initializers_mod.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers_mod.get(moving_variance_initializer)
        self.beta_regularizer = regularizers_mod.get(beta_regularizer)
        self.gamma_regularizer = regularizers_mod.get(gamma_regularizer)
        self.beta_constraint = constraints_mod.get(beta_constraint)
        self.gamma_constraint = constraints_mod.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        """Create ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, each ``(input_shape[axis],)``."""
        input_shape = tuple(input_shape)
        if not -len(input_shape) <= self.axis < len(input_shape) or input_shape[self.axis] is None:
            raise ValueError(f"{self.name}: axis {self.axis} is out of range or unknown for input shape {input_shape}")
        shape = (int(input_shape[self.axis]),)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.moving_mean = self.add_weight(shape=shape, initializer=self.moving_mean_initializer,
                                           name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=shape, initializer=self.moving_variance_initializer,
                                               name="moving_variance", trainable=False)

    def input_shape_from_weights(self, weights: dict) -> tuple | None:
        stat = weights.get("moving_mean")
        return _axis_shape(self.axis, int(stat.shape[0])) if isinstance(stat, torch.Tensor) else None

    def _moments(self, x: torch.Tensor, axes: list[int], mask: torch.Tensor | None) -> tuple:
        if mask is None:
            var, mean = torch.var_mean(x, dim=axes, correction=0)
            return mean, var
        keep = mask.unsqueeze(-1).expand(x.shape)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        count = keep.to(x.dtype).sum(dim=axes, keepdim=True) + _KERAS_EPSILON
        mean = torch.where(keep, x, zero).sum(dim=axes, keepdim=True) / count
        var = torch.where(keep, x - mean, zero).square().sum(dim=axes, keepdim=True) / count
        return mean.flatten(), var.flatten()

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> torch.Tensor:
        x = numeric_input(self, inputs, self.moving_mean.device)
        axis = self.axis % x.dim() if -x.dim() <= self.axis < x.dim() else None
        if axis is None or x.shape[axis] != self.moving_mean.shape[0]:
            raise ValueError(
                f"{self.name}: expected inputs with {self.moving_mean.shape[0]} channels on axis {self.axis} "
                f"(the size the layer was built with), got shape {tuple(x.shape)}"
            )
        mask = input_mask(inputs, mask)
        if mask is not None:
            mask = as_bool_mask(self.name, mask, x.device)
            if tuple(mask.shape) != tuple(x.shape[:-1]):
                raise ValueError(
                    f"{self.name}: the mask must have the inputs' shape without the last axis, got mask shape "
                    f"{tuple(mask.shape)} for inputs of shape {tuple(x.shape)}"
                )
        xc = x.to(_compute_dtype(x))
        shape = [1] * x.dim()
        shape[axis] = x.shape[axis]
        if is_training(self, training) and self.trainable:
            mean, var = self._moments(xc, [d for d in range(x.dim()) if d != axis], mask)
            with torch.no_grad():
                m = self.momentum
                self.moving_mean.copy_(self.moving_mean * m + mean.detach().to(self.moving_mean.dtype) * (1.0 - m))
                self.moving_variance.copy_(
                    self.moving_variance * m + var.detach().to(self.moving_variance.dtype) * (1.0 - m))
        else:
            mean, var = self.moving_mean.to(xc.dtype), self.moving_variance.to(xc.dtype)
        inv = torch.rsqrt(var.reshape(shape) + self.epsilon)
        if self.scale:
            inv = inv * self.gamma.to(xc.dtype).reshape(shape)
        y = (xc - mean.reshape(shape)) * inv
        if self.center:
            y = y + self.beta.to(xc.dtype).reshape(shape)
        return attach_mask(y.to(x.dtype), mask)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=initializers_mod.serialize(self.beta_initializer),
            gamma_initializer=initializers_mod.serialize(self.gamma_initializer),
            moving_mean_initializer=initializers_mod.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers_mod.serialize(self.moving_variance_initializer),
            beta_regularizer=regularizers_mod.serialize(self.beta_regularizer),
            gamma_regularizer=regularizers_mod.serialize(self.gamma_regularizer),
            beta_constraint=constraints_mod.serialize(self.beta_constraint),
            gamma_constraint=constraints_mod.serialize(self.gamma_constraint),
            synchronized=False,
            renorm=False,
            renorm_clipping=None,
            renorm_momentum=self.renorm_momentum,
        )
        return config

    def extra_repr(self) -> str:
        return f"axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}, name={self.name!r}"


@documented_layer(
    axis="Int or list of ints: the axes normalized together, per sample (default -1, the features); ``gamma`` "
         "and ``beta`` have the shape of those axes.",
    rms_scaling="Keras's deprecated flag (warns, as Keras does): divide by ``sqrt(var + epsilon)`` without "
                "subtracting the mean, scale by ``gamma``, no ``beta``.",
    **_NORM_ARGS,
)
class LayerNormalization(Layer):
    """Normalizes each sample over ``axis``, then scales by ``gamma`` and shifts by ``beta``.

    Statistics are per sample (the same in training and inference; no batch
    dependence). Weights, in Keras order: ``gamma`` (if ``scale`` or
    ``rms_scaling``), ``beta`` (if ``center`` and not ``rms_scaling``). Normalizing
    the trailing axes is ``torch.nn.functional.layer_norm``; other axes use
    the same formula by hand. Masks pass through.

    Call: ``layer(x)``, any rank; returns ``x``'s shape.
    """

    def __init__(
        self,
        axis: int | list[int] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        rms_scaling: bool = False,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
                raise TypeError(f"{self.name}: axis must be an int or a non-empty list of ints, got {axis!r}")
            self.axis: int | list[int] = list(axis)
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = axis
        else:
            raise TypeError(f"{self.name}: axis must be an int or a list of ints, got {axis!r}")
        if rms_scaling:
            warnings.warn(f"{self.name}: rms_scaling=True is deprecated in Keras (it scales by the variance, not "
                          "the root mean square); kept for compatibility", stacklevel=2)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        self.beta_initializer = initializers_mod.get(beta_initializer)
        self.gamma_initializer = initializers_mod.get(gamma_initializer)
        self.beta_regularizer = regularizers_mod.get(beta_regularizer)
        self.gamma_regularizer = regularizers_mod.get(gamma_regularizer)
        self.beta_constraint = constraints_mod.get(beta_constraint)
        self.gamma_constraint = constraints_mod.get(gamma_constraint)
        self.supports_masking = True

    def _axes(self, rank: int) -> list[int]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if not all(-rank <= a < rank for a in axes):
            raise ValueError(f"{self.name}: axis {self.axis} is out of range for inputs of rank {rank}")
        return sorted(a % rank for a in axes)

    def build(self, input_shape: Any) -> None:
        """Create ``gamma`` and ``beta`` with the shape of ``input_shape`` on ``axis``."""
        input_shape = tuple(input_shape)
        axes = self._axes(len(input_shape))
        if any(input_shape[a] is None for a in axes):
            raise ValueError(f"{self.name}: the normalized axes {self.axis} of input shape {input_shape} must be known")
        shape = tuple(int(input_shape[a]) for a in axes)
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)

    def input_shape_from_weights(self, weights: dict) -> tuple | None:
        w = weights.get("gamma", weights.get("beta"))
        if isinstance(self.axis, int) and isinstance(w, torch.Tensor) and w.dim() == 1:
            return _axis_shape(self.axis, int(w.shape[0]))
        return None

    def call(self, inputs: Any) -> torch.Tensor:
        x = numeric_input(self, inputs)
        axes = self._axes(x.dim())
        shape = tuple(x.shape[a] for a in axes)
        xc = x.to(_compute_dtype(x))
        gamma = self.gamma.to(xc.dtype) if (self.scale or self.rms_scaling) else None
        beta = self.beta.to(xc.dtype) if (self.center and not self.rms_scaling) else None
        built = gamma if gamma is not None else beta
        if built is not None and tuple(built.shape) != shape:
            raise ValueError(
                f"{self.name}: expected the normalized axes {self.axis} to have sizes {tuple(built.shape)} (the "
                f"shape the layer was built with), got inputs of shape {tuple(x.shape)}"
            )
        trailing = axes == list(range(x.dim() - len(axes), x.dim()))
        if trailing and not self.rms_scaling:
            y = F.layer_norm(xc, shape, gamma, beta, self.epsilon)
        else:
            bshape = [x.shape[d] if d in axes else 1 for d in range(x.dim())]
            var, mean = torch.var_mean(xc, dim=axes, correction=0, keepdim=True)
            y = (xc if self.rms_scaling else xc - mean) * torch.rsqrt(var + self.epsilon)
            if gamma is not None:
                y = y * gamma.reshape(bshape)
            if beta is not None:
                y = y + beta.reshape(bshape)
        return attach_mask(y.to(x.dtype), input_mask(inputs, None))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            axis=self.axis,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            rms_scaling=self.rms_scaling,
            beta_initializer=initializers_mod.serialize(self.beta_initializer),
            gamma_initializer=initializers_mod.serialize(self.gamma_initializer),
            beta_regularizer=regularizers_mod.serialize(self.beta_regularizer),
            gamma_regularizer=regularizers_mod.serialize(self.gamma_regularizer),
            beta_constraint=constraints_mod.serialize(self.beta_constraint),
            gamma_constraint=constraints_mod.serialize(self.gamma_constraint),
        )
        return config

    def extra_repr(self) -> str:
        return f"axis={self.axis}, epsilon={self.epsilon}, name={self.name!r}"
