"""``Sequential``: layers called in order, the mask handed from each layer to the next.

::

    x, mask = inputs, mask
    for layer in layers:
        x_in = x
        x = layer(x_in, mask=mask)           # mask= only when layer's call takes it (and mask is not None)
        mask = layer.compute_mask(x_in, mask) # rnnkit layers (Keras's rule)
        # a plain torch module: mask kept if x has x_in's two leading dims, else None
    return x                                  # forward_with_mask returns (x, mask)

The mask travels as an explicit value, never through an attribute of a
tensor: that is what Keras's functional models do with ``compute_mask``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from rnnkit.engine.layer import Layer
from rnnkit.engine.serialization import deserialize_layer, serialize_layer
from rnnkit.models.calling import as_mask, call_with_mask


def _meta_output_shape(module: torch.nn.Module, shape: tuple) -> Any:
    """Output shape of a plain torch module for inputs of ``shape``, from a call on the meta device.

    Nothing is computed and nothing of the module changes (its parameters and
    buffers are stood in for by meta tensors). Unknown (None) dims are run as 1
    and come back as None where the output keeps them in place.
    """
    concrete = tuple(1 if d is None else int(d) for d in shape)
    params = {k: torch.empty_like(v, device="meta") for k, v in module.named_parameters()}
    params.update({k: torch.empty_like(v, device="meta") for k, v in module.named_buffers()})
    out = torch.func.functional_call(module, params, (torch.empty(concrete, device="meta"),))
    if not isinstance(out, torch.Tensor):
        return None
    out_shape = tuple(out.shape)
    return tuple(None if i < len(shape) and shape[i] is None and out_shape[i] == 1 else d
                 for i, d in enumerate(out_shape))


class Sequential(Layer):
    """A stack of layers, each fed the previous one's output and mask (Keras's ``Sequential``).

    ``model(x, mask=None, training=None)`` calls the layers in order and
    returns the last one's output; ``model.forward_with_mask(...)`` also
    returns the output's mask. The mask (boolean ``(batch, timesteps)``, True
    = use the step) starts as ``mask`` and is handed on explicitly:

    * an rnnkit layer (``rnnkit.Layer``) gets ``mask=`` when its call takes a
      ``mask`` argument and the mask is not None, ``training=`` when its call
      takes it and ``training`` is not None; the next mask is
      ``layer.compute_mask(x_in, mask)``: e.g. ``Embedding(mask_zero=True)``
      and ``Masking`` make one, a recurrent layer with ``return_sequences``
      passes it on, one without drops it. A layer that does not support
      masking drops a mask with a warning, as in Keras.
    * a plain torch module (``torch.nn.Linear``, ``Dropout``, an activation,
      ...) is called as ``module(x)`` and follows its own ``train()`` /
      ``eval()`` mode. **The rule**: when its output is a tensor with the two
      leading dims of its input (batch and time: it works per step, like
      Keras's ``Dense`` on sequences, which supports masking), the mask passes
      through unchanged; any other output (another leading shape, a tuple)
      drops the mask.

    Nothing here reads the ``_keras_mask`` attribute that rnnkit layers set on
    their outputs as a convenience. (A recurrent layer called without a mask
    still falls back to its input's ``_keras_mask``, as on its own.)

    Weights: ``get_weights()`` lists every layer's weights in order (a plain
    torch module's parameters in its own layout: ``torch.nn.Linear.weight`` is
    ``(out, in)``, the transpose of a Keras ``Dense`` kernel). ``losses``
    collects the rnnkit layers' penalties. ``get_config()`` / ``from_config()``
    work when every layer is an rnnkit layer.

    Args:
        layers: the layers, in call order (torch modules; rnnkit layers or plain).
        trainable: whether the layers' weights are trained.
        name: model name (default ``"sequential"``, ``"sequential_1"``, ...).

    ``add(layer)`` appends, ``pop()`` removes the last layer, ``model[i]``,
    ``len(model)`` and iteration reach the layers (``model.layers`` is their
    ``torch.nn.ModuleList``). ``build(input_shape)`` builds every layer from
    the shapes before a first call, e.g. to ``set_weights`` from Keras.
    """

    def __init__(self, layers: Iterable[torch.nn.Module] | None = None, trainable: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name=name, trainable=trainable)
        self.layers = torch.nn.ModuleList()
        for layer in layers or ():
            self.add(layer)

    # ---------------------------------------------------------------- layers
    def add(self, layer: torch.nn.Module) -> None:
        """Append ``layer`` (any torch module)."""
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(
                f"{self.name}: layers must be torch modules (rnnkit layers or plain torch.nn modules), "
                f"got {type(layer).__name__}"
            )
        self.layers.append(layer)
        if not self._trainable:
            if isinstance(layer, Layer):
                layer.trainable = False
            else:
                layer.requires_grad_(False)

    def pop(self) -> torch.nn.Module:
        """Remove and return the last layer."""
        if not len(self.layers):
            raise IndexError(f"{self.name}: pop() from a Sequential with no layers")
        last = self.layers[-1]
        del self.layers[-1]
        return last

    def __getitem__(self, index: int | slice) -> Any:
        """The layer at ``index`` (a list of layers for a slice)."""
        return list(self.layers)[index] if isinstance(index, slice) else self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[torch.nn.Module]:
        return iter(self.layers)

    # ----------------------------------------------------------------- build
    def build_from(self, inputs: Any) -> None:
        """Nothing to do before a first call: each layer builds on its own call."""
        self.built = True

    def build(self, input_shape: tuple) -> None:
        """Build every layer from ``input_shape`` (batch first; None for unknown dims)."""
        self._walk_shapes(input_shape, build=True)
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> Any:
        return self._walk_shapes(input_shape, build=False)

    def _walk_shapes(self, input_shape: tuple, build: bool) -> Any:
        """Each layer's output shape in turn (rnnkit: ``compute_output_shape``; plain: a meta call)."""
        shape: Any = tuple(input_shape)
        for i, layer in enumerate(self.layers):
            if shape is None or isinstance(shape, list):
                raise ValueError(
                    f"{self.name}: cannot tell the input shape of layer {i} ({_describe(layer)}): the layer "
                    "before it returns several tensors or a non-tensor; call the model on data instead"
                )
            if isinstance(layer, Layer):
                if build and not layer.built:
                    layer.build(shape)
                    layer.built = True
                shape = layer.compute_output_shape(shape)
            else:
                shape = _meta_output_shape(layer, shape)
        return shape

    # ------------------------------------------------------------------ call
    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        """The last layer's output (see the class docstring for how masks travel)."""
        return self.forward_with_mask(inputs, mask, training)[0]

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        """Keras's name for :meth:`forward`."""
        return self.forward(inputs, mask=mask, training=training)

    def forward_with_mask(self, inputs: Any, mask: Any = None, training: bool | None = None) -> tuple:
        """``(output, output_mask)``: the model's output and the mask its last layer computed."""
        x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
        mask = as_mask(mask, x)
        for layer in self.layers:
            x, mask = call_with_mask(self.name, layer, x, mask, training)
        return x, mask

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The output's mask. Masks can depend on intermediate values (``Masking``), so this runs
        the layers (a stateful layer advances): use :meth:`forward_with_mask` for both at once."""
        return self.forward_with_mask(inputs, mask)[1]

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        layers = []
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"{self.name}: get_config needs rnnkit layers; layer {i} is a plain {_describe(layer)}, "
                    "which has no config"
                )
            layers.append(serialize_layer(layer))
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Sequential:
        config = dict(config)
        config.pop("dtype", None)  # Keras writes one; the layers carry their own
        layers = [deserialize_layer(spec, custom_objects) for spec in config.pop("layers", [])]
        return cls(layers, **config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _describe(layer: torch.nn.Module) -> str:
    kind = f"{type(layer).__module__}.{type(layer).__name__}"
    return f"{kind} {layer.name!r}" if isinstance(layer, Layer) else kind
