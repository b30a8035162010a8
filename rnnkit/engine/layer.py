"""``Layer``: a ``torch.nn.Module`` that speaks the Keras layer protocol.

What a Keras user expects, on a PyTorch module:

* ``build(input_shape)`` runs once, before the first call, with the input's
  shape; ``add_weight(...)`` creates ``torch.nn.Parameter`` objects there.
* ``input_shape=``, ``input_dim=`` (+ ``input_length=``) or
  ``batch_input_shape=`` at construction build the layer eagerly, so that
  ``optimizer = torch.optim.Adam(layer.parameters())`` works at once. A
  lazily built layer needs one forward call (or ``layer.build(shape)``) first.
* ``get_weights()`` / ``set_weights()`` exchange numpy arrays in Keras order:
  the layer's own weights (trainable, then non-trainable, each in creation
  order), then those of its sub-layers in the order they were attached.
* ``get_config()`` / ``from_config()`` round-trip the constructor arguments.
* ``losses`` lists the regularization penalties of the weights (and the
  activity penalty of the last call), ready to add to a loss.
* ``apply_constraints()`` projects constrained weights; call it after each
  optimizer step (torch optimizers know nothing of Keras constraints).

Subclasses override ``call`` (Keras style) or ``forward`` (PyTorch style).
Both the Keras 3 style (``super().__init__()`` first) and the TF 2.0 style
(attributes set before ``super().__init__()``, ``self.built = True`` at the end
of ``build``) work.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch

from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.dtypes import resolve_dtype

_name_counts: dict[str, int] = {}


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``SimpleRNNCell`` -> ``simple_rnn_cell``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _default_name(cls: type) -> str:
    base = _snake_case(cls.__name__)
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class _LayerMeta(type):
    """Runs ``Layer._finish_init`` once the outermost ``__init__`` returned.

    Eager building (``input_shape=`` ...) must wait until the subclass has set
    its own attributes, which in the Keras 3 style happens after
    ``super().__init__()``. It also records the constructor arguments of a
    class without its own ``get_config`` (see ``Layer.get_config``).
    """

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        if cls.get_config is Layer.get_config:
            obj.__dict__["_auto_config"] = _constructor_config(cls, args, kwargs)
        obj._finish_init()
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


class _InitSignature:
    """``cls.__signature__``: ``cls.__init__``'s signature without ``self``.

    ``_LayerMeta.__call__`` takes ``(*args, **kwargs)``; without this,
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


class Layer(torch.nn.Module, metaclass=_LayerMeta):
    """Base class of every rnnkit layer and cell (see module docstring)."""

    __signature__ = _InitSignature()

    def __init__(
        self,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        input_shape: tuple | None = None,
        input_dim: int | None = None,
        input_length: int | None = None,
        batch_input_shape: tuple | None = None,
        batch_size: int | None = None,
        activity_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        # Attributes set by a TF-2.0-style subclass before this call survive:
        # torch.nn.Module.__init__ does not clear the instance dict.
        preset_built = self.__dict__.get("built", False)
        # Sub-modules / parameters a TF-2.0-style subclass assigned before this
        # call (see __setattr__) survive torch's re-initialisation.
        early = {k: self.__dict__[k] for k in ("_parameters", "_buffers", "_modules") if k in self.__dict__}
        super().__init__()
        for k, v in early.items():
            getattr(self, k).update(v)
        if kwargs:
            import difflib
            import inspect

            # The names the constructors down to here accept (each __init__ that forwards **kwargs adds its base's).
            accepted: set[str] = set()
            for klass in type(self).__mro__:
                if "__init__" not in vars(klass):
                    continue
                params = inspect.signature(vars(klass)["__init__"]).parameters.values()
                accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}
                if klass is Layer or all(p.kind is not p.VAR_KEYWORD for p in params):
                    break
            hints = [f"{m[0]!r} for {k!r}" for k in sorted(kwargs) if (m := difflib.get_close_matches(k, accepted, 1))]
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
                + (f"; did you mean {', '.join(hints)}?" if hints else "")
                + f" See help({type(self).__name__}) for the accepted arguments."
            )
        self.name = name or _default_name(type(self))
        self._dtype = resolve_dtype(dtype, f"layer {self.name!r}")
        self._trainable = bool(trainable)
        self.built = preset_built
        self._weight_records: list[dict] = []
        self._activity_losses: list[torch.Tensor] = []
        self.activity_regularizer = regularizers_mod.get(activity_regularizer)
        self._build_shape = _eager_build_shape(
            self.name, input_shape, input_dim, input_length, batch_input_shape, batch_size
        )

    # ------------------------------------------------------------------ build
    def _finish_init(self) -> None:
        if not self._trainable:
            self.trainable = False  # reach the sub-layers created in __init__
        shape = self.__dict__.get("_build_shape")
        if shape is not None and not self.built:
            self.build(shape)
            self.built = True

    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape``; runs once."""
        self.built = True

    def build_from(self, inputs: Any) -> None:
        """Build the layer from a first input (its shape), if not built yet."""
        if self.built:
            return
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        shape = tuple(x.shape) if hasattr(x, "shape") else None
        if shape is None:
            raise TypeError(
                f"{self.name}: cannot build from an input of type {type(inputs).__name__}; expected a tensor"
            )
        self.build(shape)
        self.built = True
        if isinstance(x, torch.Tensor) and x.device.type != "cpu":
            self.to(x.device)  # weights are created on the CPU; follow the first input

    def input_shape_from_weights(self, weights: dict) -> tuple | None:
        """The input shape (batch first, None where unknown) that stored ``weights`` imply, or None.

        ``weights`` is this layer's part of a ``state_dict``, keys relative to
        the layer. The default reads a 2-D ``kernel`` ``(input_dim, ...)``
        (the built-in cells, ``Dense``); a layer whose weights do not tell its
        input shape (``ConvLSTMCell``: the spatial size) returns None.
        """
        kernel = weights.get("kernel")
        if isinstance(kernel, torch.Tensor) and kernel.dim() == 2:
            return (None, int(kernel.shape[0]))
        return None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # A lazily built layer is built from the stored shapes first, as torch's lazy modules are.
        if not self.built:
            self._build_from_state_dict(state_dict, prefix, error_msgs)
        self.__dict__["_loading_assign"] = bool(local_metadata.get("assign_to_params_buffers", False))
        try:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                          error_msgs)
        finally:
            self.__dict__["_loading_assign"] = False

    def _build_from_state_dict(self, state_dict, prefix: str, error_msgs: list) -> None:
        """Build with the input shape the stored weights imply, when some of them have no place yet."""
        ours = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        absent = set(ours) - set(self.state_dict(keep_vars=True))
        if not absent:
            return
        shape = self.input_shape_from_weights(ours)
        if shape is not None:
            self.build(shape)
            self.built = True
        elif any("." not in k for k in absent):  # own weights (sub-layers build themselves)
            error_msgs.append(
                f"{self.name} ({type(self).__name__}) is not built and its input shape cannot be inferred from "
                f"the stored weights {sorted(absent)}: build it first (layer.build(input_shape) or one call), "
                "then load the state_dict"
            )

    def _apply(self, fn, recurse: bool = True):
        # .to()/.double()/.half()/to_empty() before the layer is built: weights built later follow them.
        probe = fn(torch.empty(0, dtype=self.__dict__.get("_dtype") or torch.get_default_dtype()))
        if isinstance(probe, torch.Tensor):
            if probe.is_floating_point():
                self.__dict__["_dtype"] = probe.dtype
            self.__dict__["_device_hint"] = probe.device
        return super()._apply(fn, recurse)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.__dict__.get("built", False):
            first = args[0] if args else next(iter(kwargs.values()), None)
            self.build_from(first)
        outputs = super().__call__(*args, **kwargs)
        self.record_activity(outputs)
        return outputs

    def record_activity(self, outputs: Any) -> None:
        """Activity-regularization penalties of this call's outputs (see ``losses``)."""
        reg = self.__dict__.get("activity_regularizer")
        if reg is not None:
            leaves = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            self._activity_losses = [reg(o) for o in leaves if isinstance(o, torch.Tensor)]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    forward.dispatches_to_call = True  # type: ignore[attr-defined]  # read by core.protocol.cell_method

    def call(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must override `call` or `forward`")

    # ---------------------------------------------------------------- weights
    @property
    def dtype(self) -> torch.dtype:
        for rec in self.__dict__.get("_weight_records", ()):  # per call: weight_by_key inlined
            p = self._parameters.get(rec["key"])
            return (p if p is not None else getattr(self, rec["key"])).dtype
        return self.__dict__.get("_dtype", torch.get_default_dtype())

    def weight_by_key(self, key: str) -> torch.Tensor:
        """The live tensor of this layer's weight ``key`` (looked up by name when used).

        The registered parameter, or, under a ``torch.nn.utils.parametrize``
        parametrization (``weight_norm`` ...), the parametrized value: records
        never hold tensors, so ``load_state_dict(assign=True)``, ``to_empty()``
        and parametrizations never leave them stale.
        """
        p = self._parameters.get(key)
        return p if p is not None else getattr(self, key)

    def add_weight(
        self,
        shape: tuple = (),
        initializer: Any = None,
        name: str | None = None,
        regularizer: Any = None,
        constraint: Any = None,
        trainable: bool = True,
        dtype: Any = None,
        **_keras_only: Any,
    ) -> torch.nn.Parameter:
        """Create, register and return a ``torch.nn.Parameter`` of ``shape``.

        ``initializer`` defaults to ``glorot_uniform`` (Keras's default for
        float weights). ``_keras_only`` swallows Keras arguments with no torch
        meaning (``autocast``, ``aggregation``, ``use_resource``...).
        """
        dtype = resolve_dtype(dtype, f"layer {self.name!r}") if dtype is not None else self._dtype
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        init = initializers_mod.get(initializer if initializer is not None else "glorot_uniform")
        with torch.no_grad():
            value = init(shape, dtype=dtype)
        value = torch.as_tensor(value, dtype=dtype, device=self.__dict__.get("_device_hint"))
        param = torch.nn.Parameter(value, requires_grad=bool(trainable) and self._trainable)
        base = re.sub(r"\W", "_", name or "weight")
        key, i = base, 1
        while key in self._parameters or hasattr(type(self), key):
            key, i = f"{base}_{i}", i + 1
        self.register_parameter(key, param)
        self._weight_records.append(
            {
                "name": name or key,
                "key": key,
                "trainable": bool(trainable),
                "regularizer": regularizers_mod.get(regularizer),
                "constraint": constraints_mod.get(constraint),
            }
        )
        return param

    def __setattr__(self, name: str, value: Any) -> None:
        # `self.kernel = self.add_weight(name="w")` keeps one registration,
        # under the attribute name, so state_dict holds no duplicates.
        if "_modules" not in self.__dict__ and isinstance(value, (torch.nn.Module, torch.nn.Parameter)):
            # TF 2.0 style: a sub-layer assigned before super().__init__().
            torch.nn.Module.__init__(self)
        records = self.__dict__.get("_weight_records")
        if isinstance(value, torch.nn.Parameter) and records is not None:
            params = self._parameters
            rec = next((r for r in records if params.get(r["key"]) is value), None)
            if rec is None and self.__dict__.get("_loading_assign"):
                # load_state_dict(assign=True): a new tensor for the same weight, which keeps its record
                rec = next((r for r in records if r["key"] == name), None)
            # A weight replaced under this attribute name is no longer the layer's.
            records[:] = [r for r in records if r is rec or r["key"] != name]
            if rec is None:
                # A plain torch Parameter (PyTorch style) is one of the layer's own weights too.
                records.append({"name": name, "key": name, "trainable": value.requires_grad,
                                "regularizer": None, "constraint": None})
                if not self._trainable:
                    value.requires_grad_(False)
            elif rec["key"] != name:
                self._parameters.pop(rec["key"], None)
                rec["key"] = name
        super().__setattr__(name, value)

    def _sublayers(self) -> Iterator[torch.nn.Module]:
        """Direct sub-layers (through containers), in attachment order."""

        def walk(module):
            for child in module.children():
                containers = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Sequential)
                if isinstance(child, Layer) or not isinstance(child, containers):
                    yield child
                else:
                    yield from walk(child)

        return walk(self)

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        if not self._trainable:
            return []
        own = [self.weight_by_key(r["key"]) for r in self._weight_records if r["trainable"]]
        return own + [w for sub in self._sublayers() for w in _sub_weights(sub, True)]

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        if not self._trainable:
            return self.weights
        own = [self.weight_by_key(r["key"]) for r in self._weight_records if not r["trainable"]]
        return own + [w for sub in self._sublayers() for w in _sub_weights(sub, False)]

    @property
    def weights(self) -> list[torch.Tensor]:
        return [w for _, _, w in self._weight_slots()]

    def _weight_slots(self) -> list[tuple[Layer | None, str | None, torch.Tensor]]:
        """``(owner, key, tensor)`` per weight in ``weights`` order; ``owner`` None for plain torch modules."""
        records = self._weight_records
        own = [r for r in records if r["trainable"]] + [r for r in records if not r["trainable"]]
        slots: list[tuple[Layer | None, str | None, torch.Tensor]] = [
            (self, r["key"], self.weight_by_key(r["key"])) for r in own
        ]
        for sub in self._sublayers():
            if isinstance(sub, Layer) and type(sub).weights is Layer.weights:
                slots += sub._weight_slots()
            else:
                slots += [(None, None, w) for w in _sub_weights(sub, None)]
        return slots

    def get_weights(self) -> list[np.ndarray]:
        """Weights as numpy arrays, in Keras order and layout."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights: list) -> None:
        """Set every weight from a list of arrays in Keras order and layout.

        A parametrized weight (``weight_norm`` ...) is assigned through its
        parametrization's ``right_inverse``.
        """
        slots = self._weight_slots() if type(self).weights is Layer.weights else [(None, None, w) for w in self.weights]
        params = [w for _, _, w in slots]
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"{self.name}: set_weights expected {len(params)} arrays "
                f"(shapes {[tuple(p.shape) for p in params]}), got {len(weights)}"
            )
        for i, (p, w) in enumerate(zip(params, weights)):
            arr = w.detach().cpu() if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w))
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(
                    f"{self.name}: set_weights array {i} has shape {tuple(arr.shape)}, expected {tuple(p.shape)}"
                )
        with torch.no_grad():
            for (owner, key, p), w in zip(slots, weights):
                arr = w.detach() if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w))
                arr = arr.to(dtype=p.dtype, device=p.device)
                if owner is not None and key not in owner._parameters:
                    assert key is not None  # a Layer's own slots always carry their weight key
                    setattr(owner, key, arr)  # parametrized: through right_inverse
                else:
                    p.copy_(arr)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for rec in self._weight_records:
            for p in self._leaf_params(rec["key"]):
                p.requires_grad_(rec["trainable"] and self._trainable)
        for sub in self._sublayers():
            if isinstance(sub, Layer):
                sub.trainable = value
            else:
                sub.requires_grad_(bool(value))

    # ------------------------------------------------- regularizers, constraints
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization penalties of all weights plus activity penalties."""
        out = self._own_losses()
        for sub in self._sublayers():
            if isinstance(sub, Layer):
                out += sub.losses
        return out

    def _own_losses(self) -> list[torch.Tensor]:
        """This layer's own penalties: its weights' regularizers and its activity penalties."""
        records = [r for r in self._weight_records if r["regularizer"] is not None]
        return [r["regularizer"](self.weight_by_key(r["key"])) for r in records] + list(self._activity_losses)

    def _leaf_params(self, key: str) -> list[torch.nn.Parameter]:
        """The parameters behind weight ``key``: itself, or a parametrization's originals."""
        p = self._parameters.get(key)
        if p is not None:
            return [p]
        # torch.nn.utils.parametrize registers ``parametrizations`` as a ModuleDict keyed by weight name
        parametrizations = cast("torch.nn.ModuleDict | None", self._modules.get("parametrizations"))
        if parametrizations is None or key not in parametrizations:
            return []
        return list(parametrizations[key].parameters())

    def apply_constraints(self) -> None:
        """Project every constrained weight in place (call after optimizer.step())."""
        with torch.no_grad():
            for rec in self._weight_records:
                if rec["constraint"] is not None:
                    key = rec["key"]
                    value = rec["constraint"](self.weight_by_key(key))
                    if key in self._parameters:
                        param = self._parameters[key]
                        assert param is not None, f"weight {key!r} is registered as None"
                        param.copy_(value)
                    else:
                        setattr(self, key, value)  # parametrized: through right_inverse
            for sub in self._sublayers():
                if isinstance(sub, Layer):
                    sub.apply_constraints()

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        """``name``, ``trainable``, ``dtype`` (and ``activity_regularizer``), plus, for a class that
        does not define ``get_config``, its constructor arguments, recorded at construction.

        As Keras 3: the recorded arguments (defaults included, ``**kwargs``
        expanded) are used only when every value is a plain config value
        (str, int, float, bool, None, or lists, tuples and str-keyed dicts of
        those); a class with other arguments (a cell object, a function)
        defines ``get_config`` / ``from_config`` itself.
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": str(self.dtype).replace("torch.", "")}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers_mod.serialize(self.activity_regularizer)
        auto = self.__dict__.get("_auto_config")
        if auto is not None and type(self).get_config is Layer.get_config:
            params = inspect.signature(type(self).__init__).parameters
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                config = {k: v for k, v in config.items() if k in params}  # only what __init__ takes back
            config.update(auto)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Layer:
        return cls(**config)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    # ------------------------------------------------------------------ masks
    @property
    def supports_masking(self) -> bool:
        """Whether :meth:`compute_mask` passes a mask on.

        As Keras 3: True when a subclass overrides ``compute_mask``, unless set
        (``self.supports_masking = ...``).
        """
        value = self.__dict__.get("_supports_masking")
        return type(self).compute_mask is not Layer.compute_mask if value is None else value

    @supports_masking.setter
    def supports_masking(self, value: bool) -> None:
        self._supports_masking = bool(value)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of this layer's output (Keras 3's default: ``mask`` if ``supports_masking``, else None).

        ``mask`` is the input's boolean ``(batch, timesteps)`` mask (True = use
        the step) or None. Containers (``rnnkit.Sequential``) call it to pass
        masks from layer to layer.
        """
        return mask if self.supports_masking else None

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def regularization_losses(model: torch.nn.Module) -> list[torch.Tensor]:
    """Every regularization penalty of ``model``, each counted once: the total is ``sum(...)``.

    Walks the whole module tree (``model.modules()``, plain torch containers
    holding rnnkit layers included, shared modules once) and takes each
    rnnkit layer's own penalties: its weights' regularizers and the activity
    penalties of its last call. Summing ``layer.losses`` over
    ``model.modules()`` instead counts a penalty once per enclosing layer::

        loss = criterion(model(x), y) + sum(rnnkit.regularization_losses(model))
    """
    return [loss for m in model.modules() if isinstance(m, Layer) for loss in m._own_losses()]


_BASE_CONFIG = ("name", "trainable", "dtype", "activity_regularizer")  # written by Layer.get_config itself
_EAGER_BUILD_ARGS = ("input_shape", "input_dim", "input_length", "batch_input_shape", "batch_size")


def _constructor_config(cls: type[Layer], args: tuple, kwargs: dict) -> dict | None:
    """Keras 3's auto config: the constructor arguments by name, or None when they are not plain values."""
    try:
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    config: dict = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if i == 0:
            continue  # self
        if kind is inspect.Parameter.POSITIONAL_ONLY or (kind is inspect.Parameter.VAR_POSITIONAL and value):
            return None  # cannot go back through cls(**config)
        if kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            config[name] = value
    for key in _BASE_CONFIG:
        config.pop(key, None)
    for key in _EAGER_BUILD_ARGS:
        if config.get(key, 0) is None:
            del config[key]  # unset: the Layer defaults
    return config if _plain(config) else None


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _sub_weights(module: torch.nn.Module, trainable: bool | None) -> list[torch.Tensor]:
    if isinstance(module, Layer):
        if trainable is None:
            return module.weights
        return module.trainable_weights if trainable else module.non_trainable_weights
    params: list[torch.Tensor] = list(module.parameters())
    if trainable is None:
        return params
    return [p for p in params if p.requires_grad == trainable]


def _eager_build_shape(name, input_shape, input_dim, input_length, batch_input_shape, batch_size):
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
