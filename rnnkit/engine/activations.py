"""Activation functions with Keras 3 names and semantics, on torch tensors.

Every function takes a tensor (anything ``torch.as_tensor`` accepts is
converted first) and returns a new tensor.  The numerical definitions follow
``keras.activations`` with the torch backend, e.g. ``hard_sigmoid`` is
``relu6(x + 3) / 6`` (the Keras 3 definition, not the Keras 2 ``0.2 x + 0.5``)
and ``gelu`` is the exact (erf) form by default.

Use :func:`get` to resolve a layer's ``activation=`` argument and
:func:`serialize` to turn a function back into its Keras name.
"""

import torch
import torch.nn.functional as F

from rnnkit.engine.registry import Registry

__all__ = [
    "linear", "tanh", "sigmoid", "hard_sigmoid", "legacy_hard_sigmoid", "relu", "elu", "selu",
    "softplus", "softsign", "silu", "swish", "gelu", "exponential",
    "softmax", "log_softmax", "relu6", "leaky_relu", "mish", "hard_silu",
    "hard_swish", "celu", "hard_tanh", "log_sigmoid", "tanh_shrink",
    "get", "serialize",
]


def _t(x):
    """Return ``x`` as a tensor; Python/NumPy floats become float32."""
    if isinstance(x, torch.Tensor):
        return x
    t = torch.as_tensor(x)
    return t.to(torch.float32) if t.dtype == torch.float64 else t


def linear(x):
    """Identity activation: returns ``x`` unchanged."""
    return _t(x)


def tanh(x):
    """Hyperbolic tangent."""
    return torch.tanh(_t(x))


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return torch.sigmoid(_t(x))


def hard_sigmoid(x):
    """Keras 3 hard sigmoid: ``relu6(x + 3) / 6``."""
    return F.hardsigmoid(_t(x))


def legacy_hard_sigmoid(x):
    """Keras 2 / tf.keras 2 hard sigmoid: ``clip(0.2 x + 0.5, 0, 1)`` (files written by Keras 2 use it)."""
    return torch.clamp(0.2 * _t(x) + 0.5, 0.0, 1.0)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit with the optional Keras knobs.

    With defaults this is ``max(x, 0)``.  ``threshold`` zeroes values not
    above it, ``max_value`` clips the positive part and ``negative_slope``
    sets the slope below the threshold: ``negative_slope * (x - threshold)``.
    """
    x = _t(x)
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return F.relu(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return F.leaky_relu(x, negative_slope)
    negative_part = F.relu(threshold - x) if negative_slope != 0.0 else None
    if threshold != 0.0:
        y = torch.where(x > threshold, x, torch.zeros_like(x))
    else:
        y = F.relu(x)
    if max_value is not None:
        y = torch.clamp(y, 0.0, float(max_value))
    if negative_part is not None:
        y = y - negative_slope * negative_part
    return y


def elu(x, alpha=1.0):
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha*(exp(x)-1)``."""
    return F.elu(_t(x), alpha)


def selu(x):
    """Scaled ELU with the fixed self-normalising constants."""
    return F.selu(_t(x))


def softplus(x):
    """``log(1 + exp(x))`` (torch's numerically safe form)."""
    return F.softplus(_t(x))


def softsign(x):
    """``x / (1 + |x|)``."""
    return F.softsign(_t(x))


def silu(x):
    """Sigmoid linear unit / swish: ``x * sigmoid(x)``."""
    return F.silu(_t(x))


swish = silu


def gelu(x, approximate=False):
    """Gaussian error linear unit; exact erf form unless ``approximate``."""
    return F.gelu(_t(x), approximate="tanh" if approximate else "none")


def exponential(x):
    """``exp(x)``."""
    return torch.exp(_t(x))


def softmax(x, axis=-1):
    """Softmax along ``axis`` (the last one by default)."""
    return torch.softmax(_t(x), dim=axis)


def log_softmax(x, axis=-1):
    """Log of the softmax along ``axis``."""
    return torch.log_softmax(_t(x), dim=axis)


def relu6(x):
    """ReLU clipped at 6: ``min(max(x, 0), 6)``."""
    return F.relu6(_t(x))


def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU with the Keras default ``negative_slope=0.2``."""
    return F.leaky_relu(_t(x), negative_slope)


def mish(x):
    """Mish: ``x * tanh(softplus(x))``."""
    x = _t(x)
    return x * torch.tanh(F.softplus(x))


def hard_silu(x):
    """Hard SiLU / hard swish: ``x * relu6(x + 3) / 6``."""
    return F.hardswish(_t(x))


hard_swish = hard_silu


def celu(x, alpha=1.0):
    """Continuously differentiable ELU: ``max(0,x)+min(0,alpha*(exp(x/alpha)-1))``."""
    return F.celu(_t(x), alpha)


def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return F.hardtanh(_t(x), -1.0, 1.0)


def log_sigmoid(x):
    """``log(sigmoid(x))``, computed stably."""
    return F.logsigmoid(_t(x))


def tanh_shrink(x):
    """``x - tanh(x)``."""
    return F.tanhshrink(_t(x))


# Canonical Keras name -> function.  Aliases are added separately so that
# serialize() always reports the canonical name.
_CANONICAL = {
    fn.__name__: fn
    for fn in (
        linear, tanh, sigmoid, hard_sigmoid, legacy_hard_sigmoid, relu, elu, selu, softplus,
        softsign, silu, gelu, exponential, softmax, log_softmax, relu6,
        leaky_relu, mish, hard_silu, celu, hard_tanh, log_sigmoid,
        tanh_shrink,
    )
}
_ALIASES = {"swish": silu, "hard_swish": hard_silu}
_BY_NAME = {**_CANONICAL, **_ALIASES}
_NAME_OF = {id(fn): name for name, fn in _CANONICAL.items()}
_REGISTRY = Registry("activation", _BY_NAME)


def get(identifier):
    """Resolve an activation identifier to a callable.

    Accepts ``None`` (-> :func:`linear`), a Keras name such as ``"tanh"``,
    a callable (returned as is), or a Keras serialized dict such as
    ``{"class_name": "function", "config": "tanh"}`` or
    ``{"class_name": "tanh", "config": {}}``.  Anything else raises
    ``ValueError`` describing what was expected and what arrived.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return _REGISTRY.lookup(identifier)
    if isinstance(identifier, dict):
        class_name = _REGISTRY.class_name(identifier)
        config = identifier.get("config")
        if isinstance(config, str):
            return _REGISTRY.lookup(config)
        registered = identifier.get("registered_name")
        if class_name == "function" and isinstance(registered, str):
            return _REGISTRY.lookup(registered)
        return _REGISTRY.lookup(class_name)
    if callable(identifier):
        return identifier
    raise _REGISTRY.not_understood(identifier)


def serialize(fn):
    """Return the Keras name of a built-in activation, else ``fn.__name__``.

    Strings are validated and returned in canonical form (``"swish"`` ->
    ``"silu"``); ``None`` serializes as ``"linear"``.
    """
    if fn is None or isinstance(fn, str):
        fn = get(fn)
    name = _NAME_OF.get(id(fn))
    if name is not None:
        return name
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise ValueError(
            "Cannot serialize activation: expected a built-in activation or a "
            f"function with a __name__; received {fn!r} "
            f"(type {type(fn).__name__})"
        )
    return name
