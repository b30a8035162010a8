"""Each layer's weight arrays from a Keras file, in Keras order (``layer.get_weights()``'s).

Two layouts (see :mod:`rnnkit.io.keras_file`):

* Keras 3 archives and ``.weights.h5``: a tree of objects. A model's layers
  are the group ``layers``, each layer's group named after its class in
  snake case, numbered in list order when repeated (``lstm``, ``lstm_1``);
  its own variables are ``vars/0, vars/1, ...``; sub-objects are subgroups:
  ``cell`` (recurrent layers), ``cells/<name>`` (``StackedRNNCells``),
  ``forward_layer`` and ``backward_layer`` (``Bidirectional``), ``layer``
  (``TimeDistributed``), ``layers/<name>`` (nested models). The flat list is
  the layer's own variables, then its sub-objects' in that order.
* HDF5 full-model and ``save_weights`` files of Keras 2, tf.keras 2 and Keras
  3's legacy writer: one group per layer *name*, its ``weight_names``
  attribute listing the arrays in order.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from rnnkit.io.keras_file import KerasFile, KerasFileError

_CHILDREN = {  # Keras class -> its sub-objects' attribute names, in weight order
    "Bidirectional": ("forward_layer", "backward_layer"),
    "TimeDistributed": ("layer",),
}
_CELLED = {"RNN", "SimpleRNN", "GRU", "LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


def snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``SimpleRNNCell`` -> ``simple_rnn_cell``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def list_names(specs: list[dict]) -> list[str]:
    """The group names Keras 3 gives a list of objects: snake-cased class names, numbered when repeated."""
    used: dict[str, int] = {}
    names = []
    for spec in specs:
        base = snake_case(str(spec.get("class_name", "")))
        if base in used:
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def tree_weights(f: KerasFile, path: str, spec: dict) -> list[np.ndarray]:
    """A layer's arrays from the Keras 3 object tree at ``path`` (see the module docstring)."""
    out = _vars(f, path)
    class_name = spec.get("class_name")
    config = spec.get("config", {}) if isinstance(spec.get("config"), dict) else {}
    if class_name in _CELLED:
        cell = config.get("cell") if class_name == "RNN" else None
        out += tree_weights(f, _join(path, "cell"), cell if isinstance(cell, dict) else {"class_name": "Cell"})
    elif class_name == "StackedRNNCells":
        cells = config.get("cells", [])
        for name, cell in zip(list_names(cells), cells):
            out += tree_weights(f, _join(path, "cells", name), cell)
    elif class_name in _CHILDREN:
        for attr in _CHILDREN[class_name]:
            child = config.get(attr) or config.get("layer")  # Bidirectional: "layer" is the forward half's
            if isinstance(child, dict):
                out += tree_weights(f, _join(path, attr), child)
    elif class_name in ("Sequential", "Functional", "Model"):
        layers = model_layer_specs(spec)
        for name, layer in zip(list_names(layers), layers):
            out += tree_weights(f, _join(path, "layers", name), layer)
    return out


def model_layer_specs(spec: dict) -> list[dict]:
    """The layers a Keras 3 model lists (and saves): a Sequential's without its InputLayer."""
    config = spec.get("config", {})
    layers = config.get("layers", []) if isinstance(config, dict) else config
    if spec.get("class_name") == "Sequential":
        layers = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    return list(layers)


def _vars(f: KerasFile, path: str) -> list[np.ndarray]:
    prefix = _join(path, "vars")
    out: list[np.ndarray] = []
    while f"{prefix}/{len(out)}" in f.groups:
        out.append(f.groups[f"{prefix}/{len(out)}"])
    return out


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def named_weights(f: KerasFile, layer_name: str) -> list[np.ndarray]:
    """A layer's arrays from an HDF5 model or weights file (``weight_names`` order)."""
    attrs = f.attrs.get(layer_name)
    if attrs is None:
        raise KerasFileError(f"{f.path}: no weights group for layer {layer_name!r}; the file has "
                             f"{f.attrs.get('', {}).get('layer_names', [])}")
    out: list[np.ndarray] = []
    for weight_name in attrs.get("weight_names", []):
        key = f"{layer_name}/{weight_name}"
        if key not in f.groups:
            raise KerasFileError(f"{f.path}: weight {key!r} is listed but missing")
        out.append(f.groups[key])
    return out


def layer_names_in_file(f: KerasFile) -> list[str]:
    """The ``layer_names`` attribute of an HDF5 model or weights file."""
    return list(f.attrs.get("", {}).get("layer_names", []))


def assign(layer: Any, arrays: list[np.ndarray], f: KerasFile, layer_name: str) -> None:
    """``layer.set_weights(arrays)``; an error naming the file and the layer when they do not fit."""
    set_weights = getattr(layer, "set_weights", None)
    if set_weights is None:
        raise KerasFileError(f"{f.path}: layer {layer_name!r} ({type(layer).__name__}) cannot take Keras weights")
    try:
        set_weights(list(arrays))
    except (ValueError, TypeError) as err:
        shapes = [tuple(np.shape(a)) for a in arrays]
        raise KerasFileError(
            f"{f.path}: the weights of layer {layer_name!r} do not fit rnnkit.{type(layer).__name__}: the file holds "
            f"{len(arrays)} array(s) of shapes {shapes} ({err})"
        ) from None
