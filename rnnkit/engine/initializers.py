"""Weight initializers with Keras 3 names, arguments, defaults and math.

``init(shape, dtype=torch.float32)`` returns a fresh tensor (not a Parameter).
Random initializers take ``seed``: an int seeds a private ``torch.Generator``
on every call, so repeated calls give identical values (as in Keras 3);
``None`` uses the global torch RNG (``torch.manual_seed`` controls it).
Samples are drawn in float32 (float64 if asked for) and then cast.
"""

import math
import numbers

import torch

from rnnkit.engine.registry import Configurable, Registry

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "compute_fans", "get", "serialize"]

# Std of a unit normal truncated to [-2, 2]; Keras divides by it so that the
# truncated samples keep the requested variance.
_TRUNC_STD = 0.87962566103423978


def _shape(shape):
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _dtype(dtype):
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"Expected a torch.dtype or dtype name; received {dtype!r}")


def compute_fans(shape):
    """Return Keras's ``(fan_in, fan_out)`` for a weight shape of any rank.

    Rank 0: (1, 1); rank 1: (n, n); rank 2: (rows, cols); rank > 2 is read
    as a conv kernel ``(*spatial, in, out)`` with the receptive field
    ``prod(spatial)`` multiplying both fans.
    """
    shape = _shape(shape)
    if len(shape) < 2:
        return (shape[0], shape[0]) if shape else (1, 1)
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer(Configurable):
    """Base class: subclasses implement ``__call__(shape, dtype)``."""

    def __call__(self, shape, dtype=torch.float32):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype)")


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(_shape(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(_shape(shape), dtype=_dtype(dtype))


class Constant(Initializer):
    """Every element equals ``value`` (a scalar, or anything broadcastable)."""

    def __init__(self, value=0.0):
        if hasattr(value, "tolist"):  # tensors / NumPy values -> plain Python
            value = value.tolist()
        self.value = value

    def __call__(self, shape, dtype=torch.float32):
        value = torch.as_tensor(self.value, dtype=_dtype(dtype))
        return value.expand(_shape(shape)).clone()

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the (possibly rectangular) identity matrix; 2-D only."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=torch.float32):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError("Identity initializer expects a 2-D shape (rows, cols); "
                             f"received shape={shape} of rank {len(shape)}")
        return (self.gain * torch.eye(*shape, dtype=torch.float64)).to(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    """Base for random initializers: holds and validates ``seed``."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"Expected seed to be None or an int; received {seed!r} "
                             f"(type {type(seed).__name__})")
        self.seed = None if seed is None else int(seed)

    def _generator(self):
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def _work_dtype(self, dtype):
        dtype = _dtype(dtype)
        if not dtype.is_floating_point:
            raise ValueError(f"{type(self).__name__} expects a floating dtype; received {dtype}")
        return dtype, torch.float64 if dtype == torch.float64 else torch.float32

    def _normal(self, shape, mean, stddev, dtype):
        dtype, work = self._work_dtype(dtype)
        x = torch.randn(_shape(shape), generator=self._generator(), dtype=work)
        return (x * stddev + mean).to(dtype)

    def _uniform(self, shape, minval, maxval, dtype):
        dtype, work = self._work_dtype(dtype)
        x = torch.rand(_shape(shape), generator=self._generator(), dtype=work)
        return (x * (maxval - minval) + minval).to(dtype)

    def _truncated_normal(self, shape, mean, stddev, dtype):
        """Normal truncated at +-2 stddev, sampled by inverse CDF."""
        dtype, _ = self._work_dtype(dtype)
        edge = math.erf(2 / math.sqrt(2))  # P(|z| < 2) for a unit normal
        u = torch.rand(_shape(shape), generator=self._generator(), dtype=torch.float64)
        z = (math.sqrt(2.0) * torch.erfinv((2 * u - 1) * edge)).clamp_(-2.0, 2.0)
        return (z * stddev + mean).to(dtype)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    """Normal samples with the given ``mean`` and ``stddev``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = mean, stddev
        super().__init__(seed)

    def __call__(self, shape, dtype=torch.float32):
        return self._normal(shape, self.mean, self.stddev, dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal samples restricted to ``mean +- 2 * stddev``.

    ``stddev`` is that of the parent normal, as in Keras, so the samples'
    actual std is about ``0.88 * stddev``.
    """

    def __call__(self, shape, dtype=torch.float32):
        return self._truncated_normal(shape, self.mean, self.stddev, dtype)


class RandomUniform(RandomInitializer):
    """Uniform samples in ``[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = minval, maxval
        super().__init__(seed)

    def __call__(self, shape, dtype=torch.float32):
        return self._uniform(shape, self.minval, self.maxval, dtype)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Samples with variance ``scale / n``, ``n`` picked by ``mode``.

    ``mode`` is ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``; ``distribution``
    is ``"truncated_normal"`` (alias ``"normal"``), ``"untruncated_normal"``
    or ``"uniform"`` (limit ``sqrt(3 * scale / n)``).  ``input_axes`` /
    ``output_axes`` optionally name the axes whose sizes multiply into the
    fans, as in Keras.
    """

    _MODES = ("fan_avg", "fan_in", "fan_out")
    _DISTRIBUTIONS = ("truncated_normal", "uniform", "untruncated_normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if not scale > 0.0:
            raise ValueError(f"Expected scale > 0; received scale={scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"Expected mode in {self._MODES}; received mode={mode!r}")
        dist = str(distribution).lower()
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in self._DISTRIBUTIONS:
            raise ValueError(f"Expected distribution in {self._DISTRIBUTIONS} or 'normal'; "
                             f"received distribution={distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, dist
        self.input_axes, self.output_axes = input_axes, output_axes
        super().__init__(seed)

    def _fans(self, shape):
        if self.input_axes is not None and self.output_axes is not None:
            shape = _shape(shape)
            return (math.prod(shape[a] for a in self.input_axes),
                    math.prod(shape[a] for a in self.output_axes))
        return compute_fans(shape)

    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = self._fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return self._truncated_normal(shape, 0.0, math.sqrt(scale) / _TRUNC_STD, dtype)
        if self.distribution == "untruncated_normal":
            return self._normal(shape, 0.0, math.sqrt(scale), dtype)
        limit = math.sqrt(3.0 * scale)
        return self._uniform(shape, -limit, limit, dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def _preset(name, scale, mode, distribution, doc):
    """Build a fixed-parameter VarianceScaling subclass (Glorot, He, Lecun)."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                          "__doc__": doc, "__module__": __name__})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                        "Uniform in +-sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Truncated normal with variance 2 / (fan_in + fan_out).")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform", "Uniform in +-sqrt(6 / fan_in).")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                   "Truncated normal with variance 2 / fan_in.")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform", "Uniform in +-sqrt(3 / fan_in).")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                      "Truncated normal with variance 1 / fan_in.")


class Orthogonal(RandomInitializer):
    """``gain`` times a random orthogonal matrix (Keras semantics).

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; the QR
    decomposition of a normal matrix of shape ``(max, min)`` of those sizes
    is sign-corrected by ``sign(diag(R))`` and transposed when there are
    fewer rows than columns, so rows or columns are orthonormal.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed)

    def __call__(self, shape, dtype=torch.float32):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError("Orthogonal initializer expects a shape of rank >= 2; "
                             f"received shape={shape} of rank {len(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        dtype, work = self._work_dtype(dtype)
        a = torch.randn((max(rows, cols), min(rows, cols)), generator=self._generator(), dtype=work)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


class _FunctionInitializer(Initializer):
    """Adapter so a plain ``fn(shape, dtype)`` behaves like an Initializer."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, shape, dtype=torch.float32):
        return torch.as_tensor(self.fn(shape, dtype), dtype=_dtype(dtype))


_SNAKE = {"zeros": Zeros, "ones": Ones, "constant": Constant, "identity": Identity,
          "random_normal": RandomNormal, "random_uniform": RandomUniform,
          "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
          "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
          "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
          "orthogonal": Orthogonal}
# CamelCase class names, plus Keras's backward-compatible aliases.
_BY_NAME = {**{c.__name__: c for c in _SNAKE.values()}, **_SNAKE,
            "zero": Zeros, "one": Ones, "normal": RandomNormal, "uniform": RandomUniform,
            "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal}
_REGISTRY = Registry("initializer", _BY_NAME, Initializer,
                     expected="None, a number, a callable, an Initializer", wrap=_FunctionInitializer)


def get(identifier):
    """Resolve an initializer identifier to an :class:`Initializer`.

    ``None`` -> ``None``; a name (``"glorot_uniform"`` or ``"GlorotUniform"``)
    -> a default instance; a ``{"class_name", "config"}`` dict -> instance via
    ``from_config`` (name lookup only); an Initializer instance -> itself; an
    Initializer subclass -> a default instance; a real number -> ``Constant``;
    any other callable ``fn(shape, dtype)`` -> a wrapping Initializer.
    """
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        return Constant(float(identifier))
    return _REGISTRY.get(identifier)


def serialize(initializer):
    """Return ``{"class_name": ..., "config": ...}`` as Keras writes it.

    ``None`` serializes to ``None``; names, dicts, numbers and classes are
    resolved first. Wrapped plain callables cannot be serialized and raise
    ``ValueError``.
    """
    if initializer is not None and not isinstance(initializer, Initializer):
        initializer = get(initializer)
    if isinstance(initializer, _FunctionInitializer):
        raise ValueError("Cannot serialize initializer: expected an Initializer instance or name; "
                         f"received the plain callable {initializer.fn!r}")
    return _REGISTRY.serialize(initializer)
