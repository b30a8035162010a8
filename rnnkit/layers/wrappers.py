"""``TimeDistributed``: Keras 3's ``keras.layers.TimeDistributed``, one layer applied to every timestep.

::

    y[:, t] = layer(x[:, t])          for t in 0 .. timesteps-1        (the same weights at every step)

    x: (batch, timesteps, *step_shape)  ->  y: (batch, timesteps, *layer_output_shape_without_batch)

Two ways to compute it, chosen from static facts only:

* **fold** (the usual path): ``(batch, timesteps)`` folded into one batch
  axis, the layer called once on ``(batch * timesteps, *step_shape)``, and
  the result unfolded. The same numbers as stepping, in one call.
* **step**: the layer called on each ``x[:, t]`` in turn and the outputs
  stacked (Keras 3's own loop), when the wrapped layer mixes the rows of its
  batch (``rnnkit.layers.common.mixes_samples``: a ``BatchNormalization``
  computing batch statistics, ``torch.nn.BatchNorm*`` in ``train()`` mode, a
  stateful recurrent layer), so that each step sees a batch of ``batch``
  rows as in Keras.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.core.protocol import call_accepts, cell_method
from rnnkit.core.sequences import attach_mask
from rnnkit.engine.layer import Layer
from rnnkit.engine.serialization import deserialize_layer, serialize_layer
from rnnkit.layers.common import as_bool_mask, input_mask, mixes_samples, plain_input


def _map(fn: Any, out: Any) -> Any:
    """``fn`` on each tensor of a layer's output (a tensor, or a list/tuple of them)."""
    if isinstance(out, torch.Tensor):
        return fn(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_map(fn, o) for o in out)
    raise TypeError(f"TimeDistributed: the wrapped layer must return tensors, got {type(out).__name__}")


class TimeDistributed(Layer):
    """Applies ``layer`` to every timestep of its input (see the module docstring for the equations and paths).

    Any rnnkit layer (``Dense``, ``Conv1D``, a recurrent layer on
    sub-sequences, ...) or any plain torch module (``torch.nn.Linear``, a
    ``torch.nn.Sequential``) can be wrapped. The weights are the wrapped
    layer's (``get_weights()`` lists them, in its own layout: Keras's for
    rnnkit layers); an unbuilt rnnkit layer is built with the step shape
    ``(batch, *x.shape[2:])``.

    Mask: boolean ``(batch, timesteps, ...)`` (``mask=`` or the input's
    ``_keras_mask``). The wrapped layer receives step ``t``'s slice
    ``mask[:, t]`` (folded with the batch on the fold path) when its call
    takes a ``mask`` argument; ``training`` is passed on when its call takes
    it. The output keeps the input's mask (Keras 3's ``compute_mask``).

    Args:
        layer: The rnnkit layer or torch module applied to each timestep.
        name: The layer's name (default ``"time_distributed"``, numbered).
        dtype: Kept for Keras compatibility; the wrapped layer computes in its own dtype.
        trainable: If False, the wrapped layer's weights are frozen.
        **kwargs: Other ``rnnkit.Layer`` arguments (``input_shape``, ``batch_input_shape``, ``batch_size``:
            build the wrapped layer at construction); any other name is a ``TypeError`` that suggests the
            closest accepted one.

    Call: ``layer(x, training=None, mask=None)``, ``x`` of rank 3 or more;
    returns ``(batch, timesteps, ...)`` (a list of such tensors when the
    wrapped layer returns a list).
    """

    def __init__(self, layer: torch.nn.Module, name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"{self.name}: TimeDistributed wraps an rnnkit layer or a torch module, got "
                            f"{type(layer).__name__}")
        self.layer = layer
        self.supports_masking = True

    def _step_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ValueError(f"{self.name}: TimeDistributed needs inputs of rank 3 or more (batch, timesteps, "
                             f"...), got shape {input_shape}")
        return (input_shape[0],) + input_shape[2:]

    def build(self, input_shape: Any) -> None:
        """Build the wrapped rnnkit layer (if unbuilt) for steps of shape ``(batch, *input_shape[2:])``."""
        step = self._step_shape(input_shape)
        if isinstance(self.layer, Layer) and not self.layer.built:
            self.layer.build(step)
            self.layer.built = True

    def _kwargs(self, training: bool | None, has_mask: bool) -> tuple[bool, dict]:
        if not isinstance(self.layer, Layer):
            return False, {}
        method = cell_method(self.layer)
        kwargs = {} if training is None or not call_accepts(method, "training") else {"training": training}
        return has_mask and call_accepts(method, "mask"), kwargs

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        x = plain_input(self.name, inputs)
        self._step_shape(tuple(x.shape))
        batch, steps = x.shape[0], x.shape[1]
        mask = input_mask(inputs, mask)
        if mask is not None:
            mask = as_bool_mask(self.name, mask, x.device)
            if mask.dim() < 2 or tuple(mask.shape[:2]) != (batch, steps):
                raise ValueError(f"{self.name}: the mask must be at least 2-D with leading dims (batch, timesteps) "
                                 f"= {(batch, steps)}, got shape {tuple(mask.shape)}")
        pass_mask, kwargs = self._kwargs(training, mask is not None)
        if mixes_samples(self.layer, training):
            outs = []
            for t in range(steps):
                step_kwargs = dict(kwargs, mask=mask[:, t]) if pass_mask and mask is not None else kwargs
                outs.append(self.layer(x[:, t], **step_kwargs))
            if isinstance(outs[0], torch.Tensor):
                y: Any = torch.stack(outs, dim=1)
            else:
                y = type(outs[0])(torch.stack([o[i] for o in outs], dim=1) for i in range(len(outs[0])))
        else:
            if pass_mask and mask is not None:
                kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
            out = self.layer(x.reshape(batch * steps, *x.shape[2:]), **kwargs)
            y = _map(lambda o: o.reshape(batch, steps, *o.shape[1:]), out)
        return attach_mask(y, mask)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        step = self._step_shape(input_shape)
        if isinstance(self.layer, Layer):
            inner = tuple(self.layer.compute_output_shape(step))
        else:  # a plain torch module: run it on meta tensors (nothing computed, nothing changed)
            concrete = tuple(1 if d is None else int(d) for d in step)
            params = {k: torch.empty_like(v, device="meta") for k, v in self.layer.named_parameters()}
            params.update({k: torch.empty_like(v, device="meta") for k, v in self.layer.named_buffers()})
            out = torch.func.functional_call(self.layer, params, (torch.empty(concrete, device="meta"),))
            inner = (step[0],) + tuple(out.shape[1:])
        return (inner[0], tuple(input_shape)[1], *inner[1:])

    def get_config(self) -> dict:
        if not isinstance(self.layer, Layer):
            raise TypeError(f"{self.name}: get_config needs a wrapped rnnkit layer; "
                            f"{type(self.layer).__name__} is a plain torch module, which has no config")
        config = super().get_config()
        config["layer"] = serialize_layer(self.layer)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> TimeDistributed:
        config = dict(config)
        layer = deserialize_layer(config.pop("layer"), custom_objects)
        return cls(layer, **config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
