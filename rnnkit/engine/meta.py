"""The machinery behind ``Layer``'s construction: names, the metaclass, signatures, auto config.

* ``default_name(cls)``: Keras's snake-cased, numbered default layer names;
* ``LayerMeta``: runs ``Layer.finish_init`` once the outermost ``__init__``
  returned (eager building waits for the subclass's attributes), records the
  constructor arguments of classes without their own ``get_config`` (Keras
  3's auto config), and marks ``build()`` as completing the build;
* ``InitSignature``: ``inspect.signature(cls)`` is ``cls.__init__``'s;
* ``eager_build_shape``: the input shape implied by ``input_shape=`` & co.;
* ``unexpected_arguments``: the error for unknown keyword arguments, with hints.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

_name_counts: dict[str, int] = {}


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``SimpleRNNCell`` -> ``simple_rnn_cell``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def default_name(cls: type) -> str:
    base = _snake_case(cls.__name__)
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class LayerMeta(type):
    """Runs ``Layer.finish_init`` once the outermost ``__init__`` returned.

    Eager building (``input_shape=`` ...) must wait until the subclass has set
    its own attributes, which in the Keras 3 style happens after
    ``super().__init__()``. It also records the constructor arguments of a
    class without its own ``get_config`` (see ``Layer.get_config``).
    """

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        if getattr(cls.get_config, "records_constructor", False):
            config, problem = constructor_config(cls, args, kwargs)
            obj.__dict__["_auto_config"] = config
            obj.__dict__["_auto_config_problem"] = problem
        obj.finish_init()
        return obj

    def __init__(cls, name, bases, namespace, **kwargs):
        super().__init__(name, bases, namespace, **kwargs)
        # As Keras 3 does: a completed build() marks the layer built, so that an
        # explicit `layer.build(shape)` in a Keras-3-style class (which does not
        # set `self.built`) is not followed by a second build on the first call.
        build = namespace.get("build")
        if build is not None and not getattr(build, "_sets_built", False):

            @functools.wraps(build)
            def build_then_mark(self, *args, **kw):
                out = build(self, *args, **kw)
                self.built = True
                return out

            build_then_mark._sets_built = True
            cls.build = build_then_mark


class InitSignature:
    """``cls.__signature__``: ``cls.__init__``'s signature without ``self``.

    ``LayerMeta.__call__`` takes ``(*args, **kwargs)``; without this,
    ``inspect.signature(rnnkit.LSTM)``, ``help()`` and IDEs would show that.
    On an instance it is ``call``'s signature when ``forward`` only
    dispatches to ``call`` (else ``None``: ``inspect`` reads ``forward``).
    """

    def __get__(self, instance: Any, owner: type[torch.nn.Module]) -> inspect.Signature | None:
        if instance is not None:
            if getattr(owner.forward, "dispatches_to_call", False):
                return inspect.signature(instance.call)
            return None
        sig = inspect.signature(owner.__init__)  # type: ignore[misc]
        return sig.replace(parameters=list(sig.parameters.values())[1:])


_BASE_CONFIG = ("name", "trainable", "dtype", "activity_regularizer")  # written by Layer.get_config itself
_EAGER_BUILD_ARGS = ("input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size")


def constructor_config(cls: type[torch.nn.Module], args: tuple, kwargs: dict) -> tuple[dict | None, str | None]:
    """Keras 3's auto config: ``(the constructor arguments by name, None)``, or ``(None, problem)``
    when they cannot go back through ``cls(**config)`` (``problem`` names the argument).

    numpy scalars become Python values; any other value that is not plain
    (str, int, float, bool, None, or lists, tuples and str-keyed dicts of
    those) makes the arguments unrecordable.
    """
    try:
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError) as e:
        return None, f"arguments that do not match its __init__ signature ({e})"
    bound.apply_defaults()
    config: dict = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if i == 0:
            continue  # self
        if kind is inspect.Parameter.POSITIONAL_ONLY:
            return None, f"the positional-only argument {name!r}"  # cannot go back through cls(**config)
        if kind is inspect.Parameter.VAR_POSITIONAL and value:
            return None, f"variadic positional arguments (*{name})"
        if kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            config[name] = value
    for key in _BASE_CONFIG:
        config.pop(key, None)
    for key in _EAGER_BUILD_ARGS:
        if config.get(key, 0) is None:
            del config[key]  # unset: the Layer defaults
    try:
        return {key: _plain(value, key) for key, value in config.items()}, None
    except _NotPlain as e:
        return None, str(e)


class _NotPlain(Exception):
    pass


def _plain(value: Any, where: str) -> Any:
    """``value`` as a plain config value (numpy scalars through ``.item()``); ``_NotPlain`` names ``where``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value)):
            return value  # unchanged (a namedtuple or torch.Size stays one)
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise _NotPlain(f"the argument `{where}` = a {type(value).__name__} object (not a plain config value)")


def unexpected_arguments(owner: str, unknown: Iterable[str], accepted: Iterable[str], advice: str) -> TypeError:
    """The error for unexpected keyword arguments, with a "did you mean" hint for each close match.

    ``owner`` names the class, ``accepted`` lists the argument names it takes
    and ``advice`` (starting with a space) ends the message.
    """
    unknown, accepted = sorted(unknown), list(accepted)
    hints = [f"{m[0]!r} for {k!r}" for k in unknown if (m := difflib.get_close_matches(k, accepted, 1))]
    return TypeError(
        f"{owner}: unexpected keyword argument(s) {unknown}"
        + (f"; did you mean {', '.join(hints)}?" if hints else "")
        + advice
    )


def eager_build_shape(name, input_shape, input_dim, input_length, batch_input_shape, batch_size):
    """Full input shape (batch first) implied by Keras's eager-build arguments."""
    if batch_input_shape is not None:
        return tuple(batch_input_shape)
    if input_shape is not None:
        return (batch_size,) + tuple(input_shape)
    if input_dim is not None:
        return (batch_size, input_length, int(input_dim))
    if input_length is not None:
        raise ValueError(f"{name}: input_length= needs input_dim= to build the layer")
    return None
