"""Reading Keras files as data: the model config (JSON) and the weight arrays (HDF5).

Flavours, told apart by their content, not their name:

==============  ==================================================================
``keras3``      a ``.keras`` zip archive (Keras 3): ``config.json``,
                ``metadata.json``, ``model.weights.h5`` (per layer group
                ``layers/<snake_case class name>[_n]/vars/<i>``, sub-objects as
                subgroups: ``cell``, ``forward_layer``, ``cells/<name>`` ...)
``h5``          an HDF5 full-model file: attribute ``model_config`` (JSON) and
                group ``model_weights`` with ``layer_names`` and, per layer,
                ``weight_names`` (written by Keras 3's ``model.save("x.h5")``,
                tf.keras 2 and Keras 2); ``keras_version`` tells the writer
``h5-weights``  an HDF5 weights-only file (``save_weights``): ``layer_names``
                at the root, no config
``weights.h5``  a Keras 3 ``.weights.h5`` file: the ``layers/...`` tree of an
                archive, without config
==============  ==================================================================

Nothing is executed: JSON is parsed as data, arrays are copied out of the
HDF5 file; ``h5py`` (the ``keras`` extra) is imported only here, when a file
is read. Every error names the file and the part that is wrong.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class KerasFileError(ValueError):
    """A file that is not a readable Keras file, or a part of it that is wrong."""


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the dev extra
        raise ImportError("reading Keras files needs h5py: pip install 'rnnkit[keras]'") from None
    return h5py


@dataclass
class KerasFile:
    """What a Keras file holds, read into memory."""

    path: str
    flavour: str
    config: dict | None
    keras_version: str = ""
    backend: str = ""
    groups: dict[str, Any] = field(default_factory=dict)  # h5 path -> array, for the whole weights tree
    attrs: dict[str, dict] = field(default_factory=dict)  # h5 group path -> its attributes (weight_names ...)

    @property
    def keras_major(self) -> int:
        """2 for files written by Keras 2 / tf.keras 2, 3 for Keras 3 (its config and defaults)."""
        try:
            return int(self.keras_version.split(".")[0])
        except ValueError:
            return 3 if self.flavour in ("keras3", "weights.h5") else 2


def read_keras_file(path: str | Path) -> KerasFile:
    """Read ``path`` (any flavour of the module docstring) into a :class:`KerasFile`."""
    path = str(path)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return _read_archive(path)
    if head == b"\x89HDF\r\n\x1a\n":
        with open(path, "rb") as f:
            return _read_h5(path, f.read())
    raise KerasFileError(f"{path}: not a Keras file (neither a .keras zip archive nor an HDF5 .h5 file)")


def _read_archive(path: str) -> KerasFile:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for needed in ("config.json", "model.weights.h5"):
                if needed not in names:
                    raise KerasFileError(f"{path}: a .keras archive must hold {needed!r}; it holds {sorted(names)}")
            config_text = z.read("config.json")
            metadata = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            weights = z.read("model.weights.h5")
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise KerasFileError(f"{path}: a damaged or truncated .keras archive ({err})") from None
    config = _json(config_text, f"{path}: config.json")
    out = KerasFile(path, "keras3", config, str(metadata.get("keras_version", "3")))
    _read_weights_tree(out, weights, f"{path}: model.weights.h5")
    return out


def _open_h5(data: bytes, where: str) -> Any:
    """An in-memory HDF5 file, read-only; damaged bytes are a :class:`KerasFileError` naming ``where``."""
    try:
        return _h5py().File(io.BytesIO(data), "r")
    except OSError as err:
        raise KerasFileError(f"{where}: a damaged or truncated HDF5 file ({err})") from None


def _read_h5(path: str, data: bytes) -> KerasFile:
    with _open_h5(data, path) as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if "model_config" in attrs:
            config = _json(attrs["model_config"], f"{path}: attribute model_config")
            if "model_weights" not in f:
                raise KerasFileError(f"{path}: a full-model file needs a 'model_weights' group")
            flavour, root = "h5", f["model_weights"]
        elif "layer_names" in attrs:
            config, flavour, root = None, "h5-weights", f
        elif "layers" in f or "vars" in f:
            config, flavour, root = None, "weights.h5", f
        else:
            raise KerasFileError(f"{path}: an HDF5 file, but not a Keras model or weights file "
                                 "(no 'model_config', 'layer_names' or 'layers')")
        out = KerasFile(path, flavour, config, str(attrs.get("keras_version", "")), str(attrs.get("backend", "")))
        _copy_tree(out, root, "")
    return out


def _read_weights_tree(out: KerasFile, data: bytes, where: str) -> None:
    with _open_h5(data, where) as f:
        _copy_tree(out, f, "")


def _copy_tree(out: KerasFile, group: Any, prefix: str) -> None:
    """Copy every dataset (as a numpy array) and every group's attributes, keyed by path."""
    h5py = _h5py()
    out.attrs[prefix] = {k: _attr(v) for k, v in group.attrs.items()}
    for name, item in group.items():
        path = f"{prefix}/{name}" if prefix else name
        if isinstance(item, h5py.Group):
            _copy_tree(out, item, path)
        elif isinstance(item, h5py.Dataset):
            if item.dtype.kind not in "fiub":
                raise KerasFileError(f"{out.path}: weight {path!r} is not numeric (dtype {item.dtype})")
            out.groups[path] = np.array(item)


def _attr(value: Any) -> Any:
    """An HDF5 attribute as plain Python: bytes decoded, arrays of strings as lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SOU":
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json(text: Any, where: str) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise KerasFileError(f"{where} is not valid JSON ({err})") from None
    if not isinstance(value, dict) or "class_name" not in value:
        raise KerasFileError(f"{where} is not a Keras model config (no 'class_name')")
    return value
