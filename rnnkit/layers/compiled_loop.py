"""``compile=True``: a recurrent layer's generic loop through ``torch.compile``, in chunks of steps.

Dynamo unrolls the Python loop over the steps it sees, so a compiled loop is
one graph per sequence length, and its compile time grows with the length. The
loop is compiled for at most ``CHUNK`` steps: a longer sequence runs chunk after
chunk (states carried from one to the next), so any length costs at most two
compilations (``CHUNK`` and the remainder) and long sequences compile in
seconds; inputs of many lengths, at most ``EXACT_LENGTHS`` remainders as they
come and powers of two after (:func:`chunk_sizes`). The chunks give exactly the
one loop's results: a masked step repeats the previous output (Keras), so the
masked steps that open a chunk, before its first valid step, take the previous
chunk's last output (zeros with ``zero_output_for_mask``, as in one loop).

Up to batch ``SPLIT_BATCH_UP_TO`` a custom cell's step is split first (:mod:`rnnkit.core.split_step`): the
ops that read only the step's input (its input projection) run once over all steps, before the chunks, as one
large product; the compiled loop runs the rest, its small matrix products written as products and sums that
inductor compiles into the step's own loop (no library call per step), at small batches on one thread
(``SPLIT_STEP_THREADS``: at these sizes a parallel region per step costs more than the work). Where the step
cannot be split, the loop runs it whole.

On the CPU the compiled code's wrapper is C++ as well (inductor's
``cpp_wrapper``): each step's kernel and matrix-product calls then cost no
Python, about 20-30% faster training than with the Python wrapper, for 1.5-4x
the compile time; see ``benchmarks/`` for what it buys.

Measured and not taken (torch 2.13, 2 cores, ``h = tanh(x W + h R)``, alternating in one process):

* torch's ``scan`` (``torch._higher_order_ops.scan``: one loop in the graph, so no chunks and a compile time
  that does not grow with the length). Inductor lowers it to a ``while_loop`` that reads its step index with
  ``.item()`` (it needs ``capture_scalar_outputs``), and in training the step must return copies of its outputs
  (its partitioned step otherwise returns one tensor twice and fails the aliasing check). Then at (1, 1,000
  steps, 32 features, 64 units): inference as fast as the chunks (3.3 ms each), training 1.8x as slow (19.4 vs
  10.9 ms), compiled in as long (21 vs 22 s, empty caches).
* inductor's ``cpp.use_decompose_tanh`` (``tanh(a) = 2 / (1 + exp(-2a)) - 1``): inference 10-14% faster,
  training 2-5%, but its error near zero is absolute (about 1e-7), not relative as ``tanh``'s is.
* an inductor pass (``post_grad_custom_post_pass``) turning the backward's sum of per-step weight products
  ``sum_t h_{t-1}^T dz_t`` into one product of their concatenations (alone, 20 products at (batch 128, 64 units)
  took 218 us, the one product 100): in the compiled backward no faster (paired medians 1.01 at (128, 20, 32,
  64), 0.94 at (32, 100, 64, 128), 1.02 at (64, 50, 128, 256)): the concatenation copies the saved states that
  the per-step products read in place.
* an ``autograd.Function`` of our own around inductor's forward and backward graphs (AOT autograd's partition,
  compiled with ``compile_fx_inner``), without dynamo's guards and AOT autograd's runtime wrappers: a training
  call of a 4-step chunk 0.20 vs 0.31 ms, the recurrent part at (128, 20, 32, 64) 2.05 vs 2.14 ms. It would
  reimplement AOT autograd's calling convention (aliased outputs, the tangents' layouts, which inputs need
  gradients, random ops); a prototype got aliased outputs wrong.

Where a training call's time goes at (128, 20, 32, 64), ``h = tanh(x W + h R)``: the compiled loop called as a
plain function, with the input projection written by hand, takes about Keras-on-jax's time (1.9-2.3 ms, XLA
2.0-2.4 ms as the machine's load moved); the layer adds about 0.2 ms per call, in pieces of 5-40 us each (the
arguments' checks and initial states, the split step's key with its snapshot of the cell's attributes, the input
part's FX module call, dynamo's guards on the layer's loop, the chunk bookkeeping).
"""

from __future__ import annotations

import time
import types
from typing import Any

import torch
from torch._dynamo.utils import counters

from rnnkit.core.protocol import reset_dropout
from rnnkit.core.split_step import SplitStep, python_state, split_step
from rnnkit.core.tree import flatten, pack_as
from rnnkit.kernels.spec import capturing_graph

CHUNK = 32  # steps per compiled graph
# Chunk lengths below CHUNK (a sequence's remainder, or a short sequence) compiled as they come, per kind of
# loop; a further length runs as chunks of powers of two (16, 8, 4, 2, 1), so that inputs of many lengths compile
# at most CHUNK, these and five more graphs (each one to a few seconds) instead of one per length.
EXACT_LENGTHS = 4
# The split step, training, 2 cores, ``h = tanh(x W + h R)``, against the whole step: 1.9x as fast at (batch 1,
# 1,000 steps, 32 features, 64 units) and 1.8x at (8, 200, 32, 64) with its small products fused (below); with
# its input part run on all steps' rows at once (``SplitStep.row_wise``) and its kernels on torch's threads above
# ``SPLIT_ONE_THREAD_UP_TO``, 0.93x the time at (32, 100, 64, 128), 0.96x at (128, 20, 32, 64) and as fast at
# (64, 50, 128, 256) (alternating in one process). (Through ``vmap``, whose copies to and from time-major order
# cost 0.2 ms at (32, 100, 64, 128), it had been as fast at batch 32 and up to 15% slower at 128.)
SPLIT_BATCH_UP_TO = 128
SPLITS_KEPT = 8  # traces kept per layer
# Matrix products of the split step's recurrent part with at most this many multiply-adds are compiled as
# inductor's own loops (``rnnkit.core.split_step._small_products``), not one library call per step: with
# ``h = tanh(x W + h R)``, training, 2 cores: 0.5x the time at (batch 8, 200 steps, 64 units), 0.6x at
# (1, 1000, 64); as fast at (16, 100, 128 units), 262,144 multiply-adds.
SMALL_PRODUCTS_UP_TO = 1 << 16
# On the CPU the split step's compiled loop runs inductor's own kernels on one thread (``cpp.threads``; matrix
# products left to the library keep torch's threads): at a small batch a step's kernel has a few thousand
# multiply-adds, which inductor still splits over the threads (it parallelizes from 512 elements a thread, ATen's
# own ops from 32,768), so every step passes two barriers (its products' loop, then the pointwise part) for work
# one thread does in well under a microsecond; where another process takes a core, each barrier waits for it.
# Training, ``h = tanh(x W + h R)``, 2 threads, alternating in one process: on a quiet machine as fast (1, 1,000
# steps, 32 features, 64 units: 6.1-7.0 vs 6.7-7.3 ms; (8, 200, 32, 64): 2.54-2.58 vs 2.54-2.67 ms; (16, 100, 64,
# 128): 3.8-4.0 ms both); while the shared machine was busy, 5.1-5.7 vs 6.2-8.5 ms and 2.9-3.1 vs 3.6-4.1 ms.
SPLIT_STEP_THREADS = 1
# ... up to this batch; above it, inductor's kernels keep torch's threads too (at batch 32, 128 units, the
# pointwise part of a step has enough work for both: one thread measured 5-10% slower).
SPLIT_ONE_THREAD_UP_TO = 16


def compiled_loop(layer: Any, kind: tuple, steps: int) -> Any:
    """``torch.compile`` of ``layer.loop`` for chunks of ``steps`` steps, made on first use per ``kind`` of loop
    (:func:`loop_kind`: device type, split step or whole, the split step's kernels on ``SPLIT_STEP_THREADS``
    threads or not, training, grad mode) and length, and kept on the layer. Each is compiled from its own copy
    of the code (:func:`own_code`)."""
    loops = layer.__dict__.setdefault("_compiled_loops", {})  # (layers pickled before it have none)
    key = (*kind, steps)
    compiled = loops.get(key)
    if compiled is None:
        device_type, _, one_thread = kind[:3]
        options: dict[str, Any] | None = None
        if device_type == "cpu":
            options = {"cpp_wrapper": True, **({"cpp.threads": SPLIT_STEP_THREADS} if one_thread else {})}
        compiled = loops[key] = torch.compile(own_code(layer.loop), dynamic=False, options=options)
    return compiled


def own_code(method: Any) -> Any:
    """``method`` (bound, or a function) on a copy of its function with a code object of its own. Dynamo keeps a code
    object's compiled graphs together, at most ``torch._dynamo.config.recompile_limit`` (8) of them, and runs
    the code uncompiled past that (a warning, no error): compiled from the one ``RNN.loop``, four layers
    called in training and in inference over two chunk lengths had filled them, and every later layer or
    shape in the process ran uncompiled. With a copy per layer and :func:`compiled_loop` key, the 8 are left to
    one key's input shapes (batch sizes, dtypes)."""
    bound = isinstance(method, types.MethodType)
    func = method.__func__ if bound else method
    if not isinstance(func, types.FunctionType):
        return method  # (a callable of another kind: as it is)
    copy = types.FunctionType(func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    return types.MethodType(copy, method.__self__) if bound else copy


def run_compiled(layer: Any, hoisted: bool, x: torch.Tensor, states: list, mask: torch.Tensor | None,
                 training: bool, constants: list | None):
    """``layer.loop(hoisted, x, states, mask, training, constants)``'s ``(last, outputs, new_states)`` through
    the compiled loop, ``CHUNK`` steps at a time (``x`` batch-major ``(B, T, ...)``, ``mask`` ``(B, T)``)."""
    split = None if hoisted else split_for(layer, x, states, training, constants)
    kind = loop_kind(x, split is not None, training)

    logged = not capturing_graph()  # (inside another graph's capture, what compiles is not this loop)

    def loop(*args):  # (``layer.loop``'s arguments: the chunk's length, of its inputs, picks the compiled loop)
        steps = flatten(args[1])[0].shape[1]
        compiled = compiled_loop(layer, kind, steps)
        if not logged:
            return compiled(*args)
        frames, start = _frames(), time.perf_counter()
        result = compiled(*args)
        now = _frames()
        if now != frames:  # dynamo set out to compile (a new loop, or its guards failed: new shapes, say)
            seconds = time.perf_counter() - start if now[1] != frames[1] else None  # (None: it gave up)
            layer.__dict__.setdefault("_compile_log", []).append(((*kind, steps), seconds))
        return result

    weights = None
    inputs: Any = x
    if split is not None:  # the step's input part, all steps at once; the loop runs the rest
        weights = split.weights(layer.cell)
        inputs = split.project(weights, x)
    sizes = chunk_sizes(layer, kind, x.shape[1])
    if len(sizes) == 1:
        return loop(hoisted, inputs, states, mask, training, constants, split, weights)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    order = range(len(sizes) - 1, -1, -1) if layer.go_backwards else range(len(sizes))  # (the last chunk first)
    if torch.is_grad_enabled() and (any(t.requires_grad for t in flatten(inputs))
                                    or any(p.requires_grad for p in layer.parameters())):
        # later chunks get states that require grad: the first chunk's too, so that one graph serves them all
        states = pack_as(states, [s if s.requires_grad else s.detach().requires_grad_() for s in flatten(states)])
    outputs: list[torch.Tensor] = []
    last = None
    # (split, not sliced: the backward gathers the chunks' input gradients in one tensor, not one per chunk)
    chunks = list(zip(*[t.split(sizes, 1) for t in flatten(inputs)]))
    for i in order:
        chunk_mask = None if mask is None else mask[:, starts[i]:starts[i] + sizes[i]]
        previous = last
        chunk = pack_as(inputs, list(chunks[i]))
        last, out, states = loop(hoisted, chunk, states, chunk_mask, training, constants, split, weights)
        if chunk_mask is not None and previous is not None and not layer.zero_output_for_mask:
            last, out = _continue_outputs(layer, chunk_mask, previous, last, out)
        outputs.append(out)
    assert last is not None
    return last, torch.cat(outputs, 1) if layer.return_sequences else outputs[-1], states


def _frames() -> tuple[int, int]:
    """Dynamo's counts of the frames it set out to compile in this process and of those it compiled."""
    frames = counters["frames"]
    return frames["total"], frames["ok"]


def compile_report(layer: Any) -> str:
    """What ``compile=True`` has compiled for ``layer`` so far, for :func:`rnnkit.explain`: the number of
    compilations (each new chunk length, kind of call and, under dynamo's guards, batch size, dtype or traced step
    compiles once) and the seconds their calls took, compilation included; and the compilations dynamo gave up
    (past its ``recompile_limit`` per kind of chunk, or a failure), whose shapes run uncompiled."""
    log = layer.__dict__.get("_compile_log", [])
    how = f"torch.compile in chunks of up to {CHUNK} steps"
    if not log:
        return f"{how}; nothing compiled yet: the first call compiles"
    done = [seconds for _, seconds in log if seconds is not None]
    text = f"{how}; {len(done)} compilation{'' if len(done) == 1 else 's'} so far, {sum(done):.1f} s"
    refused = len(log) - len(done)
    if refused:
        limit = torch._dynamo.config.recompile_limit
        text += (f"; {refused} not compiled, run uncompiled (dynamo's limit of {limit} compilations per kind of "
                 "chunk, or a failure)")
    return text


def loop_kind(x: torch.Tensor, split: bool, training: bool) -> tuple:
    """What tells a layer's compiled loops apart but the chunk's length: ``(device type, split, one thread,
    training, grad mode)``."""
    return x.device.type, split, split and x.shape[0] <= SPLIT_ONE_THREAD_UP_TO, training, torch.is_grad_enabled()


def chunk_sizes(layer: Any, kind: tuple, steps: int) -> list[int]:
    """The lengths of the chunks a sequence of ``steps`` runs in: ``CHUNK`` steps each, then the rest as it is
    where ``kind`` (:func:`loop_kind`) has it compiled or fewer than ``EXACT_LENGTHS``
    other lengths compiled, else in powers of two, the largest first."""
    sizes = [CHUNK] * (steps // CHUNK)
    rest = steps % CHUNK
    if rest:
        compiled = {key[-1] for key in layer.__dict__.get("_compiled_loops", {}) if key[:-1] == kind} - {CHUNK}
        if rest in compiled or len(compiled) < EXACT_LENGTHS:
            sizes.append(rest)
        else:
            sizes += [1 << bit for bit in range(rest.bit_length() - 1, -1, -1) if rest >> bit & 1]
    return sizes


def split_for(layer: Any, x: torch.Tensor, states: list, training: bool,
              constants: list | None) -> SplitStep | None:
    """The layer's step split in two (:func:`rnnkit.core.split_step.split_step`) for this call, traced once per
    shapes, dtype, device, ``training``, grad mode and snapshot of the cell's attributes (``python_state``) and
    kept on the layer; None where it is not split (a batch above ``SPLIT_BATCH_UP_TO``, constants given, a graph
    being captured, ``torch.func`` transforms or autocast active, attributes without a snapshot, or the step
    cannot be cut)."""
    if (x.shape[0] > SPLIT_BATCH_UP_TO or constants is not None or capturing_graph()
            or torch._C._are_functorch_transforms_active() or torch.is_autocast_enabled(x.device.type)):
        return None  # (a trace under autocast would hold its casts)
    cell = layer.cell
    state = python_state(cell)  # (None: not a module, or attributes without a snapshot: not traced)
    if state is None:
        return None
    weights = tuple((name, w.shape, w.dtype) for name, w in [*cell.named_parameters(), *cell.named_buffers()])
    key = (training, torch.is_grad_enabled(), x.shape[:1] + x.shape[2:], x.dtype, x.device, weights,
           tuple((s.shape, s.dtype) for s in flatten(states)), state)
    found = layer.__dict__.setdefault("_split_steps", {})  # (layers pickled before it have none)
    if key not in found:
        while len(found) >= SPLITS_KEPT:  # the oldest go first
            del found[next(iter(found))]
        found[key] = split_step(cell, layer.step_function(training, None), x[:, 0], states, SMALL_PRODUCTS_UP_TO)
        reset_dropout(cell)  # (a cell that made dropout masks while traced keeps none of them)
    return found[key]


def _continue_outputs(layer: Any, mask: torch.Tensor, previous: torch.Tensor, last: torch.Tensor,
                      out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk's ``(last, outputs)`` with its masked opening steps (before each row's first valid step in
    processing order) set to ``previous``, the last output before the chunk."""
    in_order = mask.flip(1) if layer.go_backwards else mask
    seen = in_order.cummax(1).values  # (B, steps): a valid step came at or before this one
    ran = seen[:, -1].view(-1, *[1] * (last.dim() - 1))
    last = torch.where(ran, last, previous)
    if not layer.return_sequences:
        return last, last.unsqueeze(1)
    return last, torch.where(seen.view(*seen.shape, *[1] * (out.dim() - 2)), out, previous.unsqueeze(1))
