"""``compile=True``: a recurrent layer's generic loop through ``torch.compile``, in chunks of steps.

Dynamo unrolls the Python loop over the steps it sees, so a compiled loop is
one graph per sequence length, and its compile time grows with the length. The
loop is compiled for at most ``CHUNK`` steps: a longer sequence runs chunk after
chunk (states carried from one to the next), so any length costs at most two
compilations (``CHUNK`` and the remainder) and long sequences compile in
seconds. The chunks give exactly the one loop's results: a masked step repeats
the previous output (Keras), so the masked steps that open a chunk, before its
first valid step, take the previous chunk's last output (zeros with
``zero_output_for_mask``, as in one loop).

On the CPU the compiled code's wrapper is C++ as well (inductor's
``cpp_wrapper``): each step's kernel and matrix-product calls then cost no
Python, about 20-30% faster training than with the Python wrapper, for 1.5-4x
the compile time; see ``benchmarks/`` for what it buys.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.core.tree import flatten, pack_as

CHUNK = 32  # steps per compiled graph


def compiled_loop(layer: Any, device_type: str) -> Any:
    """``torch.compile`` of ``layer.loop``, made on first use per device type and kept on the layer."""
    loops = layer.__dict__.setdefault("_compiled_loops", {})  # (layers pickled before it have none)
    compiled = loops.get(device_type)
    if compiled is None:
        options: dict[str, Any] | None = {"cpp_wrapper": True} if device_type == "cpu" else None
        compiled = loops[device_type] = torch.compile(layer.loop, dynamic=False, options=options)
    return compiled


def run_compiled(layer: Any, hoisted: bool, x: torch.Tensor, states: list, mask: torch.Tensor | None,
                 training: bool, constants: list | None):
    """``layer.loop(hoisted, x, states, mask, training, constants)``'s ``(last, outputs, new_states)`` through
    the compiled loop, ``CHUNK`` steps at a time (``x`` batch-major ``(B, T, ...)``, ``mask`` ``(B, T)``)."""
    loop = compiled_loop(layer, x.device.type)
    steps = x.shape[1]
    if steps <= CHUNK:
        return loop(hoisted, x, states, mask, training, constants)
    starts = list(range(0, steps, CHUNK))
    if layer.go_backwards:  # processing order: the last chunk first, each one backwards
        starts.reverse()
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters())):
        # later chunks get states that require grad: the first chunk's too, so that one graph serves them all
        states = pack_as(states, [s if s.requires_grad else s.detach().requires_grad_() for s in flatten(states)])
    outputs: list[torch.Tensor] = []
    last = None
    for start in starts:
        part = slice(start, start + CHUNK)
        chunk_mask = None if mask is None else mask[:, part]
        previous = last
        last, out, states = loop(hoisted, x[:, part], states, chunk_mask, training, constants)
        if chunk_mask is not None and previous is not None and not layer.zero_output_for_mask:
            last, out = _continue_outputs(layer, chunk_mask, previous, last, out)
        outputs.append(out)
    assert last is not None
    return last, torch.cat(outputs, 1) if layer.return_sequences else outputs[-1], states


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
