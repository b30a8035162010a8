"""Name tables and identifier resolution shared by activations, initializers,
regularizers and constraints.

A :class:`Registry` holds one kind's table ``name -> factory`` (a class, or a
function returning an instance) and resolves the identifier forms Keras
accepts for that kind::

    None                                   -> None
    an instance of ``base``                -> itself
    a name ("max_norm", "MaxNorm")         -> factory()
    {"class_name": name, "config": {...}}  -> factory.from_config(config)   (factory(**config) for functions)
    a subclass of ``base``                 -> subclass()
    any other callable                     -> wrap(callable)                (itself by default)

and writes instances (of a :class:`Configurable` base) back as
``{"class_name": ..., "config": ...}``. Every error names the kind, what was
expected, what arrived and the valid names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast


def _a(word: str) -> str:
    """``word`` with its indefinite article: ``"a Constraint"``, ``"an Initializer"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class Configurable:
    """``get_config`` / ``from_config`` / ``__repr__`` of the Initializer, Regularizer and Constraint bases."""

    def get_config(self) -> dict:
        """JSON-friendly constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Any:
        """Rebuild an instance from :meth:`get_config` output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Registry:
    """Resolve and serialize one kind of object (``kind`` names it in errors).

    ``names`` maps every accepted name (class names and Keras aliases) to its
    factory. ``base`` is the kind's base class (``None`` for activations,
    which are plain functions and use only :meth:`lookup`, :meth:`class_name`
    and :meth:`not_understood`). ``expected`` lists the accepted non-name,
    non-dict forms for the "Could not interpret" error. ``wrap`` adapts other
    callables (default: returned as they are). ``label_class``: an invalid
    dict config is reported under the resolved class's name (``MaxNorm``);
    ``False`` repeats the name as given (``'l1_l2'``), for tables whose
    factories are not all classes.
    """

    def __init__(self, kind: str, names: dict, base: type | None = None, expected: str = "None, a callable",
                 wrap: Callable | None = None, label_class: bool = True) -> None:
        self.kind = kind
        self.names = dict(names)
        self.base = base
        self.expected = expected
        self.wrap = wrap
        self.label_class = label_class
        self.valid = ", ".join(sorted(self.names))

    def lookup(self, name: Any) -> Any:
        """The factory registered under ``name``; ``ValueError`` listing the valid names if none."""
        if name not in self.names:
            raise ValueError(f"Unknown {self.kind} {name!r}; expected one of: {self.valid}")
        return self.names[name]

    def class_name(self, identifier: dict) -> Any:
        """``identifier["class_name"]``, or a ``ValueError`` naming the keys that arrived."""
        if "class_name" not in identifier:
            raise ValueError(f"{_a(self.kind).capitalize()} dict must have a 'class_name' key (and optionally "
                             f"'config'); received keys {sorted(identifier)}")
        return identifier["class_name"]

    def not_understood(self, identifier: Any) -> ValueError:
        """The error for an identifier of no accepted form (returned, for the caller to raise)."""
        return ValueError(f"Could not interpret {self.kind} identifier {identifier!r} (type "
                          f"{type(identifier).__name__}); expected {self.expected}, "
                          f"a {{'class_name', 'config'}} dict, or one of: {self.valid}")

    def from_dict(self, identifier: dict) -> Any:
        """Build from ``{"class_name": name, "config": {...}}`` (name lookup only)."""
        name = self.class_name(identifier)
        factory = self.lookup(name)
        config = identifier.get("config") or {}
        try:
            if inspect.isclass(factory):  # registered classes derive from Configurable
                return cast("type[Configurable]", factory).from_config(dict(config))
            return factory(**dict(config))
        except TypeError as err:
            label = factory.__name__ if self.label_class else repr(name)
            raise ValueError(f"Invalid config for {self.kind} {label}: expected its constructor "
                             f"arguments; received {config!r} ({err})") from None

    def _require_base(self) -> type:
        """``base``; a ``TypeError`` for a table without one (activations), which supports no instances."""
        if self.base is None:
            raise TypeError(f"The {self.kind} registry has no base class: only names can be resolved")
        return self.base

    def get(self, identifier: Any) -> Any:
        """Resolve ``identifier`` by the rules in the module docstring."""
        if identifier is None:
            return identifier
        base = self._require_base()
        if isinstance(identifier, base):
            return identifier
        if isinstance(identifier, str):
            return self.lookup(identifier)()
        if isinstance(identifier, dict):
            return self.from_dict(identifier)
        if inspect.isclass(identifier) and issubclass(identifier, base):
            return identifier()
        if callable(identifier):
            return identifier if self.wrap is None else self.wrap(identifier)
        raise self.not_understood(identifier)

    def serialize(self, obj: Any) -> dict | None:
        """``{"class_name": ..., "config": ...}``; ``None`` stays ``None``, names and dicts are resolved first."""
        if obj is None:
            return None
        if isinstance(obj, (str, dict)):
            obj = self.get(obj)
        base = self._require_base()
        if not isinstance(obj, base):
            raise ValueError(f"Cannot serialize {self.kind}: expected {_a(base.__name__)} instance or name; "
                             f"received {obj!r} (type {type(obj).__name__})")
        return {"class_name": type(obj).__name__, "config": cast(Configurable, obj).get_config()}
