"""The fused RNN kernels as opaque custom ops, for compilers and exporters.

``torch.compile`` and ``torch.export`` cannot trace into ``torch.lstm`` on the
CPU (its oneDNN kernel has no fake implementation), and tracing into any
kernel would unroll nothing useful. Under a compiler the fused path calls

``rnnkit::rnn_kernel(x, hx, weights, mode, use_bias, bidirectional, lengths) -> [out, *hn]``

one opaque node with a fake (meta) implementation for shapes, and an
autograd formula that is itself an opaque op,
``rnnkit::rnn_kernel_backward``: it recomputes the kernel with autograd on
and returns the gradients of ``x``, ``hx`` and the weights (one extra kernel
forward per training step, the price of opacity). Eager calls skip the ops
and call the kernel directly, with torch's own autograd.

``mode`` is ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``;
``lengths`` (optional, ``(B,)``) runs packed sequences as ``run_kernel`` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.core.sequences import reverse_valid, right_padded_lengths
from rnnkit.kernels.held import held_outputs, hold_input, hold_weights
from rnnkit.kernels.spec import kernel_for

KERNELS: dict[str, Any] = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}
_MODE_OF = {id(fn): mode for mode, fn in KERNELS.items()}


def mode_of(kernel) -> str:
    """The ``mode`` name of a torch kernel function."""
    return _MODE_OF[id(kernel)]


def kernel_call(x: torch.Tensor, hx: list[torch.Tensor], weights: list[torch.Tensor], mode: str, use_bias: bool,
                bidirectional: bool, lengths: torch.Tensor | None) -> list[torch.Tensor]:
    """``[out, *hn]`` of one kernel call: ``out`` ``(B, T, D*U)``, each ``hn`` ``(D, B, U)`` in batch order.

    With ``lengths`` the rows run packed: ``out`` is zero past each row's length
    (rows of length 0 run one step; the caller fixes them).
    """
    kernel = KERNELS[mode]
    # `train`: a backward may follow (oneDNN then keeps its workspace, as torch.nn's training calls do; without
    # it the backward is slower, about 8% at (batch 8, 1 step, 128 units))
    train = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in hx)
                                         or any(w.requires_grad for w in weights))
    if lengths is None:
        h = tuple(hx) if len(hx) == 2 else hx[0]
        out, *hn = kernel(x, h, weights, use_bias, 1, 0.0, train, bidirectional, True)
        return [out, *hn]
    packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    index = packed.sorted_indices
    assert index is not None  # enforce_sorted=False always sorts
    h = tuple(t.index_select(1, index) for t in hx) if len(hx) == 2 else hx[0].index_select(1, index)
    data, *hn = kernel(packed.data, packed.batch_sizes, h, weights, use_bias, 1, 0.0, train, bidirectional)
    out, _ = pad_packed_sequence(
        PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        batch_first=True,
        total_length=x.shape[1],
    )
    return [out] + [t.index_select(1, packed.unsorted_indices) for t in hn]


def masked_kernel_call(x: torch.Tensor, mask: torch.Tensor, hx: list[torch.Tensor], weights: list[torch.Tensor],
                       mode: str, use_bias: bool, go_backwards: bool, zero_output: bool) -> list[torch.Tensor]:
    """``[outputs, *new_states]`` of one direction with Keras's masking rules, for any mask.

    ``x`` ``(B, T, D)``, ``mask`` boolean ``(B, T)``, ``hx`` states ``(B, U)``;
    ``outputs`` ``(B, T, U)`` in processing order (reversed with
    ``go_backwards``); masked steps carry the states and repeat the previous
    output (zeros with ``zero_output``). A right-padded mask runs the fused
    kernel without packing: one unmasked call (the final ``h`` is the output at
    each row's last valid step; LSTM's cell state is held: :mod:`rnnkit.kernels.held`);
    any other mask runs the same equations step by step over a hoisted input
    projection (:func:`_masked_steps`).
    """
    lengths, right_padded = right_padded_lengths(mask)
    if not right_padded:
        return _masked_steps(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output)
    return right_padded_call(x, mask, lengths, hx, weights, mode, use_bias, go_backwards, zero_output)


def right_padded_call(x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, hx: list[torch.Tensor],
                      weights: list[torch.Tensor], mode: str, use_bias: bool, go_backwards: bool, zero_output: bool,
                      zero_states: bool = False, cell_state: bool = True) -> list:
    """:func:`masked_kernel_call` for a right-padded ``mask`` with row ``lengths`` (``mask.sum(1)``): one
    unmasked call.

    ``zero_states`` (the initial states are known to be zeros) lets a backwards LSTM run on the
    flipped input as it is: its padding comes first, where the held cell state stays 0 and ``h``
    is held at 0 too, exactly Keras's zero outputs and untouched states. Without ``cell_state``
    (the caller reads no LSTM cell state: ``None`` stands for it) the padding needs no hold: its
    steps run on zeros and nothing reads them.
    """
    batch, steps = x.shape[:2]
    shortest = int(lengths.min()) if batch else steps  # (one host sync; an empty batch: nothing masked)
    if shortest == steps:  # nothing masked: one plain kernel call
        out, *hn = kernel_call(x.flip(1) if go_backwards else x, [h.unsqueeze(0) for h in hx], weights, mode,
                               use_bias, False, None)
        return [out, *[h[0] for h in hn]]
    lstm = mode == "lstm"
    if go_backwards and zero_states and lstm:  # the padding leads in the flipped input (held: states stay zero)
        out, h_n, c_n = kernel_call(hold_input(x.flip(1), ~mask.flip(1)), [h.unsqueeze(0) for h in hx],
                                    hold_weights(weights), mode, use_bias, False, None)
        return [out, h_n[0], c_n[0]]
    if go_backwards:
        x = reverse_valid(x, lengths)
    padded = ~mask  # (B, T), in the order the kernel reads x (reverse_valid keeps the padding at the end)
    # One unmasked call over the padded rows is exact at every valid step (later steps never reach back);
    # each row's final output state is its output at step length - 1. The padded inputs become zeros (their
    # values, whatever they are, never reach a result), and LSTM's cell state, which is no output, is held
    # over the padding by one extra input feature (rnnkit.kernels.held) where it is read.
    hold = lstm and cell_state
    out, *hn = kernel_call(hold_input(x, padded, hold), [h.unsqueeze(0) for h in hx],
                           hold_weights(weights) if hold else weights, mode, use_bias, False, None)
    # (the kernel's final h is not the state: see below)
    cell = [hn[1][0] if hold else None] if lstm else []
    if lstm and not go_backwards:  # outputs from the valid steps alone (the padded ones are never read)
        outputs, last = held_outputs(out, lengths, padded, not zero_output)
    else:
        last = out[torch.arange(batch, device=x.device), (lengths - 1).clamp(min=0)]  # (B, U)
    ran = None if shortest > 0 else (lengths > 0).unsqueeze(1)  # (B, 1): rows with a valid step
    new_states = [last if ran is None else torch.where(ran, last, hx[0]), *cell]
    # out is finite on the padding (zero inputs there): products with 0/1 masks select exactly, and are
    # several times faster than a broadcast torch.where on the CPU
    if go_backwards:  # Keras flips the mask: the padding comes first in processing order, outputs zero there
        src = torch.arange(steps, device=x.device).unsqueeze(0) - (steps - lengths.unsqueeze(1))
        index = src.clamp(min=0).unsqueeze(-1).expand(batch, steps, out.shape[-1])
        outputs = out.gather(1, index) * (src >= 0).unsqueeze(-1).to(out.dtype)
    elif not lstm:  # padded steps: zeros, or the last valid output (zeros in rows that never ran)
        valid = mask.unsqueeze(-1).to(out.dtype)
        outputs = out * valid
        if not zero_output:
            repeated = last if ran is None else last * ran.to(out.dtype)
            outputs = outputs + repeated.unsqueeze(1) * (1 - valid)
    return [outputs, *new_states]


def _masked_steps(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output) -> list[torch.Tensor]:
    """The step-by-step twin of :func:`masked_kernel_call`, for any mask (holes, leading padding).

    The input projection of every step is one matrix product before the loop
    (hoisted); each step then applies torch's cell equations (``torch.nn.LSTM``
    gates ``i f g o``, GRU ``r z n`` with the reset gate after the recurrent
    product, RNN ``tanh``/``relu``) to ``x_proj_t + h W_hh^T + b_hh``.
    """
    w_ih, w_hh = weights[0], weights[1]
    x_proj = x @ w_ih.t()
    if use_bias:
        x_proj = x_proj + weights[2]
    return projected_steps(x_proj, mask, hx, w_hh, weights[3] if use_bias else None, mode, go_backwards,
                           zero_output)


def projected_steps(x_proj: torch.Tensor, mask: torch.Tensor, hx: list[torch.Tensor], w_hh: torch.Tensor,
                    b_hh: torch.Tensor | None, mode: str, go_backwards: bool, zero_output: bool) -> list[torch.Tensor]:
    """The loop of :func:`_masked_steps` over projected inputs ``x_proj`` ``(B, T, G*U)``: plain,
    differentiable (twice too) torch operations, step by step."""
    states = list(hx)
    prev = torch.zeros_like(states[0])
    outputs = []
    order = range(x_proj.shape[1] - 1, -1, -1) if go_backwards else range(x_proj.shape[1])
    # unbind once: indexing x_proj[:, t] per step makes every step's backward fill a whole-input zero tensor
    steps, masks = x_proj.unbind(1), mask.unsqueeze(-1).unbind(1)
    w_hh_t = w_hh.t()
    for t in order:
        m = masks[t]
        rec = states[0] @ w_hh_t
        if b_hh is not None:
            rec = rec + b_hh
        new = _cell_step(mode, steps[t], rec, states)
        states = [torch.where(m, n, o) for n, o in zip(new, states)]
        prev = torch.where(m, new[0], torch.zeros_like(prev) if zero_output else prev)
        outputs.append(prev)
    return [torch.stack(outputs, 1), *states]


def _cell_step(mode: str, xp: torch.Tensor, rec: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
    """One step of torch's cell equations from the input part ``xp`` and the recurrent part ``rec``."""
    if mode == "lstm":
        z = xp + rec
        i, f, _, o = torch.sigmoid(z).chunk(4, 1)  # one sigmoid over all gates (g's slice unused)
        g = torch.tanh(z.chunk(4, 1)[2])
        c = f * states[1] + i * g
        return [o * torch.tanh(c), c]
    if mode in ("gru", "gru_keras"):  # (gate blocks r z n; z r n in Keras's order)
        xr, xz, xn = xp.chunk(3, 1)
        hr, hz, hn = rec.chunk(3, 1)
        if mode == "gru_keras":
            xr, xz, hr, hz = xz, xr, hz, hr
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return [(1 - z) * n + z * states[0]]
    pre = xp + rec
    return [torch.tanh(pre) if mode == "rnn_tanh" else torch.relu(pre)]


@torch.library.custom_op("rnnkit::rnn_kernel", mutates_args=())
def rnn_kernel(x: torch.Tensor, hx: list[torch.Tensor], weights: list[torch.Tensor], mode: str, use_bias: bool,
               bidirectional: bool, lengths: torch.Tensor | None) -> list[torch.Tensor]:
    """:func:`kernel_call` as one opaque op (see the module docstring)."""
    return _fresh(kernel_call(x, hx, weights, mode, use_bias, bidirectional, lengths), [x, *hx, *weights])


def _fresh(outs: list[torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """An op's outputs, contiguous (as the fake implementations say) and never aliasing an input."""
    taken = {t.data_ptr() for t in inputs}
    outs = [t.contiguous() for t in outs]
    return [t.clone() if t.data_ptr() in taken else t for t in outs]


def _output_grads(grads: list, out_shape: torch.Size, x: torch.Tensor, hx: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of an op's ``[out, *states]``, zeros where autograd passed None (unused outputs)."""
    like = [x.new_zeros(out_shape)] + [torch.zeros_like(h) for h in hx]
    return [g if g is not None else z for g, z in zip(grads, like)]


@rnn_kernel.register_fake
def _rnn_kernel_fake(x, hx, weights, mode, use_bias, bidirectional, lengths):
    directions = 2 if bidirectional else 1
    units = hx[0].shape[-1]
    return [x.new_empty((x.shape[0], x.shape[1], directions * units))] + [h.new_empty(h.shape) for h in hx]


# The backward recomputes the kernel under autograd. A custom op's implementation runs with autograd
# excluded from this thread's dispatch state; the recomputation restores the process's default dispatch
# state for its duration (in the calling thread: the autograd engine's device threads stay free).
_DEFAULT_EXCLUDE = torch._C._dispatch_tls_local_exclude_set()


def recompute_grads(call, grads: list[torch.Tensor], x: torch.Tensor, hx: list[torch.Tensor],
                    weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[dx, *dhx, *dweights]`` of ``call(x, hx, weights)`` for output gradients ``grads``, recomputed
    under autograd (see above); unused inputs get zeros."""
    guard = torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), _DEFAULT_EXCLUDE)
    with guard, torch.enable_grad():
        inputs = [t.detach().requires_grad_() for t in [x, *hx, *weights]]
        outs = call(inputs[0], inputs[1:1 + len(hx)], inputs[1 + len(hx):])
        found = torch.autograd.grad(outs, inputs, grads, allow_unused=True)
    return [(g if g is not None else torch.zeros_like(t)).contiguous() for g, t in zip(found, inputs)]


@torch.library.custom_op("rnnkit::rnn_kernel_backward", mutates_args=())
def rnn_kernel_backward(grads: list[torch.Tensor], x: torch.Tensor, hx: list[torch.Tensor],
                        weights: list[torch.Tensor], mode: str, use_bias: bool, bidirectional: bool,
                        lengths: torch.Tensor | None) -> list[torch.Tensor]:
    """Gradients ``[dx, *dhx, *dweights]`` of :func:`rnn_kernel` for output gradients ``grads``."""
    return recompute_grads(lambda xs, hs, ws: kernel_call(xs, hs, ws, mode, use_bias, bidirectional, lengths),
                           grads, x, hx, weights)


@rnn_kernel_backward.register_fake
def _rnn_kernel_backward_fake(grads, x, hx, weights, mode, use_bias, bidirectional, lengths):
    return [t.new_empty(t.shape) for t in [x, *hx, *weights]]  # contiguous, as the real gradients are


def _setup_context(ctx, inputs, output) -> None:
    x, hx, weights, mode, use_bias, bidirectional, lengths = inputs
    ctx.save_for_backward(x, *hx, *weights)
    ctx.n_hx = len(hx)
    ctx.args = (mode, use_bias, bidirectional)
    ctx.lengths = lengths
    ctx.out_shape = output[0].shape


def _backward(ctx, grads):
    n_hx = ctx.n_hx
    saved = ctx.saved_tensors
    x, hx, weights = saved[0], list(saved[1:1 + n_hx]), list(saved[1 + n_hx:])
    found = rnn_kernel_backward(_output_grads(grads, ctx.out_shape, x, hx), x, hx, weights, *ctx.args, ctx.lengths)
    return found[0], found[1:1 + n_hx], found[1 + n_hx:], None, None, None, None


torch.library.register_autograd("rnnkit::rnn_kernel", _backward, setup_context=_setup_context)


# ----------------------------------------------------------------- masked
@torch.library.custom_op("rnnkit::rnn_kernel_masked", mutates_args=())
def rnn_kernel_masked(x: torch.Tensor, mask: torch.Tensor, hx: list[torch.Tensor], weights: list[torch.Tensor],
                      mode: str, use_bias: bool, go_backwards: bool, zero_output: bool) -> list[torch.Tensor]:
    """:func:`masked_kernel_call` as one opaque op: the mask is data, any mask is exact."""
    return _fresh(masked_kernel_call(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output),
                  [x, *hx, *weights])


@rnn_kernel_masked.register_fake
def _rnn_kernel_masked_fake(x, mask, hx, weights, mode, use_bias, go_backwards, zero_output):
    return [x.new_empty((x.shape[0], x.shape[1], hx[0].shape[-1]))] + [h.new_empty(h.shape) for h in hx]


@torch.library.custom_op("rnnkit::rnn_kernel_masked_backward", mutates_args=())
def rnn_kernel_masked_backward(grads: list[torch.Tensor], x: torch.Tensor, mask: torch.Tensor,
                               hx: list[torch.Tensor], weights: list[torch.Tensor], mode: str, use_bias: bool,
                               go_backwards: bool, zero_output: bool) -> list[torch.Tensor]:
    """Gradients ``[dx, *dhx, *dweights]`` of :func:`rnn_kernel_masked`."""
    return recompute_grads(
        lambda xs, hs, ws: masked_kernel_call(xs, mask, hs, ws, mode, use_bias, go_backwards, zero_output),
        grads, x, hx, weights)


@rnn_kernel_masked_backward.register_fake
def _rnn_kernel_masked_backward_fake(grads, x, mask, hx, weights, mode, use_bias, go_backwards, zero_output):
    return [t.new_empty(t.shape) for t in [x, *hx, *weights]]


def _setup_masked(ctx, inputs, output) -> None:
    x, mask, hx, weights, mode, use_bias, go_backwards, zero_output = inputs
    ctx.save_for_backward(x, mask, *hx, *weights)
    ctx.n_hx = len(hx)
    ctx.args = (mode, use_bias, go_backwards, zero_output)
    ctx.out_shape = output[0].shape


def _backward_masked(ctx, grads):
    saved = ctx.saved_tensors
    x, mask, hx, weights = saved[0], saved[1], list(saved[2:2 + ctx.n_hx]), list(saved[2 + ctx.n_hx:])
    found = rnn_kernel_masked_backward(_output_grads(grads, ctx.out_shape, x, hx), x, mask, hx, weights, *ctx.args)
    return found[0], None, found[1:1 + ctx.n_hx], found[1 + ctx.n_hx:], None, None, None, None


torch.library.register_autograd("rnnkit::rnn_kernel_masked", _backward_masked, setup_context=_setup_masked)


# ---------------------------------------------------------------- autocast
_AUTOCAST_RESULT: dict[tuple, torch.dtype] = {}


def autocast_result_dtype(mode: str, device_type: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype ``torch.nn``'s module of this kernel returns under ``torch.autocast(device_type)``
    for ``dtype`` inputs: the kernel run once on a 1-step example, per (mode, device, dtypes).

    ``torch.nn.LSTM`` and ``RNN`` follow autocast's lower precision on the CPU, ``GRU`` stays
    in float32 there: every path of an rnnkit layer returns what its ``torch.nn`` twin would.
    """
    key = (mode, device_type, dtype, torch.get_autocast_dtype(device_type))
    if key not in _AUTOCAST_RESULT:
        gates = {"lstm": 4, "gru": 3}.get(mode, 1)
        device = device_type
        x = torch.zeros(1, 1, 1, dtype=dtype, device=device)
        hx = [torch.zeros(1, 1, 1, dtype=dtype, device=device) for _ in range(2 if mode == "lstm" else 1)]
        weights = [torch.zeros(gates, 1, dtype=dtype, device=device) for _ in range(2)]
        with torch.no_grad():
            out = kernel_call(x, hx, weights, mode, False, False, None)[0]
        _AUTOCAST_RESULT[key] = out.dtype
    return _AUTOCAST_RESULT[key]


def autocast_dtype_for(cell: Any, device_type: str, dtype: torch.dtype) -> torch.dtype | None:
    """Under ``torch.autocast``, the dtype a built-in cell's ``torch.nn`` twin returns; else None."""
    if not torch.is_autocast_enabled(device_type):
        return None
    kernel = kernel_for(cell)
    return None if kernel is None else autocast_result_dtype(mode_of(kernel), device_type, dtype)
