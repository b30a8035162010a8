"""ONNX export with native ``LSTM`` / ``GRU`` / ``RNN`` nodes: :func:`export_onnx`.

``export_onnx(model, args, path, kwargs=None, dynamic_shapes=None)`` runs
``torch.onnx.export(..., dynamo=True)`` with a translation of rnnkit's two
opaque kernel ops (:mod:`rnnkit.kernels.ops`), so that every fused call
becomes one native ONNX node, never a loop:

``rnnkit::rnn_kernel(x, hx, weights, mode, use_bias, bidirectional, lengths)``
    one ``LSTM`` (``mode="lstm"``), ``GRU`` (``"gru"``, ``linear_before_reset=1``:
    torch's and Keras's ``reset_after=True`` GRU) or ``RNN`` (``"rnn_tanh"`` /
    ``"rnn_relu"``: ``activations=["Relu"]``) node, ``direction="forward"`` or
    ``"bidirectional"`` (``Bidirectional`` of two fusable halves), with
    ``lengths`` as ``sequence_lens``.
``rnnkit::rnn_kernel_masked(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output)``
    one node with ``sequence_lens = mask.sum(1)`` (``direction="reverse"``
    with ``go_backwards``), and Keras's masking rules as ONNX ops around it
    (see *Masks* below).

Layouts. ``x`` is batch-major ``(B, T, D)`` and ONNX's default layout is
time-major, so ``X = Transpose(x)`` ``(T, B, D)``; ``Y`` ``(T, dirs, B, U)``
goes back to ``(B, T, dirs*U)``. Weights are converted in the graph from the
kernel's (torch.nn) layout, per direction ``w_ih (G*U, D)``, ``w_hh (G*U, U)``,
``b_ih``, ``b_hh`` ``(G*U,)``, to ONNX's ``W (dirs, G*U, D)``, ``R (dirs, G*U, U)``,
``B (dirs, 2*G*U) = [Wb, Rb]``, reordering the gate blocks:

=====  ==================  ===============  ==================
mode   torch.nn gates      ONNX gates       block permutation
=====  ==================  ===============  ==================
lstm   ``i f g o``         ``i o f c``      ``[0, 3, 1, 2]``
gru    ``r z n``           ``z r h``        ``[1, 0, 2]``
rnn    one block           one block        ``[0]``
=====  ==================  ===============  ==================

(the optimizer folds these into the initializers when the weights are
constants). Initial states are ``initial_h`` / ``initial_c`` ``(dirs, B, U)``.

Masks. ONNX's ``sequence_lens`` describes a *right-padded* mask (each row
``True...True False...False``, all-False rows included), and only that. For
one, the masked node is exact, as :func:`rnnkit.kernels.ops.masked_kernel_call`:
masked steps repeat the last valid output (zeros with
``zero_output_for_mask``), the final states are those after the last valid
step, ``go_backwards`` outputs come in Keras's processing order (the padding
first, as zeros), and fully masked rows keep their initial states and output
zeros. A mask with holes or leading padding has no native node, and the
exported graph does not silently treat it as right-padded: it checks every
mask it receives and **fails at run time** (onnxruntime raises an error from
the ``Reshape`` node named :data:`MASK_CHECK_NODE`) when a mask is not
right-padded. ONNX has no assertion operator; a reshape to an impossible shape
is the failure. Models whose masks may have holes cannot be exported exactly
with native nodes (an ONNX ``Loop`` export is not implemented).

What stays a loop. Layers that do not take the fused path (custom and stacked
cells, ``ConvLSTM*``, non-default activations, ``unroll=True``,
``use_fused=False``; see ``rnnkit.explain``) run a Python loop that
``torch.export`` unrolls for the example's length: they export with a static
time axis only. ``torch.onnx.export`` alone would quietly specialize a time
axis marked dynamic; :func:`export_onnx` refuses instead, naming the layers.

The model is exported in ``eval()`` mode (restored afterwards). onnxruntime
runs the native nodes in float32; ``torch.onnx``, ``onnx``, ``onnxscript`` and
``onnxruntime`` are imported only when :func:`export_onnx` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

MASK_CHECK_NODE = "rnnkit_mask_must_be_right_padded"

_GATE_BLOCKS = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_tanh": [0], "rnn_relu": [0]}


def export_onnx(model: torch.nn.Module, args: tuple, path: Any, kwargs: dict | None = None,
                dynamic_shapes: Any = None) -> Any:
    """Export ``model(*args, **kwargs)`` to the ONNX file ``path`` with native recurrent nodes.

    Args:
        model: a built rnnkit layer or model (any ``torch.nn.Module`` holding them).
        args: the example positional arguments (a tuple).
        path: the ``.onnx`` file to write.
        kwargs: the example keyword arguments (``mask=...``, ``initial_state=...``).
        dynamic_shapes: as ``torch.export.export``'s, by argument name, e.g.
            ``{"sequences": {0: batch, 1: time}, "mask": {0: batch, 1: time}}``
            with ``batch = torch.export.Dim("batch")``.

    Returns the ``torch.onnx.ONNXProgram``. Raises ``ValueError`` when a
    dynamic axis cannot stay dynamic because a recurrent layer runs a loop
    (see the module docstring).
    """
    kwargs = dict(kwargs or {})
    args = tuple(args)
    was_training = model.training
    model.eval()
    try:
        program = _export_program(model, args, kwargs, dynamic_shapes)
        return torch.onnx.export(program, args, path, kwargs=kwargs, dynamo=True, verbose=False,
                                 custom_translation_table=translation_table())
    finally:
        model.train(was_training)


def _export_program(model: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes: Any):
    """``torch.export.export`` as asked: a dynamic axis the model specializes is an error, not a fix."""
    try:
        return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except torch._dynamo.exc.UserError as exc:
        loops = loop_layers(model)
        if exc.error_type is not torch._dynamo.exc.UserErrorType.CONSTRAINT_VIOLATION or not loops:
            raise
        raise ValueError(
            f"export_onnx: {type(model).__name__} cannot keep every axis in dynamic_shapes dynamic: "
            + "; ".join(f"{name} runs the {plan}" for name, plan in loops)
            + ". A loop is unrolled for the example's length, so its time axis must be static "
            "(leave it out of dynamic_shapes); only fused layers become native ONNX nodes with a dynamic time axis"
        ) from exc


def loop_layers(model: torch.nn.Module) -> list[tuple[str, str]]:
    """``(name, plan)`` of the recurrent layers in ``model`` that run a loop in eval mode, not a kernel."""
    from rnnkit.kernels.path import FUSED, select_path
    from rnnkit.layers.rnn import RNN

    out = []
    for module in model.modules():
        if isinstance(module, RNN):
            plan = select_path(module, None, False)
            if plan.path != FUSED:
                out.append((module.name, str(plan)))
    return out


def translation_table() -> dict[Callable, Callable]:
    """``custom_translation_table`` for ``torch.onnx.export``: rnnkit's kernel ops -> native nodes."""
    return {torch.ops.rnnkit.rnn_kernel.default: _rnn_kernel,
            torch.ops.rnnkit.rnn_kernel_masked.default: _rnn_kernel_masked}


# ------------------------------------------------------------ translations
# Called by the exporter with onnxscript values for tensors (lists for lists) and plain Python
# values for the static arguments; each returns the op's outputs as a list.

def _op():
    from onnxscript import opset18

    return opset18


def _ints(values: list[int]):
    return _op().Constant(value_ints=list(values))


def _to_onnx_weights(weights: list, mode: str, use_bias: bool, directions: int) -> tuple:
    """``W``, ``R``, ``B`` (or None) in ONNX's layout from the kernel's weight list (module docstring)."""
    op = _op()
    units = weights[1].shape[1]
    order = _ints([block * units + i for block in _GATE_BLOCKS[mode] for i in range(units)])
    per = 4 if use_bias else 2

    def reorder(t):
        return op.Gather(t, order, axis=0)

    parts: dict[str, list] = {"W": [], "R": [], "B": []}
    for d in range(directions):
        w = weights[d * per:(d + 1) * per]
        parts["W"].append(op.Unsqueeze(reorder(w[0]), _ints([0])))
        parts["R"].append(op.Unsqueeze(reorder(w[1]), _ints([0])))
        if use_bias:
            parts["B"].append(op.Unsqueeze(op.Concat(reorder(w[2]), reorder(w[3]), axis=0), _ints([0])))
    W, R = (op.Concat(*parts[k], axis=0) for k in ("W", "R"))
    B = op.Concat(*parts["B"], axis=0) if use_bias else None
    return W, R, B


def _native(X, hx: list, weights: list, mode: str, use_bias: bool, direction: str, sequence_lens) -> list:
    """One native node over time-major ``X``: ``[Y (T, dirs, B, U), Y_h, (Y_c)]``."""
    op = _op()
    directions = 2 if direction == "bidirectional" else 1
    W, R, B = _to_onnx_weights(weights, mode, use_bias, directions)
    attrs: dict[str, Any] = {"hidden_size": weights[1].shape[1], "direction": direction}
    if mode == "lstm":
        return list(op.LSTM(X, W, R, B, sequence_lens, hx[0], hx[1], **attrs))
    if mode == "gru":
        return list(op.GRU(X, W, R, B, sequence_lens, hx[0], linear_before_reset=1, **attrs))
    activation = "Relu" if mode == "rnn_relu" else "Tanh"
    return list(op.RNN(X, W, R, B, sequence_lens, hx[0], activations=[activation] * directions, **attrs))


def _rnn_kernel(x, hx, weights, mode, use_bias, bidirectional, lengths):
    """``rnnkit::rnn_kernel``: ``[out (B, T, dirs*U), *hn (dirs, B, U)]``.

    With ``lengths``, rows of length 0 run one step, as the kernel does (its caller fixes them).
    """
    op = _op()
    sequence_lens = None
    if lengths is not None:
        sequence_lens = op.Cast(op.Max(lengths, op.CastLike(_ints([1]), lengths)), to=6)  # int32
    direction = "bidirectional" if bidirectional else "forward"
    Y, *hn = _native(op.Transpose(x, perm=[1, 0, 2]), list(hx), weights, mode, use_bias, direction, sequence_lens)
    out = op.Reshape(op.Transpose(Y, perm=[2, 0, 1, 3]), _ints([0, 0, -1]))
    return [out, *hn]


def _rnn_kernel_masked(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output):
    """``rnnkit::rnn_kernel_masked`` for right-padded masks: ``[outputs (B, T, U), *new_states (B, U)]``.

    With ``L`` the row lengths, ``t`` the step index and ``Y`` the node's outputs
    aligned with the input steps (zero past ``L``)::

        forward             outputs[b, t] = Y[b, min(t, L_b - 1)]   (0 where L_b = 0)
        zero_output         outputs[b, t] = Y[b, t] if t < L_b else 0
        go_backwards        outputs = flip(Y, time)                  (direction="reverse")
        new_states[b]       = Y_h[b] if L_b > 0 else hx[b]

    Any other mask makes the ``MASK_CHECK_NODE`` reshape fail at run time.
    """
    op = _op()
    lengths = op.ReduceSum(op.Cast(mask, to=7), _ints([1]), keepdims=0)  # int64 (B,)
    steps = op.Range(op.Constant(value_int=0), op.Squeeze(op.Shape(mask, start=1, end=2), _ints([0])),
                     op.Constant(value_int=1))
    valid = op.Less(op.Unsqueeze(steps, _ints([0])), op.Unsqueeze(lengths, _ints([1])))  # (B, T): t < L
    lengths = _checked_lengths(lengths, mask, valid)
    sequence_lens = op.Cast(op.Max(lengths, _ints([1])), to=6)  # rows of length 0 run one step, fixed below
    direction = "reverse" if go_backwards else "forward"
    hx0 = [op.Unsqueeze(h, _ints([0])) for h in hx]
    Y, *hn = _native(op.Transpose(x, perm=[1, 0, 2]), hx0, weights, mode, use_bias, direction, sequence_lens)
    Y = op.Transpose(op.Squeeze(Y, _ints([1])), perm=[1, 0, 2])  # (B, T, U)
    zero = op.CastLike(op.Constant(value_float=0.0), Y)
    has_steps = op.Greater(lengths, op.Constant(value_int=0))
    new_states = [op.Where(op.Unsqueeze(has_steps, _ints([1])), op.Squeeze(h, _ints([0])), s)
                  for h, s in zip(hn, hx)]
    if go_backwards or zero_output:
        outputs = op.Where(op.Unsqueeze(valid, _ints([2])), Y, zero)
        if go_backwards:  # Keras's processing order: the padding first, then the valid steps from the end
            outputs = op.Slice(outputs, _ints([-1]), _ints([-(2**63)]), _ints([1]), _ints([-1]))
        return [outputs, *new_states]
    last = op.Sub(op.Unsqueeze(lengths, _ints([1])), op.Constant(value_int=1))
    source = op.Max(op.Min(op.Unsqueeze(steps, _ints([0])), last), op.Constant(value_int=0))  # (B, T)
    index = op.Expand(op.Unsqueeze(source, _ints([2])), op.Shape(Y))
    outputs = op.Where(op.Unsqueeze(has_steps, _ints([1, 2])), op.GatherElements(Y, index, axis=1), zero)
    return [outputs, *new_states]


def _checked_lengths(lengths, mask, right_padded):
    """``lengths`` ``(B,)`` passed through a reshape of ``(1, B)`` to ``(1 + wrong, B + wrong)``, ``wrong``
    = 1 unless ``mask`` equals ``right_padded``: a reshape that fails (both dimensions data-dependent, so
    no optimizer can rewrite it away), the graph's run-time refusal of masks with holes."""
    op = _op()
    wrong = op.Unsqueeze(op.ReduceMax(op.Cast(op.Xor(mask, right_padded), to=7), keepdims=0), _ints([0]))
    shape = op.Concat(op.Add(_ints([1]), wrong), op.Add(op.Shape(lengths), wrong), axis=0)
    checked = op.Reshape(op.Unsqueeze(lengths, _ints([0])), shape)
    checked.producer().name = MASK_CHECK_NODE
    return op.Squeeze(checked, _ints([0]))
