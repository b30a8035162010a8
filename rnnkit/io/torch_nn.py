"""Exact conversion between rnnkit recurrent layers and ``torch.nn.LSTM`` / ``GRU`` / ``RNN``.

``from_torch(module)`` builds the rnnkit layer that computes what ``module``
computes; ``to_torch(layer)`` builds the torch module that computes what
``layer`` computes. The weight layouts are :mod:`rnnkit.kernels.lstm`,
:mod:`rnnkit.kernels.gru` and :mod:`rnnkit.kernels.simple_rnn`'s (the kernel
specs'); this module only maps structures:

==============================================  ===================================================
``torch.nn`` module                             rnnkit layer
==============================================  ===================================================
``LSTM`` / ``GRU`` / ``RNN(nonlinearity=...)``  ``LSTM`` / ``GRU(reset_after=True)`` /
                                                ``SimpleRNN(activation="tanh" | "relu")``
``num_layers=L > 1``                            ``RNN([cell_1, ..., cell_L])`` (``StackedRNNCells``)
``bidirectional=True``                          ``Bidirectional(layer, merge_mode="concat")``
``bidirectional=True, num_layers=L > 1``        ``Sequential([Bidirectional(layer_1), ...,
                                                Bidirectional(layer_L)])``
``batch_first=False`` / ``True``                ``time_major=True`` / ``False``: the same input
                                                tensor, the same output layout
``bias``                                        ``use_bias``
==============================================  ===================================================

Outputs. The layer ``from_torch`` builds returns sequences
(``return_sequences=True``): ``layer(x)`` equals torch's ``output`` for the
same ``x``. With ``return_state=True`` it returns ``[output, *states]``,
states ``(batch, hidden)`` each, which map to torch's ``h_n`` / ``c_n``
``(num_layers * num_directions, batch, hidden)`` so::

    LSTM, one layer            [y, h, c]                  h_n = h[None], c_n = c[None]
    GRU / RNN, one layer       [y, h]                     h_n = h[None]
    stacked (L layers)         [y, s_1, ..., s_L]         s_k = [h_k, c_k] (LSTM) or [h_k];
                                                          h_n = stack([h_1, ..., h_L])
    bidirectional, one layer   [y, h_f, (c_f,) h_b, (c_b)]  h_n = stack([h_f, h_b])

``initial_state`` takes the same entries (torch's ``h_0[k]``, ``c_0[k]``).
A ``Sequential`` passes on sequences only, so a bidirectional module with
several layers converts with ``return_state=False`` only.

Going to torch, the module always returns the whole sequence and the final
states, ``(output, h_n)`` or ``(output, (h_n, c_n))``, with the mapping above;
a layer with ``return_sequences=False`` returns ``output[:, -1]``
(``output[-1]`` time-major), or for ``Bidirectional`` the concatenation of the
forward half of ``output`` at the last step and the backward half at the
first, which is ``cat([h_n[-2], h_n[-1]], -1)``. Masks have no torch.nn
counterpart: give the torch module a ``PackedSequence`` for right-padded
sequences (what rnnkit's fused path does).

Only exact conversions are made; anything else is refused with the reason:
``LSTM(proj_size > 0)`` (no Keras cell projects its output), dropout between
torch layers, and going to torch: other activations (``hard_sigmoid``...),
``GRU(reset_after=False)``, ``dropout`` / ``recurrent_dropout`` (Keras drops
cell inputs and states, torch only between layers), ``go_backwards`` outside
``Bidirectional``, ``stateful``, ``merge_mode`` other than ``"concat"``,
stacks that mix families, units or ``use_bias``, custom cells and cells that
override their step. ``ignore_dropout=True`` converts despite dropout, for
inference: the result has no dropout, so it agrees in eval mode only.
Regularizers and constraints do not travel (they change no output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch

from rnnkit.cells.stacked import StackedRNNCells
from rnnkit.engine import activations
from rnnkit.kernels import gru as gru_spec
from rnnkit.kernels import lstm as lstm_spec
from rnnkit.kernels import simple_rnn as simple_rnn_spec
from rnnkit.kernels.spec import KernelSpec, cell_to_torch, spec_for
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.builtin import GRU, LSTM, SimpleRNN
from rnnkit.layers.rnn import RNN
from rnnkit.models.sequential import Sequential


@dataclass(frozen=True)
class _Family:
    """One cell family's faces: its torch module, its rnnkit layer, its kernel spec (and its torch -> Keras map)."""

    torch_class: type[torch.nn.RNNBase]
    layer_class: type[RNN]
    spec: KernelSpec
    from_torch: Callable[..., list[torch.Tensor]]  # torch -> Keras weights (the spec's)


_FAMILIES = (
    _Family(torch.nn.LSTM, LSTM, lstm_spec.SPEC, lstm_spec.lstm_from_torch),
    _Family(torch.nn.GRU, GRU, gru_spec.SPEC, gru_spec.gru_from_torch),
    _Family(torch.nn.RNN, SimpleRNN, simple_rnn_spec.SPEC, simple_rnn_spec.simple_rnn_from_torch),
)


def _family_of_module(module: Any) -> _Family:
    for family in _FAMILIES:
        if isinstance(module, family.torch_class):
            return family
    raise TypeError(
        f"from_torch: expected a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, got {type(module).__name__}"
    )


def _family_of_spec(spec: KernelSpec | None) -> _Family | None:
    return next((f for f in _FAMILIES if f.spec is spec), None)


# --------------------------------------------------------------- from torch
def _torch_weights(module: torch.nn.RNNBase, layer: int, reverse: bool) -> list[torch.Tensor]:
    """``[weight_ih, weight_hh(, bias_ih, bias_hh)]`` of one layer and direction of ``module``."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    return [getattr(module, name + suffix) for name in names]


def _check_module(module: torch.nn.RNNBase, return_state: bool, ignore_dropout: bool) -> None:
    kind = type(module).__name__
    if getattr(module, "proj_size", 0):
        raise ValueError(
            f"from_torch: {kind}(proj_size={module.proj_size}) projects its hidden state; no Keras cell does "
            "(expected proj_size=0)"
        )
    if module.dropout and module.num_layers > 1 and not ignore_dropout:
        raise ValueError(
            f"from_torch: {kind}(dropout={module.dropout}) drops outputs between its {module.num_layers} layers "
            "in training; stacked Keras cells have no such dropout, so training would differ. Pass "
            "ignore_dropout=True to convert for inference (no dropout: the same outputs in eval mode), or set "
            "module.dropout = 0"
        )
    if return_state and module.bidirectional and module.num_layers > 1:
        raise ValueError(
            f"from_torch: {kind}(bidirectional=True, num_layers={module.num_layers}) becomes a Sequential of "
            "Bidirectional layers, which passes on sequences only: return_state=True is not available (expected "
            "return_state=False, or num_layers=1)"
        )


def _layer_args(module: torch.nn.RNNBase, family: _Family, dtype: torch.dtype) -> dict:
    """Arguments shared by the rnnkit layer and cells: units, bias, dtype and the activation."""
    args: dict = {"units": module.hidden_size, "use_bias": bool(module.bias), "dtype": dtype}
    if family.torch_class is torch.nn.RNN:
        args["activation"] = module.nonlinearity
    if family.torch_class is torch.nn.GRU:
        args["reset_after"] = True
    return args


def from_torch(
    module: torch.nn.RNNBase,
    *,
    return_state: bool = False,
    ignore_dropout: bool = False,
    layer_class: type | None = None,
) -> Any:
    """The rnnkit layer that computes exactly what ``module`` computes (see the module docstring).

    Args:
        module: a ``torch.nn.LSTM``, ``torch.nn.GRU`` or ``torch.nn.RNN``.
        return_state: whether the layer returns ``[output, *states]`` (mapping
            to ``h_n`` / ``c_n``: module docstring) instead of ``output``.
        ignore_dropout: convert a multi-layer module with ``dropout > 0``
            anyway; the result has no dropout (same outputs in eval mode).
        layer_class: the rnnkit layer class the caller expects the module to
            be the twin of (``rnnkit.LSTM.from_torch`` passes ``LSTM``).

    Returns:
        ``LSTM`` / ``GRU`` / ``SimpleRNN``, ``RNN`` over stacked cells,
        ``Bidirectional`` or ``Sequential``, with ``return_sequences=True``,
        ``time_major = not module.batch_first``, in the module's dtype, on its
        device and in its train / eval mode.
    """
    if layer_class is not None:
        _check_layer_class(layer_class, module)
    family = _family_of_module(module)
    _check_module(module, return_state, ignore_dropout)
    first = cast(torch.Tensor, module.weight_ih_l0)
    args = _layer_args(module, family, first.dtype)
    layers, dirs = module.num_layers, 2 if module.bidirectional else 1
    weights = [[family.from_torch(*_torch_weights(module, k, d == 1)) for d in range(dirs)]
               for k in range(layers)]
    common = {"return_sequences": True, "time_major": not module.batch_first}
    layer: Any
    if dirs == 1 and layers == 1:
        layer = family.layer_class(**args, return_state=return_state, **common)
    elif dirs == 1:
        cells = [family.spec.cell_class(**args) for _ in range(layers)]
        layer = RNN(cells, return_state=return_state, **common)
    elif layers == 1:
        layer = Bidirectional(family.layer_class(**args, return_state=return_state, **common))
    else:
        parts = []
        for k in range(layers):
            part = Bidirectional(family.layer_class(**args, **common))
            part.build((None, None, module.input_size if k == 0 else dirs * module.hidden_size))
            part.set_weights([w for direction in weights[k] for w in direction])
            parts.append(part)
        layer = Sequential(parts)
    if not isinstance(layer, Sequential):
        layer.build((None, None, module.input_size))
        layer.set_weights([w for per_layer in weights for direction in per_layer for w in direction])
    layer.to(first.device)
    layer.train(module.training)
    return layer


def _check_layer_class(layer_class: type, module: Any) -> None:
    """``layer_class.from_torch(module)`` is asked for: ``module`` must be that class's torch twin."""
    name = layer_class.__name__
    twin = next((f for f in _FAMILIES if f.layer_class is layer_class), None)
    if twin is None:
        layers = ", ".join(f"rnnkit.{f.layer_class.__name__}" for f in _FAMILIES)
        raise TypeError(f"{name}.from_torch: only {layers} have a torch.nn twin; convert with one of those "
                        f"(got a {type(module).__name__})")
    if not isinstance(module, twin.torch_class):
        raise TypeError(f"{name}.from_torch: expected a torch.nn.{twin.torch_class.__name__}, got "
                        f"{type(module).__name__}")


# ----------------------------------------------------------------- to torch
@dataclass
class _TorchLayer:
    """One torch layer: a cell per direction (forward, backward), and the rnnkit layers that run them."""

    cells: list[Any]
    layers: list[RNN]


def _refuse(where: str, why: str) -> ValueError:
    return ValueError(f"to_torch: {where}: {why}")


def _check_rnn(layer: RNN, backwards: bool) -> None:
    if not layer.built or not getattr(layer.cell, "built", False):
        raise _refuse(layer.name, "the layer is not built, so its input size is unknown; call it once or "
                                  "build(input_shape) first")
    if layer.go_backwards and not backwards:
        raise _refuse(layer.name, "go_backwards=True: torch.nn runs a reversed direction only inside a "
                                  "bidirectional module (expected go_backwards=False, or a Bidirectional)")
    if backwards and not layer.go_backwards:
        raise _refuse(layer.name, "the backward layer of a Bidirectional must run backwards (go_backwards=True); "
                                  "the forward one must not")
    if layer.stateful:
        raise _refuse(layer.name, "stateful=True: torch.nn modules carry no states between calls (pass them as "
                                  "h_0 / c_0 instead); expected stateful=False")


def _torch_layers(item: Any) -> list[_TorchLayer]:
    """The torch layers ``item`` (one element of a stack) stands for."""
    if isinstance(item, Bidirectional):
        if item.merge_mode != "concat":
            raise _refuse(item.name, f"merge_mode={item.merge_mode!r}: torch.nn concatenates the two directions "
                                     "(expected merge_mode='concat')")
        fw, bw = item.forward_layer, item.backward_layer
        _check_rnn(fw, backwards=False)
        _check_rnn(bw, backwards=True)
        if isinstance(fw.cell, StackedRNNCells) or isinstance(bw.cell, StackedRNNCells):
            raise _refuse(item.name, "a Bidirectional over stacked cells runs two separate deep stacks, while "
                                     "each torch.nn layer reads both directions of the layer below: use a "
                                     "Sequential of Bidirectional layers instead")
        return [_TorchLayer([fw.cell, bw.cell], [fw, bw])]
    if isinstance(item, RNN):
        _check_rnn(item, backwards=False)
        cells = item.cell.cells if isinstance(item.cell, StackedRNNCells) else [item.cell]
        return [_TorchLayer([cell], [item]) for cell in cells]
    raise TypeError(
        f"to_torch: expected an rnnkit recurrent layer (LSTM, GRU, SimpleRNN, RNN over their cells), a "
        f"Bidirectional of one, or a Sequential of those; got {type(item).__name__}"
    )


def _stack_of(layer: Any) -> list[_TorchLayer]:
    """The torch layers of ``layer``, bottom first."""
    items = list(layer) if isinstance(layer, Sequential) else [layer]
    if not items:
        raise TypeError("to_torch: the Sequential has no layers")
    for item in items[:-1]:
        if not (isinstance(item, (RNN, Bidirectional)) and item.return_sequences and not item.return_state):
            raise _refuse(getattr(item, "name", type(item).__name__),
                          "inside a stack every layer but the last must be recurrent and return sequences only "
                          "(return_sequences=True, return_state=False)")
    return [t for item in items for t in _torch_layers(item)]


_DROPOUT = {"dropout": "the cell's inputs", "recurrent_dropout": "the recurrent state"}


def _cell_spec(cell: Any, owner: RNN, ignore_dropout: bool) -> KernelSpec:
    """The cell's kernel spec, or the reason torch.nn cannot compute the cell exactly."""
    where = f"{owner.name} (cell {getattr(cell, 'name', type(cell).__name__)})"
    spec = spec_for(cell)
    family = _family_of_spec(spec)
    if spec is None or family is None or spec.kernel(cell) is None:
        raise _refuse(where, f"{type(cell).__name__} has no torch.nn twin (only LSTMCell, GRUCell and "
                             "SimpleRNNCell do, with their own step math)")
    reasons = list(spec.blockers(cell))
    if not ignore_dropout:
        reasons += [f"{arg}={getattr(cell, arg)} (Keras drops {what} at every step, torch.nn has no such dropout; "
                    "ignore_dropout=True converts for inference)"
                    for arg, what in _DROPOUT.items() if getattr(cell, arg)]
    if reasons:
        raise _refuse(where, f"torch.nn.{family.torch_class.__name__} cannot compute this cell exactly: "
                             + "; ".join(reasons))
    return spec


def _one(where: str, values: list, what: str) -> Any:
    """The one value all layers of a torch.nn module share, or the reason there is none."""
    distinct = sorted({repr(v) for v in values})
    if len(distinct) > 1:
        raise _refuse(where, f"a torch.nn module has one {what} for all its layers; these layers have "
                             f"{', '.join(distinct)}")
    return values[0]


def to_torch(layer: Any, *, ignore_dropout: bool = False) -> torch.nn.RNNBase:
    """The ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` that computes exactly what ``layer`` computes.

    Args:
        layer: a built ``LSTM``, ``GRU``, ``SimpleRNN`` (``CuDNN*`` too), an
            ``RNN`` over one of their cells or over ``StackedRNNCells`` of
            them (``num_layers``), a ``Bidirectional`` (``merge_mode="concat"``)
            of a one-cell layer, or a ``Sequential`` of such layers, all
            unidirectional or all bidirectional.
        ignore_dropout: convert despite ``dropout`` / ``recurrent_dropout``;
            the module has none (same outputs in eval mode).

    Returns:
        The module, ``batch_first = not layer.time_major``, in the layer's
        dtype, on its device and in its train / eval mode; outputs map as the
        module docstring says.
    """
    stack = _stack_of(layer)
    name = getattr(layer, "name", type(layer).__name__)
    cells = [cell for t in stack for cell in t.cells]
    specs = [_cell_spec(cell, owner, ignore_dropout) for t in stack for cell, owner in zip(t.cells, t.layers)]
    _one(name, [s.name for s in specs], "cell family")
    family = cast(_Family, _family_of_spec(specs[0]))  # _cell_spec refused cells of no family
    units = _one(name, [c.units for c in cells], "hidden size (units)")
    use_bias = _one(name, [c.use_bias for c in cells], "bias setting (use_bias)")
    time_major = _one(name, [r.time_major for t in stack for r in t.layers], "layout (time_major)")
    extra: dict = {}
    if family.torch_class is torch.nn.RNN:
        extra["nonlinearity"] = _one(name, [activations.serialize(c.activation) for c in cells], "nonlinearity")
    directions = _one(name, [len(t.cells) for t in stack], "number of directions (Bidirectional or not)")
    for k, t in enumerate(stack[1:], start=1):
        for cell in t.cells:
            if cell.kernel.shape[0] != directions * units:
                raise _refuse(cell.name, f"it reads {cell.kernel.shape[0]} features; torch.nn's layer {k} reads "
                                         f"{directions * units} (the layer below's output)")
    kernel = cells[0].kernel
    module = family.torch_class(
        kernel.shape[0], units, num_layers=len(stack), bias=use_bias, batch_first=not time_major,
        bidirectional=directions == 2, dtype=kernel.dtype, device=kernel.device, **extra,
    )
    with torch.no_grad():
        for k, t in enumerate(stack):
            for d, cell in enumerate(t.cells):
                for target, value in zip(_torch_weights(module, k, d == 1), cell_to_torch(cell), strict=True):
                    target.copy_(value)
    module.train(layer.training)
    return module
