"""Keeping freed memory in the process, for training loops: glibc malloc's two thresholds.

A training step allocates and frees the same large tensors at every step:
activations, oneDNN's LSTM workspace, gradients, megabytes each. glibc's
``malloc`` gives a block above its *mmap threshold* pages of its own from
``mmap`` (unmapped again when freed) and returns the top of its heap to the
system once more than its *trim threshold* is free there; either way the next
step's tensors land on pages the kernel must fault in and zero again. glibc
raises the mmap threshold as it sees large blocks freed, so how often this
happens depends on the order of the process's earlier allocations: the same
step runs at different speeds in different processes. Measured on 2 cores,
the demo's two-layer LSTM (:mod:`rnnkit.tools.demo`): 21-38 ms a step (median
per process, eight processes), 20-26 ms in every process with both thresholds
fixed high.

:func:`keep_freed_memory` fixes them for the whole process (``mallopt``), as
the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` would at start-up. The cost: memory freed stays with
the process (up to its peak use) instead of going back to the system. It is a
process-wide setting, so rnnkit never makes it on import: ``rnnkit demo`` and
``benchmarks/bench_demo.py`` call it; a user's own training program may.
"""

from __future__ import annotations

import ctypes
import platform
import sys
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap. Older glibc releases refuse more than 32 MiB (half their heap
# size on 64-bit machines); there the fallback applies (glibc 2.36 here takes 1 GiB).
MMAP_THRESHOLD = 1 << 30
MMAP_THRESHOLD_FALLBACK = 32 << 20
TRIM_THRESHOLD = 1 << 30  # free memory kept at the top of the heap


def unavailable() -> str | None:
    """Why :func:`keep_freed_memory` can do nothing here (None: Linux with glibc)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return f"glibc malloc only (this is {sys.platform}, {platform.libc_ver()[0] or 'another libc'})"
    return None


_KEPT: dict[str, int] = {}  # the thresholds keep_freed_memory set in this process (its subprocesses' env)


def keep_freed_memory() -> str | None:
    """Fix glibc malloc's mmap and trim thresholds high for this process (see the module docstring).

    Returns None when done, else why not: not Linux with glibc (other allocators keep their own policies),
    or ``mallopt`` refused both values.
    """
    why = unavailable()
    if why is not None:
        return why
    libc = ctypes.CDLL(None)
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for mmap_threshold in (MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK):
        if mallopt(M_MMAP_THRESHOLD, mmap_threshold):
            break
    else:
        return "mallopt refused the mmap threshold"
    if not mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        return "mallopt refused the trim threshold"
    _KEPT.update(MALLOC_MMAP_THRESHOLD_=mmap_threshold, MALLOC_TRIM_THRESHOLD_=TRIM_THRESHOLD)
    return None


def add_malloc_option(parser: Any, kept: str) -> None:
    """``--malloc-as-is`` for a command that keeps freed memory by default (``kept``: what it keeps, in words)."""
    parser.add_argument("--malloc-as-is", action="store_true",
                        help=f"leave glibc malloc's thresholds as they are (by default {kept}: "
                             "rnnkit.tools.allocator)")


def follow_malloc_option(malloc_as_is: bool) -> str:
    """:func:`keep_freed_memory` unless ``--malloc-as-is`` was given; what was done, in words."""
    return "glibc malloc as it is" if malloc_as_is else f"freed memory kept: {keep_freed_memory() or 'yes'}"


def kept_env() -> dict[str, str]:
    """The environment variables that set a new process's thresholds as :func:`keep_freed_memory` set this
    one's (none where it was not called or did nothing): a benchmark's peer in a subprocess then allocates
    under the same rules as rnnkit beside it."""
    return {name: str(value) for name, value in _KEPT.items()}
