"""rnnkit's native CPU recurrent kernel: the time loop of one direction in C++.

``rnn.cpp`` (next to this file) registers ``torch.ops.rnnkit_native.forward``
and ``backward`` through ``torch.library``; it is compiled with
``torch.utils.cpp_extension`` on first use (a few seconds, needs a C++
compiler and ninja) and cached by torch in ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``). Where it cannot be built, :func:`unavailable`
says why and the layers run PyTorch's kernels (``explain()`` shows the
reason). ``RNNKIT_NATIVE=0`` turns it off.

Semantics (see the header of ``rnn.cpp``): torch.nn's equations and weight
layout (LSTM ``i f g o``, GRU ``r z n`` with the reset gate after the
recurrent product, RNN ``tanh``/``relu``), Keras's masking rules for any mask
(holes included) and ``go_backwards``; the input projection of all steps is
one matrix product (the ``project`` op: a register-blocked loop for small
ones, BLAS above), the loop runs only the recurrent part. Per step
the recurrent product is a register-blocked loop (GCC/Clang vector extensions,
no dispatch per step: what batch-1 sequences pay in torch's kernels) and one
BLAS call for very big ones (:func:`use_blas`); activations are vectorized
polynomials in float32 (within 2e-7 of float64 math) and libm in float64;
each thread runs the whole time loop for its block of rows (a row's recurrence
never reads another; built with ``-fopenmp``). Gradients: a
hand-written backward through time (``backward`` op); with
``create_graph=True`` (higher-order gradients) the backward recomputes on
torch's step-by-step equations instead, whose gradients are differentiable.
Where it runs instead of torch's kernels: :func:`preferred`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import torch

from rnnkit.kernels.derived import kept

SOURCE = Path(__file__).with_name("rnn.cpp")  # (it includes activations.h and gemm.h, next to it)
# ("gru_keras": the GRU with its gate blocks in Keras's order z r h, where torch's is r z n)
MODES = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3, "gru_keras": 4}
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "gru_keras": 3}
_STATUS: list[str | None] = []  # [why it is unavailable (None: loaded)], once per process
_MODULE: list[Any] = []  # [the built Python module] once loaded (its ``step``: see step_call)
_BUILD_LOCK = threading.Lock()

# Per-step work (batch * units * gates*units multiply-adds) above which one BLAS call per step runs the
# recurrent product instead of the register-blocked loop. The loop was faster at every shape measured
# (up to 12.6M, GRU (64, 50, 128, 256): 0.82 vs 0.92 of torch's time, 2 threads, AVX-512;
# benchmarks/bench_native.py); BLAS stays for problems far beyond those.
BLAS_ABOVE = 1 << 26


def _cpu_tag() -> str:
    """A short tag of this CPU's instruction set (the build uses ``-march=native``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "generic"
    flags = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def _source_tag() -> str:
    """A short tag of the kernel's source files: torch's build cache tracks ``rnn.cpp`` alone, not the
    headers it includes, so a changed header means another extension name."""
    digest = hashlib.sha1()
    for path in sorted(SOURCE.parent.glob("*.[ch]*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def _build() -> str | None:
    if os.environ.get("RNNKIT_NATIVE", "1") == "0":
        return "RNNKIT_NATIVE=0 turns it off"
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja), needed to build it"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} not found) to build it"
    failed: list[Exception] = []
    # with OpenMP the rows run on every thread (at::parallel_for's pragma); a compiler without it builds the
    # same kernel on one thread
    for openmp in (["-fopenmp"], []):
        try:
            # (a Python module: the ops register when it loads, and its `step` is called directly)
            _MODULE.append(cpp_extension.load(name=f"rnnkit_native_{_cpu_tag()}_{_source_tag()}",
                                              sources=[str(SOURCE)], extra_cflags=["-O3", "-march=native", *openmp],
                                              extra_ldflags=openmp, is_python_module=True, verbose=False))
            return None
        except Exception as err:  # a failed build leaves torch's kernels in charge, with the reason
            failed.append(err)
    first = str(failed[0]).strip().splitlines()
    return f"building it failed: {first[0] if first else type(failed[0]).__name__}"


def unavailable() -> str | None:
    """Why the native kernel cannot run in this process (None: it is built and loaded).

    The first call builds (or loads the cached build of) ``rnn.cpp``.
    """
    if not _STATUS:
        with _BUILD_LOCK:  # threads calling at once build (or load) it once
            if not _STATUS:
                _STATUS.append(_build())
    return _STATUS[0]


# Where the native kernel measured faster than torch's kernels (benchmarks/bench_native.py, 2-core x86-64
# with AVX-512, 1 and 2 threads): GRU and SimpleRNN at every shape measured (0.02-0.85x of torch's time,
# batch 1-128, units 64-512); LSTM only for small batches of up to 64 units (torch's oneDNN LSTM is faster
# above: 1.1-2x at batch 16-128, and 1.1-4x from 128 units even at batch 1-4, where the loop streams the
# recurrent weights at every step): up to this many batch*units with one thread (torch's kernel at batch 1
# runs about as fast) and more with several (its thread handoffs per step cost more than the step).
LSTM_UP_TO = {1: 64, 2: 512}
LSTM_UNITS_UP_TO = 64


def preferred(mode: str, batch: int, units: int) -> bool:
    """Whether the native kernel is the faster exact way to run an unmasked or right-padded call.

    Static facts only: the cell family, batch and units, torch's thread count (inference and
    training measured alike). Masks with holes always run on the native kernel when it can be had
    (the alternative is a Python step loop).
    """
    if mode != "lstm":
        return True
    return units <= LSTM_UNITS_UP_TO and batch * units <= LSTM_UP_TO[min(torch.get_num_threads(), 2)]


def blocker(x: torch.Tensor, weights: list[torch.Tensor]) -> str | None:
    """Why the native kernel cannot run this call (None: it can): device, dtype, autocast, build."""
    if not x.is_cpu:
        return f"it runs on the CPU only (inputs on {x.device.type})"
    dtype = x.dtype
    if (dtype is not torch.float32 and dtype is not torch.float64) or not all([w.dtype is dtype for w in weights]):
        return f"it runs float32/float64 only (inputs {dtype})"
    if torch.is_autocast_enabled("cpu"):
        return "CPU autocast is on (torch's kernels follow its dtype rules)"
    why = unavailable()
    return None if why is None else f"native kernel unavailable: {why}"


def use_blas(batch: int, units: int, mode: str) -> bool:
    """One BLAS call per step (big problems) rather than the hand-written loop: a static fact of the shapes."""
    return batch * units * units * _GATES[mode] > BLAS_ABOVE


class _NativeRNN(torch.autograd.Function):
    """One direction, input projection and loop, as one autograd node: the ``project`` op (the arithmetic of the
    ``infer`` op, so that training and inference give the same outputs to the bit), then
    ``rnnkit_native.forward``; its backward is ``rnnkit_native.backward``, then the projection's three products
    (``dx = dxp W_ih``, ``dW_ih = dxp^T x``, ``db_ih = sum dxp``). One node rather than one per stage: a small
    call's training time is mostly autograd's per-node cost."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, c0, mask, mode, go_backwards, zero_output,  # type: ignore[override]
                blas):
        ops = _ops()
        xp = ops[3](x, _transposed(w_ih), b_ih)
        save = any(ctx.needs_input_grad[:7])
        out, h_t, c_t, hs, cs, act = ops[0](
            xp, _transposed(w_hh), b_hh, h0, c0, mask, MODES[mode], go_backwards, zero_output, blas, save)
        if save:  # the native backward's tensors, and the inputs for a differentiable recomputation
            ctx.save_for_backward(hs, cs, act, x, w_ih, w_hh, b_ih, b_hh, h0, c0)
        ctx.mask, ctx.args = mask, (MODES[mode], go_backwards, zero_output, blas, b_hh is not None)
        ctx.mode, ctx.lstm = mode, mode == "lstm"
        return (out, h_t, c_t) if ctx.lstm else (out, h_t)

    @staticmethod
    def backward(ctx, grad_out, grad_h, grad_c=None):  # type: ignore[override]
        hs, cs, act, x, w_ih, w_hh, b_ih, b_hh, h0, c0 = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _differentiable_backward(ctx, [grad_out, grad_h, grad_c], x, w_ih, w_hh, b_ih, b_hh, h0, c0)
        grad_out = grad_out if grad_out is not None else hs.new_zeros(hs.shape[1], hs.shape[0] - 1, hs.shape[2])
        grad_out = grad_out.contiguous()
        grad_h = grad_h if grad_h is not None else hs.new_zeros(hs.shape[1:])
        d_xp, d_whh, d_bhh, d_h0, d_c0 = _ops()[1](
            grad_out, grad_h, grad_c, hs, cs, act, w_hh.contiguous(), ctx.mask, *ctx.args)
        need_x, need_wih, _, need_bih = ctx.needs_input_grad[:4]
        d_x = d_xp @ w_ih if need_x else None
        d_wih = d_xp.reshape(-1, d_xp.shape[-1]).t() @ x.reshape(-1, x.shape[-1]) if need_wih else None
        d_bih = d_xp.sum((0, 1)) if b_ih is not None and need_bih else None
        return (d_x, d_wih, d_whh, d_bih, d_bhh if b_hh is not None else None, d_h0, d_c0 if ctx.lstm else None,
                None, None, None, None, None)


def _differentiable_backward(ctx, grads: list, x, w_ih, w_hh, b_ih, b_hh, h0, c0) -> tuple:
    """The backward with ``create_graph=True`` (higher-order gradients): the same gradients from torch's
    projection and the step-by-step torch twin (:func:`rnnkit.kernels.ops.projected_steps`) recomputed on the
    saved inputs, so that they are differentiable in turn."""
    from rnnkit.kernels.ops import projected_steps

    inputs = [x, w_ih, w_hh, b_ih, b_hh, h0, c0]
    with torch.enable_grad():
        xp = torch.nn.functional.linear(x, w_ih, b_ih)
        hx = [h0, c0] if ctx.lstm else [h0]
        mask = ctx.mask if ctx.mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        outs = projected_steps(xp, mask, hx, w_hh, b_hh, ctx.mode, ctx.args[1], ctx.args[2])
    wanted = [i for i, t in enumerate(inputs) if t is not None and ctx.needs_input_grad[i]]
    used = [(o, g) for o, g in zip(outs, grads) if g is not None]
    found = torch.autograd.grad([o for o, _ in used], [inputs[i] for i in wanted], [g for _, g in used],
                                create_graph=True, allow_unused=True)
    result: list = [None] * 12
    for i, g in zip(wanted, found):
        result[i] = g if g is not None else torch.zeros_like(inputs[i])
    return tuple(result)


def native_call(x: torch.Tensor, mask: torch.Tensor | None, hx: list[torch.Tensor], weights: list[torch.Tensor],
                mode: str, use_bias: bool, go_backwards: bool, zero_output: bool) -> list[torch.Tensor]:
    """``[outputs, *new_states]`` of one direction, as :func:`rnnkit.kernels.ops.masked_kernel_call` gives them.

    ``x`` ``(B, T, D)``, ``mask`` boolean ``(B, T)`` or None, ``hx`` states
    ``(B, U)``, ``weights`` in torch's layout ``[w_ih, w_hh(, b_ih, b_hh)]``.
    Outputs ``(B, T, U)`` in processing order; masked steps carry the states
    and repeat the previous output (zeros with ``zero_output``).
    """
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if use_bias else (None, None)  # b_hh: added in the recurrent product
    batch, units = hx[0].shape
    if mask is not None and not mask.is_contiguous():
        mask = mask.contiguous()
    h0 = hx[0] if hx[0].is_contiguous() else hx[0].contiguous()
    c0 = (hx[1] if hx[1].is_contiguous() else hx[1].contiguous()) if mode == "lstm" else None
    blas = use_blas(batch, units, mode)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad
                                              for t in (x, w_ih, w_hh, b_ih, b_hh, h0, c0)):
        # nothing to differentiate: one op (projection and loop), without autograd's bookkeeping
        w_ih_t, b_ih, whh_t, b_hh = inference_weights(weights, use_bias)
        return _ops()[2](x, w_ih_t, b_ih, whh_t, b_hh, h0, c0, mask, MODES[mode], go_backwards, zero_output, blas)
    return list(_NativeRNN.apply(x, w_ih, w_hh, b_ih, b_hh, h0, c0, mask, mode, go_backwards, zero_output, blas))


def _transposed(w: torch.Tensor) -> torch.Tensor:
    """``w.t()`` contiguous (a view when it already is: torch's ``weight_hh`` made from a Keras
    recurrent kernel is its transposed view)."""
    t = w.t()
    return t if t.is_contiguous() else t.contiguous()


def _transposed_for_inference(w: torch.Tensor) -> torch.Tensor:
    """:func:`_transposed`, kept while ``w`` is the same unchanged tensor (:mod:`rnnkit.kernels.derived`) where it
    is a copy (a view costs nothing to make again)."""
    t = w.t()
    return t if t.is_contiguous() else kept("transposed", w, _transposed)


def inference_weights(weights: list[torch.Tensor], use_bias: bool) -> tuple:
    """``(W_ih^T, b_ih, W_hh^T, b_hh)`` (biases None without ``use_bias``) as the ``infer`` op and the one-step
    entry read them, from torch-layout ``weights``; the transposes kept while the weights are unchanged."""
    b_ih, b_hh = (weights[2], weights[3]) if use_bias else (None, None)
    return _transposed_for_inference(weights[0]), b_ih, _transposed_for_inference(weights[1]), b_hh


@functools.cache
def _ops() -> Any:
    """``torch.ops.rnnkit_native``'s ``(forward, backward, infer, project)`` overloads, looked up once (after
    the build)."""
    ops = torch.ops.rnnkit_native
    return ops.forward.default, ops.backward.default, ops.infer.default, ops.project.default
