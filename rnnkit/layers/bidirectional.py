"""``Bidirectional``: a recurrent layer run forwards and backwards, outputs merged.

With ``f`` the forward layer and ``b`` its copy with ``go_backwards``
inverted::

    y_f = f(x)                       # (batch, T, U_f)  processing order = time order
    y_b = b(x)                       # (batch, T, U_b)  processing order = reversed
    y_b = flip(y_b, time)            # only with return_sequences: step t lines up
    y   = merge(y_f, y_b)            # concat (last axis) | sum | mul | ave | None -> [y_f, y_b]

With a mask, the backward layer meets the padding first (its states stay
initial and its output is zero there), so after the flip the padded steps of
``y_b`` are zeros and the valid steps line up with ``y_f``: Keras's rule.

``return_state`` gives ``[y, *forward_states, *backward_states]`` (``y`` is two
entries with ``merge_mode=None``); ``initial_state`` is split the same way, by
each half's own state count: an explicit ``backward_layer`` may be of another
cell type (``LSTM`` forwards, ``GRU`` backwards: 2 + 1 states). Keras 3 splits
``initial_state`` at ``len // 2``, which only works for equal counts; rnnkit's
split agrees with it there. ``get_weights()`` lists the forward weights then
the backward ones.

``compute_mask(inputs, mask)`` is Keras's: with ``return_sequences`` the input
mask (twice with ``merge_mode=None``), else None (``[None, None]``); with
``return_state`` one None per state is appended, forward then backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit.cells.args import documented
from rnnkit.core.protocol import cell_output_size
from rnnkit.core.sequences import attach_mask, count_states
from rnnkit.core.tree import flatten
from rnnkit.engine.layer import Layer
from rnnkit.engine.serialization import deserialize_layer, serialize_layer
from rnnkit.kernels.bidirectional import fused_bidirectional, pair_blockers
from rnnkit.layers.rnn import RNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _classes_in(module: torch.nn.Module) -> dict:
    """Class name -> class for every module inside ``module`` (custom cells included)."""
    return {type(m).__name__: type(m) for m in module.modules()}


def _copy_layer(layer: RNN, name: str, go_backwards: bool) -> RNN:
    config = layer.get_config()
    config.update(name=name, go_backwards=go_backwards)
    return type(layer).from_config(config, custom_objects=_classes_in(layer))


def _output_size(layer: RNN) -> Any:
    """Size of one step of the layer's output (``filters`` for a ConvLSTM not built yet), or None."""
    size = cell_output_size(layer.cell)
    if size is None:
        size = getattr(layer.cell, "filters", None)
    return tuple(size) if isinstance(size, (list, tuple)) else size


def _merge(mode: str | None, y: torch.Tensor, y_rev: torch.Tensor) -> Any:
    if mode == "concat":
        return torch.cat([y, y_rev], dim=-1)
    if mode == "sum":
        return y + y_rev
    if mode == "mul":
        return y * y_rev
    if mode == "ave":
        return (y + y_rev) / 2
    return [y, y_rev]


@documented(
    layer="The recurrent layer to wrap (``RNN``, ``SimpleRNN``, ``GRU``, ``LSTM``, ``ConvLSTM*``); the forward "
          "half is a fresh copy of it from its config.",
    merge_mode="How the two outputs combine: ``\"concat\"`` (last axis), ``\"sum\"``, ``\"mul\"``, "
               "``\"ave\"``, or ``None`` for the list ``[forward, backward]``.",
    weights="Optional list of arrays, forward weights then backward ones, set once the layer is built.",
    backward_layer="Optional recurrent layer for the backward half (any cell type or state structure; it must "
                   "agree on ``return_sequences``, ``return_state``, ``stateful`` and ``time_major`` and run in "
                   "the other direction; its output size may differ only with ``merge_mode`` ``\"concat\"`` "
                   "or ``None``). Default: a copy of ``layer`` with ``go_backwards`` inverted.",
)
class Bidirectional(Layer):
    """Wrap a recurrent layer (``RNN``, ``LSTM``, ``GRU``, ``SimpleRNN``, ``ConvLSTM*``); see the module docstring."""

    def __init__(
        self,
        layer: RNN,
        merge_mode: str | None = "concat",
        weights: list | None = None,
        backward_layer: RNN | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, RNN):
            raise TypeError(
                f"{self.name}: Bidirectional needs a recurrent layer (rnnkit.RNN, LSTM, GRU, SimpleRNN, ConvLSTM*), "
                f"got {type(layer).__name__}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"{self.name}: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self._explicit_backward = backward_layer is not None
        # As Keras: the forward layer is a fresh copy from the config (it
        # carries no state of the given layer); the backward one likewise,
        # with go_backwards inverted, unless given. Names as Keras 3's: each
        # copy drops only its own prefix ("forward_x" -> "forward_x", "backward_forward_x").
        self.forward_layer = _copy_layer(layer, f"forward_{layer.name.removeprefix('forward_')}", layer.go_backwards)
        if backward_layer is None:
            backward_layer = _copy_layer(
                layer, f"backward_{layer.name.removeprefix('backward_')}", not layer.go_backwards
            )
        else:
            self._check_backward(layer, backward_layer, merge_mode)
        self.backward_layer = backward_layer
        # Keras forces zero outputs at masked steps when returning sequences,
        # so that the flipped backward sequence is zero on the padding.
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self._initial_weights = weights
        if self._build_shape is None and layer.built and layer.feature_shape is not None:
            # the wrapped layer was built eagerly (input_shape=...): so are the copies
            self._build_shape = (None, None) + tuple(layer.feature_shape)
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self.time_major = layer.time_major

    def _check_backward(self, layer: RNN, backward: Any, merge_mode: str | None) -> None:
        if not isinstance(backward, RNN):
            raise TypeError(f"{self.name}: backward_layer must be a recurrent layer, got {type(backward).__name__}")
        for attr in ("return_sequences", "return_state", "stateful", "time_major"):
            if getattr(layer, attr) != getattr(backward, attr):
                raise ValueError(
                    f"{self.name}: forward and backward layers must agree on {attr}: "
                    f"forward has {getattr(layer, attr)}, backward_layer has {getattr(backward, attr)}"
                )
        if layer.go_backwards == backward.go_backwards:
            raise ValueError(
                f"{self.name}: backward_layer must process in the opposite direction: both have "
                f"go_backwards={layer.go_backwards}"
            )
        # As Keras 3: the halves may differ in width (LSTM(4) forwards, GRU(3) backwards:
        # 7 features with concat), but sum, mul and ave need equal ones.
        f_size, b_size = _output_size(layer), _output_size(backward)
        if merge_mode in ("sum", "mul", "ave") and None not in (f_size, b_size) and f_size != b_size:
            raise ValueError(
                f"{self.name}: merge_mode={merge_mode!r} needs forward and backward outputs of the same size: "
                f"forward layer has output size {f_size}, backward_layer has {b_size} "
                "(use merge_mode='concat' or None for halves of other sizes)"
            )
        # The two cells may differ in type and states (LSTM forward, GRU backward):
        # initial_state, return_state and reset_states use each half's own count.

    # ------------------------------------------------------------------ build
    def build(self, input_shape: tuple) -> None:
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None
        self.built = True

    @property
    def dtype(self) -> torch.dtype:
        return self.forward_layer.dtype

    def set_weights(self, weights: list) -> None:
        """Forward weights then backward ones, each half through its own ``set_weights``."""
        weights = list(weights)
        n_fw, n_bw = len(self.forward_layer.weights), len(self.backward_layer.weights)
        if len(weights) != n_fw + n_bw:
            raise ValueError(
                f"{self.name}: set_weights expected {n_fw} forward then {n_bw} backward arrays, got {len(weights)}"
            )
        self.forward_layer.set_weights(weights[:n_fw])
        self.backward_layer.set_weights(weights[n_fw:])

    # ------------------------------------------------------------------- call
    def forward(self, sequences, initial_state=None, mask=None, training=None, constants=None):
        """The layer's call with its arguments named (``torch.export``'s ``dynamic_shapes`` uses the names)."""
        return self.call(sequences, initial_state, mask, training, constants)

    def call(self, sequences, initial_state=None, mask=None, training=None, constants=None):
        if mask is None:
            mask = getattr(sequences, "_keras_mask", None)
        fw_state = bw_state = None
        if initial_state is not None:
            flat = flatten(list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state])
            n_fw = state_count(self.forward_layer)
            if len(flat) != n_fw + state_count(self.backward_layer):
                raise ValueError(
                    f"{self.name}: initial_state must hold {n_fw} forward then "
                    f"{state_count(self.backward_layer)} backward state tensors, got {len(flat)}"
                )
            fw_state, bw_state = flat[:n_fw], flat[n_fw:]
        y, y_rev = self._both(sequences, fw_state, bw_state, mask, training, constants)
        states: list = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        out_mask = mask if self.return_sequences else None
        if out_mask is not None and not isinstance(out_mask, torch.Tensor):
            out_mask = torch.as_tensor(np.asarray(out_mask)) != 0
        if self.return_sequences:
            y_rev = y_rev.flip(0 if self.time_major else 1)
        out = _merge(self.merge_mode, y, y_rev)
        for o in out if isinstance(out, list) else [out]:
            attach_mask(o, out_mask)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def _both(self, sequences, fw_state, bw_state, mask, training, constants):
        """Both halves' results: one bidirectional kernel call when both can fuse."""
        fw, bw = self.forward_layer, self.backward_layer
        call_fw = fw.prepare(sequences, fw_state, mask, training, constants)
        call_bw = bw.prepare(sequences, bw_state, mask, training, constants)
        pair = None if pair_blockers(call_fw, call_bw) else fused_bidirectional(call_fw, call_bw)
        if pair is None:
            y, y_rev = call_fw.run(), call_bw.run()
        else:
            res_fw, res_bw = pair
            y, y_rev = call_fw.finish(*res_fw), call_bw.finish(*res_bw)
        fw.record_activity(y)
        bw.record_activity(y_rev)
        return y, y_rev

    # -------------------------------------------------------------- stateful
    def reset_states(self, states: Any = None) -> None:
        """Reset both directions; ``states`` lists the forward states then the backward ones."""
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        flat = flatten(list(states))
        n_fw = state_count(self.forward_layer)
        self.forward_layer.reset_states(flat[:n_fw])
        self.backward_layer.reset_states(flat[n_fw:])

    def reset_state(self) -> None:
        self.reset_states()

    # ----------------------------------------------------------------- config
    def compute_output_shape(self, input_shape: tuple) -> Any:
        fw = self.forward_layer.compute_output_shape(input_shape)
        bw = self.backward_layer.compute_output_shape(input_shape)
        y, y_rev = (fw[0], bw[0]) if self.return_state else (fw, bw)
        if self.merge_mode == "concat":
            y = tuple(y[:-1]) + (y[-1] + y_rev[-1],)
        out = [y, y_rev] if self.merge_mode is None else [y]
        if self.return_state:
            return out + list(fw[1:]) + list(bw[1:])
        return out if self.merge_mode is None else y

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Masks of the outputs, in the order ``call`` returns them (see the module docstring).

        Keras 3 appends the state masks only for stateful layers (and then
        fails on a generator); rnnkit appends one None per returned state.
        """
        if isinstance(mask, (list, tuple)):
            mask = flatten(list(mask))[0] if mask else None
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            # one None per returned state entry (a stacked cell's states are one nested entry each)
            n = len(self.forward_layer.state_size) + len(self.backward_layer.state_size)
            return masks + [None] * n
        return masks if self.merge_mode is None else output_mask

    def get_config(self) -> dict:
        config = super().get_config()
        config["layer"] = serialize_layer(self.forward_layer)
        config["merge_mode"] = self.merge_mode
        if self._explicit_backward:
            config["backward_layer"] = serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Bidirectional:
        config = dict(config)
        layer = deserialize_layer(config.pop("layer"), custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = deserialize_layer(backward, custom_objects)
        return cls(layer, backward_layer=backward, **config)


def state_count(layer: RNN) -> int:
    """Number of state tensors of a recurrent layer."""
    return count_states(layer.state_size)
