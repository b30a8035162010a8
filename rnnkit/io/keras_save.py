"""``save_keras_model``: an rnnkit model as a Keras 3 ``.keras`` archive.

The archive holds what Keras 3's ``keras.saving.load_model`` reads:

* ``config.json``: the model (``Sequential`` with an ``InputLayer``, or
  ``Functional`` with its layers' ``inbound_nodes``), each layer's config with
  Keras's keys (rnnkit-only ones such as ``use_fused`` left out), initializers
  and other objects in Keras's ``{"module", "class_name", "config"}`` form;
* ``model.weights.h5``: each layer's arrays at the paths Keras 3 walks
  (``layers/<snake_case class>[_n]/vars/<i>``, ``.../cell/vars/<i>``,
  ``.../forward_layer/...``; see :mod:`rnnkit.io.keras_weights`);
* ``metadata.json``.

What Keras 3 cannot express is refused with the layer's name: ``time_major``
layers, Keras 2's ``legacy_hard_sigmoid``, CuDNN layers, plain torch modules.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from rnnkit.io.keras_weights import list_names

_RNNKIT_ONLY = {"use_fused", "use_cudnn", "compile", "implementation"}
_MODULES = {"initializer": "keras.initializers", "regularizer": "keras.regularizers",
            "constraint": "keras.constraints"}
KERAS_VERSION = "3.0.0"


def save_keras_model(model: torch.nn.Module, path: str | Path, input_shape: tuple | None = None,
                     input_dtype: str | None = None) -> None:
    """Write ``model`` (``rnnkit.Sequential``, ``rnnkit.Model`` or one rnnkit layer) as a ``.keras`` archive.

    Args:
        model: the model; its layers must be rnnkit layers that Keras 3 has.
        path: the archive to write (``.keras``).
        input_shape: the input shape with the batch axis (``None`` for unknown dims), for a
            ``Sequential`` or a single layer; default: what the first layer was built with.
        input_dtype: the input dtype name (``"int32"`` for token ids); default ``"int32"``
            before an ``Embedding``, else ``"float32"``.
    """
    import rnnkit

    if isinstance(model, rnnkit.Model):
        spec, layers = _functional_spec(model)
    else:
        body = list(model.layers) if isinstance(model, rnnkit.Sequential) else [model]
        spec, layers = _sequential_spec(model, body, input_shape, input_dtype)
    weights = _weights_h5(layers, spec)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(spec))
        z.writestr("model.weights.h5", weights)


# ----------------------------------------------------------------- configs
def layer_spec(layer: Any) -> dict:
    """Keras 3's serialized form of one rnnkit layer (``{"module", "class_name", "config", ...}``)."""
    import rnnkit

    if not isinstance(layer, rnnkit.Layer):
        raise TypeError(f"save_keras_model: {type(layer).__name__} is a plain torch module; a .keras file holds "
                        "Keras layers only (use e.g. rnnkit.Dense for torch.nn.Linear)")
    class_name = type(layer).__name__
    if class_name.startswith("CuDNN"):
        raise TypeError(f"save_keras_model: layer {layer.name!r} is a {class_name}, which Keras 3 does not have; "
                        "convert it to LSTM/GRU first")
    config = {k: _keras_value(k, v, layer.name) for k, v in layer.get_config().items() if k not in _RNNKIT_ONLY}
    if config.pop("time_major", False):
        raise TypeError(f"save_keras_model: layer {layer.name!r} has time_major=True, which Keras 3 does not have")
    for key in ("layer", "backward_layer"):
        if key in config:
            config[key] = layer_spec(getattr(layer, "forward_layer" if key == "layer" else "backward_layer")
                                     if class_name == "Bidirectional" else getattr(layer, key))
    if class_name == "RNN":
        config["cell"] = layer_spec(layer.cell)
    if class_name == "StackedRNNCells":
        config["cells"] = [layer_spec(c) for c in cast(Any, layer).cells]
    return {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}


def _keras_value(key: str, value: Any, name: str) -> Any:
    if key == "dtype":
        return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": value}, "registered_name": None}
    if value == "legacy_hard_sigmoid":
        raise TypeError(f"save_keras_model: layer {name!r} uses Keras 2's hard_sigmoid, which Keras 3 does not have")
    for suffix, module in _MODULES.items():
        if key.endswith(suffix) and isinstance(value, dict) and "class_name" in value:
            return {"module": module, "class_name": value["class_name"], "config": value.get("config", {}),
                    "registered_name": None}
    if isinstance(value, tuple):
        return list(value)
    return value


def _input_spec(name: str, shape: tuple, dtype: str) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
            "config": {"batch_shape": list(shape), "dtype": dtype, "sparse": False, "name": name}}


def _sequential_spec(model: Any, body: list, input_shape: tuple | None, input_dtype: str | None) -> tuple:
    import rnnkit

    if not body:
        raise ValueError("save_keras_model: the model has no layers")
    first = body[0]
    if input_shape is None:
        inner = getattr(first, "forward_layer", first)  # Bidirectional: its halves know the input
        feature = getattr(inner, "feature_shape", None)
        if isinstance(first, rnnkit.Embedding):
            input_shape = (None, None)
        elif feature is not None:
            input_shape = (None, None) + tuple(feature)
        else:
            raise ValueError(f"save_keras_model: cannot tell the input shape of {first.name!r}; "
                             "pass input_shape=(None, timesteps, features)")
    needed = 2 if isinstance(first, rnnkit.Embedding) else 3
    if len(tuple(input_shape)) < needed:
        raise ValueError(f"save_keras_model: input_shape {tuple(input_shape)} has no batch axis or time axis; "
                         f"give the full shape, e.g. (None, None{'' if needed == 2 else ', features'})")
    dtype = input_dtype or ("int32" if isinstance(first, rnnkit.Embedding) else "float32")
    layers = [_input_spec("input_layer", tuple(input_shape), dtype)] + [layer_spec(layer) for layer in body]
    name = getattr(model, "name", "sequential") if isinstance(model, rnnkit.Sequential) else "sequential"
    spec = {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "trainable": True, "layers": layers}}
    return spec, body


def _functional_spec(model: Any) -> tuple:
    layers_out = []
    names = list(model.input_names)
    for name, shape, dtype in zip(model.input_names, model.input_shapes, model.input_dtypes):
        layers_out.append(dict(_input_spec(name, shape, str(dtype).replace("torch.", "")), name=name,
                               inbound_nodes=[]))
    calls: dict[int, int] = {}
    node_index = []  # per node: its index among its layer's calls
    for node in model.node_specs():
        node_index.append(calls.get(node["layer"], 0))
        calls[node["layer"]] = node_index[-1] + 1

    def tensor(key: tuple) -> dict:
        if key[0] == "input":
            history = [names[key[1]], 0, 0]
        else:
            n, i = key[1], key[2]
            history = [model.layers[model.node_specs()[n]["layer"]].name, node_index[n], i]
        shape, dtype = model.tensor_info(key)
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(shape), "dtype": str(dtype).replace("torch.", ""), "keras_history": history}}

    per_layer: dict[int, list] = {}
    for node in model.node_specs():
        args = [model.map_refs(node["inputs"], tensor)]
        kwargs = {k: model.map_refs(v, tensor) for k, v in node["kwargs"].items() if v is not None}
        per_layer.setdefault(node["layer"], []).append({"args": args, "kwargs": kwargs})
    for i, layer in enumerate(model.layers):
        spec = layer_spec(layer)
        spec["name"] = layer.name
        spec["inbound_nodes"] = per_layer.get(i, [])
        layers_out.append(spec)

    def ref(key: tuple) -> list:
        return tensor(key)["config"]["keras_history"]

    outputs = [ref(k) for k in model.output_keys()]
    config = {"name": model.name, "trainable": True, "layers": layers_out,
              "input_layers": [[n, 0, 0] for n in names] if len(names) > 1 else [names[0], 0, 0],
              "output_layers": outputs[0] if model.single_output else outputs}
    spec = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": config}
    return spec, [None] * len(names) + list(model.layers)


# ----------------------------------------------------------------- weights
def _weights_h5(layers: list, spec: dict) -> bytes:
    import h5py

    specs = [s for s in spec["config"]["layers"] if spec["class_name"] == "Functional"
             or s["class_name"] != "InputLayer"]
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars")
        group = f.create_group("layers")
        for name, layer_spec_, layer in zip(list_names(specs), specs, layers):
            _write(group.create_group(name), layer, layer_spec_)
    return buffer.getvalue()


def _write(group: Any, layer: Any, spec: dict) -> None:
    """A layer's arrays at Keras 3's paths (the inverse of ``rnnkit.io.keras_weights.tree_weights``)."""
    if layer is None:  # an InputLayer
        group.create_group("vars")
        return
    class_name = spec["class_name"]
    config = spec["config"]
    own = group.create_group("vars")
    children: list[tuple[str, Any, dict]] = []
    if class_name in ("LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "RNN"):
        cell_spec = config.get("cell") or {"class_name": class_name + "Cell", "config": {}}
        children = [("cell", layer.cell, cell_spec)]
    elif class_name == "StackedRNNCells":
        group.create_group("cells")
        children = [(f"cells/{name}", cell, cell_spec)
                    for name, cell, cell_spec in zip(list_names(config["cells"]), layer.cells, config["cells"])]
    elif class_name == "Bidirectional":
        children = [("forward_layer", layer.forward_layer, config["layer"]),
                    ("backward_layer", layer.backward_layer, config.get("backward_layer", config["layer"]))]
    elif class_name == "TimeDistributed":
        children = [("layer", layer.layer, config["layer"])]
    child_weights = sum((len(child.weights) for _, child, _ in children), 0)
    own_weights = layer.weights[: len(layer.weights) - child_weights]
    for i, w in enumerate(own_weights):
        own.create_dataset(str(i), data=np.asarray(w.detach().cpu().numpy()))
    for attr, child, child_spec in children:
        _write(group.create_group(attr), child, child_spec)  # "cells/<name>": cells is made above
