"""``WeightsMixin``: a ``Layer``'s weights, in Keras order, looked up by name when used.

``add_weight`` registers a ``torch.nn.Parameter`` and a record (attribute
name, trainable, regularizer, constraint). Records hold names, not tensors:
``weights``, ``get_weights``, ``set_weights``, ``losses`` and
``apply_constraints`` read the live attribute, so they follow
``load_state_dict(..., assign=True)``, ``.to("meta")`` + ``to_empty()`` and
parametrizations (``weight_norm``). Order: the layer's own weights (trainable,
then non-trainable, each in creation order), then its sub-layers' in
attachment order, as Keras lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch

from rnnkit.engine import constraints as constraints_mod
from rnnkit.engine import initializers as initializers_mod
from rnnkit.engine import regularizers as regularizers_mod
from rnnkit.engine.dtypes import resolve_dtype

# A layer's count of attribute assignments and deletions (``layer.__dict__[GENERATION]``): what a layer keeps
# about its own configuration between calls (rnnkit.layers.call_plan) holds while it is unchanged. Not counted:
# the per-call bookkeeping below, and assignments inside a graph being captured (torch.compile would guard on the
# count, and recompile at each assignment), where no kept decision is read or made.
GENERATION = "_generation"
_BOOKKEEPING = frozenset({"_dropout_masks", "_recurrent_dropout_masks", "_generator", "_states_zeroed",
                          "_activity_losses"})


class WeightsMixin(torch.nn.Module):
    """The weight half of ``rnnkit.Layer`` (see the module docstring)."""

    name: str
    _dtype: torch.dtype
    _trainable: bool
    _weight_records: list[dict]
    _activity_losses: list[torch.Tensor]

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
        if name not in _BOOKKEEPING:
            self._count_change()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        self._count_change()

    def _count_change(self) -> None:
        """One more configuration change (``GENERATION``); none counted while a graph is captured."""
        if not torch.compiler.is_compiling():
            self.__dict__[GENERATION] = self.__dict__.get(GENERATION, 0) + 1

    def _sublayers(self) -> Iterator[torch.nn.Module]:
        """Direct sub-layers (through containers), in attachment order."""

        def walk(module):
            for child in module.children():
                containers = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Sequential)
                if isinstance(child, WeightsMixin) or not isinstance(child, containers):
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

    def _weight_slots(self) -> list[tuple[WeightsMixin | None, str | None, torch.Tensor]]:
        """``(owner, key, tensor)`` per weight in ``weights`` order; ``owner`` None for plain torch modules."""
        records = self._weight_records
        own = [r for r in records if r["trainable"]] + [r for r in records if not r["trainable"]]
        slots: list[tuple[WeightsMixin | None, str | None, torch.Tensor]] = [
            (self, r["key"], self.weight_by_key(r["key"])) for r in own
        ]
        for sub in self._sublayers():
            if isinstance(sub, WeightsMixin) and type(sub).weights is WeightsMixin.weights:
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
        if type(self).weights is WeightsMixin.weights:
            slots = self._weight_slots()
        else:  # a subclass lists its weights itself
            slots = [(None, None, w) for w in self.weights]
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
            if isinstance(sub, WeightsMixin):
                sub.trainable = value
            else:
                sub.requires_grad_(bool(value))

    # ------------------------------------------------- regularizers, constraints
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization penalties of all weights plus activity penalties."""
        out = self.own_losses()
        for sub in self._sublayers():
            if isinstance(sub, WeightsMixin):
                out += sub.losses
        return out

    def own_losses(self) -> list[torch.Tensor]:
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
                if isinstance(sub, WeightsMixin):
                    sub.apply_constraints()


def _sub_weights(module: torch.nn.Module, trainable: bool | None) -> list[torch.Tensor]:
    if isinstance(module, WeightsMixin):
        if trainable is None:
            return module.weights
        return module.trainable_weights if trainable else module.non_trainable_weights
    params: list[torch.Tensor] = list(module.parameters())
    if trainable is None:
        return params
    return [p for p in params if p.requires_grad == trainable]
