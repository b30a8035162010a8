"""Masked LSTM batches on torch's unmasked kernel: the held input and, for right-padded rows, the held outputs.

:func:`rnnkit.kernels.ops.right_padded_call` runs a right-padded LSTM batch (and a backwards one from zero
states) as one unmasked kernel call:

* :func:`hold_input`: the inputs ``(B, T, D)`` with zeros at padded steps (whatever they hold, NaN included,
  never reaches a result) and one more feature, 1 at padded steps and 0 elsewhere; :func:`hold_weights` gives
  ``weight_ih`` the matching column: ``-HOLD`` for the input and output gates, ``+HOLD`` for the forget gate, 0
  for ``g``. On valid steps nothing changes; on padded ones ``f = 1``, ``i = 0`` and ``o = 0`` exactly (the
  sigmoid of ``+-1e4`` is 1 / 0 in every float type), so ``c`` is carried, the output is exactly 0 and no
  gradient passes through the step (the sigmoids' derivatives are 0 there);
* :func:`held_outputs`: ``(outputs, last)`` of right-padded rows: ``last`` ``(B, U)`` each row's output at its
  last valid step (zeros for a row with none), ``outputs`` the kernel's with each row's padded steps repeating
  ``last`` (Keras's rule; zeros with ``zero_output_for_mask``).

Eagerly on the CPU each is one pass of rnnkit's native kernel (``native/padding.h``), forward and backward,
where torch ops take three to five; elsewhere, and where the native kernel cannot be built, the same numbers
from torch ops (:func:`hold_input_torch`, :func:`held_outputs_torch`: the twins the tests compare against). With
``create_graph=True`` the backward is torch ops (differentiable again).
"""

from __future__ import annotations

import torch

from rnnkit.kernels import native
from rnnkit.kernels.derived import kept

# Pre-activation pushed onto the forget (+), input and output (-) gates at padded steps: its sigmoid is
# exactly 1 / 0 in every float type (exp overflows to inf): the cell state passes through unchanged, h is 0.
HOLD = 1e4


def hold_weights(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """LSTM weights ``[weight_ih, ...]`` for :func:`hold_input`'s inputs: ``weight_ih`` with the hold column
    (see the module docstring). In inference made once per weight update (:mod:`rnnkit.kernels.derived`)."""
    w_ih = weights[0]
    if torch.is_grad_enabled():
        return [_with_hold_column(w_ih), *weights[1:]]
    return [kept("hold column", w_ih, _with_hold_column), *weights[1:]]


def _with_hold_column(w_ih: torch.Tensor) -> torch.Tensor:
    units = w_ih.shape[0] // 4
    column = torch.zeros(4, units, 1, dtype=w_ih.dtype, device=w_ih.device)
    column[0], column[1], column[3] = -HOLD, HOLD, -HOLD
    return torch.cat([w_ih, column.view(4 * units, 1)], 1)


def hold_input(x: torch.Tensor, padded: torch.Tensor, hold: bool = True) -> torch.Tensor:
    """``(B, T, D + 1)``: ``x`` zero at padded steps (``padded`` ``(B, T)``), plus the hold feature (see the
    module docstring); without ``hold`` ``(B, T, D)``, the zeroed ``x`` alone."""
    if _native(x):
        return _HoldInput.apply(x, padded, hold)
    return hold_input_torch(x, padded, hold)


def hold_input_torch(x: torch.Tensor, padded: torch.Tensor, hold: bool = True) -> torch.Tensor:
    """:func:`hold_input` in torch ops."""
    out = torch.nn.functional.pad(x, (0, 1)) if hold else x.clone()
    step = x.new_zeros(out.shape[-1])
    if hold:
        step[-1] = 1
    out[padded] = step
    return out


def held_outputs(out: torch.Tensor, lengths: torch.Tensor, padded: torch.Tensor,
                 repeat: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, last)`` of right-padded rows (see the module docstring) from the kernel's ``out`` ``(B, T, U)``,
    the rows' ``lengths`` ``(B,)`` and ``padded`` ``(B, T)``; ``repeat``: the padded steps repeat ``last`` (else
    they are zero). ``out``'s padded steps are never read, and get no gradient."""
    if _native(out):
        outputs, last = _HeldOutputs.apply(out, lengths, padded, repeat)
        return outputs, last
    return held_outputs_torch(out, lengths, padded, repeat)


def held_outputs_torch(out: torch.Tensor, lengths: torch.Tensor, padded: torch.Tensor,
                       repeat: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`held_outputs` in torch ops (products with the 0/1 mask select exactly, several times faster than a
    broadcast ``torch.where`` on the CPU)."""
    valid = out.masked_fill(padded.unsqueeze(-1), 0)
    last = valid[torch.arange(out.shape[0], device=out.device), (lengths - 1).clamp(min=0)]  # (B, U)
    outputs = torch.addcmul(valid, padded.unsqueeze(-1).to(out.dtype), last.unsqueeze(1)) if repeat else valid
    return outputs, last


def _native(t: torch.Tensor) -> bool:
    """The native passes run here: CPU, float32/64, the kernel built."""
    return t.is_cpu and t.dtype in (torch.float32, torch.float64) and native.unavailable() is None


def _op(name: str):
    return getattr(torch.ops.rnnkit_native, name).default


class _HoldInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, padded, hold):  # type: ignore[override]
        ctx.save_for_backward(padded)
        ctx.hold = hold
        return _op("hold_input")(x, padded, hold)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (padded,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiable torch ops
            return (grad[..., :-1] if ctx.hold else grad).masked_fill(padded.unsqueeze(-1), 0), None, None
        return _op("hold_input_backward")(grad, padded, ctx.hold), None, None


class _HeldOutputs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out, lengths, padded, repeat):  # type: ignore[override]
        ctx.save_for_backward(lengths, padded)
        ctx.set_materialize_grads(False)  # (last's gradient is often none: not made of zeros)
        outputs, last = _op("held_outputs")(out, lengths, repeat)
        # (outputs are laid out as the op read out: its gradient the same way)
        ctx.repeat, ctx.shape, ctx.strides = repeat, out.shape, outputs.stride()
        return outputs, last

    @staticmethod
    def backward(ctx, g_outputs, g_last):  # type: ignore[override]
        lengths, padded = ctx.saved_tensors
        if g_outputs is None and g_last is None:
            return None, None, None, None
        if torch.is_grad_enabled():  # create_graph=True: the same gradient in torch ops (differentiable)
            return _held_outputs_grad(g_outputs, g_last, lengths, padded, ctx.repeat, ctx.shape), None, None, None
        # (laid out as out: the kernel's time-major memory, which its backward reads without a copy)
        grad = _op("held_outputs_backward")(g_outputs, g_last, lengths, ctx.repeat, list(ctx.shape), list(ctx.strides))
        return grad, None, None, None


def _held_outputs_grad(g_outputs: torch.Tensor | None, g_last: torch.Tensor | None, lengths: torch.Tensor,
                       padded: torch.Tensor, repeat: bool, shape: torch.Size) -> torch.Tensor:
    """:func:`held_outputs`' gradient with respect to ``out`` in torch ops: what the native backward computes."""
    like = g_outputs if g_outputs is not None else g_last
    assert like is not None
    grad = like.new_zeros(shape) if g_outputs is None else g_outputs.masked_fill(padded.unsqueeze(-1), 0)
    extra = like.new_zeros(shape[0], shape[2]) if g_last is None else g_last
    if repeat and g_outputs is not None:  # the padded steps repeated the last output
        extra = extra + (g_outputs * padded.unsqueeze(-1).to(g_outputs.dtype)).sum(1)
    ran = lengths > 0
    rows = torch.arange(shape[0], device=grad.device)[ran]
    return grad.index_put((rows, (lengths - 1)[ran]), extra[ran], accumulate=True)
