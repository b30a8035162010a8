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

import inspect
from typing import Any

import torch

from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.dtypes import resolve_dtype
from rnnkit.engine.meta import InitSignature, LayerMeta, default_name, eager_build_shape, unexpected_arguments
from rnnkit.engine.symbolic import is_symbolic, symbolic_call
from rnnkit.engine.weights import WeightsMixin


class Layer(WeightsMixin, metaclass=LayerMeta):
    """Base class of every rnnkit layer and cell (see module docstring)."""

    __signature__ = InitSignature()

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
            # The names the constructors down to here accept (each __init__ that forwards **kwargs adds its base's).
            accepted: set[str] = set()
            for klass in type(self).__mro__:
                if "__init__" not in vars(klass):
                    continue
                params = inspect.signature(vars(klass)["__init__"]).parameters.values()
                accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}
                if klass is Layer or all(p.kind is not p.VAR_KEYWORD for p in params):
                    break
            raise unexpected_arguments(type(self).__name__, kwargs, sorted(accepted),
                                       f" See help({type(self).__name__}) for the accepted arguments.")
        self.name = name or default_name(type(self))
        self._dtype = resolve_dtype(dtype, f"layer {self.name!r}")
        self._trainable = bool(trainable)
        self.built = preset_built
        self._weight_records: list[dict] = []
        self._activity_losses: list[torch.Tensor] = []
        self.activity_regularizer = regularizers_mod.get(activity_regularizer)
        self._build_shape = eager_build_shape(
            self.name, input_shape, input_dim, input_length, batch_input_shape, batch_size
        )

    # ------------------------------------------------------------------ build
    def finish_init(self) -> None:
        """Called by the metaclass once the outermost ``__init__`` returned: apply
        ``trainable=False`` to the sub-layers and build eagerly (``input_shape=`` ...)."""
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
        if args and type(args[0]) is not torch.Tensor and is_symbolic(args[0]):  # wiring a functional model
            if len(args) > 1:
                raise TypeError(f"{self.name}: on symbolic inputs pass the other call arguments by keyword "
                                f"(initial_state=..., mask=...), got {len(args) - 1} more positional")
            return symbolic_call(self, args[0], kwargs)
        if not self.__dict__.get("built", False):
            if torch.jit.is_tracing():
                raise RuntimeError(
                    f"{self.name}: build the layer before torch.jit.trace (call it once, or layer.build(shape)): "
                    "weights created while tracing would be recorded as part of the trace"
                )
            first = args[0] if args else next(iter(kwargs.values()), None)
            self.build_from(first)
        outputs = super().__call__(*args, **kwargs)
        if self.__dict__.get("activity_regularizer") is not None:
            self.record_activity(outputs)
        return outputs

    def record_activity(self, outputs: Any) -> None:
        """Activity-regularization penalties of this call's outputs (see ``losses``)."""
        reg = self.__dict__.get("activity_regularizer")
        if reg is not None:
            leaves = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            # (per-call bookkeeping, not configuration: set without counting in the layer's GENERATION)
            self.__dict__["_activity_losses"] = [reg(o) for o in leaves if isinstance(o, torch.Tensor)]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    forward.dispatches_to_call = True  # type: ignore[attr-defined]  # read by core.protocol.cell_method

    def call(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must override `call` or `forward`")

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        """``name``, ``trainable``, ``dtype`` (and ``activity_regularizer``), plus, for a class that
        does not define ``get_config``, its constructor arguments, recorded at construction.

        As Keras 3: the recorded arguments (defaults included, ``**kwargs``
        expanded, numpy scalars as Python values) are used only when every
        value is a plain config value (str, int, float, bool, None, or lists,
        tuples and str-keyed dicts of those); for a class created with other
        arguments (a cell object, a function) this raises
        ``NotImplementedError`` naming the argument: such a class defines
        ``get_config`` / ``from_config`` itself.
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": str(self.dtype).replace("torch.", "")}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers_mod.serialize(self.activity_regularizer)
        auto = self.__dict__.get("_auto_config")
        problem = self.__dict__.get("_auto_config_problem")
        if problem is not None and type(self).get_config is Layer.get_config:
            raise NotImplementedError(
                f"{type(self).__name__} ({self.name}) was created with {problem}, so its constructor "
                f"arguments cannot be recorded as its config: define {type(self).__name__}.get_config() "
                "(and from_config() when a value needs rebuilding), as in Keras"
            )
        if auto is not None and type(self).get_config is Layer.get_config:
            params = inspect.signature(type(self).__init__).parameters
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                config = {k: v for k, v in config.items() if k in params}  # only what __init__ takes back
            config.update(auto)
        return config

    get_config.records_constructor = True  # type: ignore[attr-defined]  # read by LayerMeta

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
    return [loss for m in model.modules() if isinstance(m, Layer) for loss in m.own_losses()]


