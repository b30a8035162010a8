"""``rnnkit.tools.allocator``: freed memory kept in the process (glibc malloc's thresholds)."""

import os
import subprocess
import sys

import pytest

from rnnkit.tools import allocator

# Allocates, fills and frees a 40 MiB tensor ten times after one warm-up round and prints the page faults
# those ten rounds cost. 40 MiB is above glibc's largest automatic mmap threshold (32 MiB), so by default each
# round maps fresh pages and faults all of them in.
ROUNDS = """
import json, resource, sys, torch
from rnnkit.tools.allocator import keep_freed_memory, kept_env
if sys.argv[1] == "keep":
    assert keep_freed_memory() is None
    sys.stderr.write(json.dumps(kept_env()))
torch.empty(10 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(10 << 20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(allocator.unavailable() is not None, reason="glibc malloc only")


def _faults(how: str, extra_env: dict | None = None) -> tuple[int, str]:
    """The page faults of ten rounds, and what the process wrote on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", ROUNDS, how], capture_output=True, text=True, timeout=120,
                          env=dict(env, **(extra_env or {})))
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1]), done.stderr


@glibc
def test_freed_memory_is_reused_not_faulted_in_again():
    """In a process that keeps freed memory, and in one started with the environment it gives its
    subprocesses (``kept_env``: a benchmark's peer)."""
    import json

    pages = (40 << 20) // 4096  # one round's pages
    (as_is, _), (kept, said) = _faults("as-is"), _faults("keep")
    assert as_is >= 5 * pages, as_is  # glibc's defaults: fresh pages at (nearly) every round
    assert kept <= pages * 3 // 2, kept  # kept: the pages of the first rounds serve the rest
    env = json.loads(said.strip().splitlines()[-1])
    assert set(env) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    inherited, _ = _faults("as-is", env)
    assert inherited <= pages * 3 // 2, inherited


def test_elsewhere_than_glibc_it_says_why(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    why = allocator.keep_freed_memory()
    assert why is not None and "glibc malloc only" in why
