"""``SeedStream``: the random stream of a layer built with ``seed=``, replayed on recomputation.

A seeded layer draws its dropout masks from its own stream, not from torch's
global generator, so that the same seed gives the same masks whatever else
consumes random numbers. Draw ``n`` of the stream (``n = 0, 1, 2, ...``) uses
a fresh ``torch.Generator`` seeded with ``mix(seed, n)``.

Recomputation (``torch.utils.checkpoint``, reentrant or not) runs a forward a
second time during the backward pass, and must see the masks of the first
run. torch's checkpoint restores its global CPU generator for that
(``preserve_rng_state=True``, the default), so every draw takes one number
from that generator, a nonce, and remembers ``nonce -> n``; a draw made during
a backward pass whose nonce is remembered (the recomputation of that draw)
reuses its ``n`` instead of advancing the stream. The last ``HISTORY`` draws
are remembered. With ``preserve_rng_state=False`` the nonces differ and a
recomputation draws new masks, as torch's own dropout does then.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

_MASK63 = (1 << 63) - 1


def _mix(seed: int, n: int) -> int:
    """splitmix64 of ``(seed, n)``: decorrelated 63-bit seeds for consecutive draws."""
    z = (seed * 0x9E3779B97F4A7C15 + (n + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & _MASK63


def _in_backward() -> bool:
    """Whether autograd is running a backward pass now (where recomputations happen)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1


class SeedStream:
    """Draws of one seed (see the module docstring); copies and pickles continue the stream."""

    HISTORY = 4096

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.count = 0
        self._drawn: OrderedDict[int, int] = OrderedDict()

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The generator of the next draw, or of the draw a recomputation repeats."""
        nonce = int(torch.randint(0, _MASK63, ()))  # from torch's global CPU generator
        n = self._drawn.get(nonce) if _in_backward() else None
        if n is None:
            n, self.count = self.count, self.count + 1
            self._drawn[nonce] = n
            if len(self._drawn) > self.HISTORY:
                self._drawn.popitem(last=False)
        return torch.Generator(device=device).manual_seed(_mix(self.seed, n))


def keep_masks(shape: tuple, keep_prob: float, count: int, stream: SeedStream | None, device: torch.device | str,
               dtype: torch.dtype) -> list[torch.Tensor]:
    """``count`` dropout keep-masks of ``shape`` (True: keep), from one draw of ``stream``
    (a seeded layer's; replayed by ``torch.utils.checkpoint``) or from torch's generator (``None``)."""
    generator = None if stream is None else stream.generator(device)
    return [torch.rand(shape, generator=generator, dtype=dtype, device=device) < keep_prob for _ in range(count)]
