"""The Keras-on-jax peer of the benchmarks, seen from rnnkit's side: a subprocess running
``rnnkit.tools.bench_jax`` (Keras 3 on jax cannot share a process with Keras on torch), asked for one case's
time at a time so that its timings alternate with rnnkit's."""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from rnnkit.tools.allocator import kept_env
from rnnkit.tools.timing import alternated, median_time


def jax_missing() -> str | None:
    """Why the Keras-on-jax peer cannot run here (None: it can): jax or keras not installed."""
    import importlib.util

    missing = []
    for name in ("jax", "keras"):
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ValueError:
            missing.append(name)
    if not missing:
        return None
    return f"{' and '.join(missing)} not installed (pip install jax jaxlib keras)"


JAX_ROUNDS = 3  # alternations of rnnkit's and Keras-on-jax's timings of one case
ROUND: dict[str, Any] = {"repeats": 5, "warmup": 1, "budget_s": 1.0}  # one side's timing in a round (median_time's)


class PeerStopped(RuntimeError):
    """The Keras-on-jax subprocess stopped (its last words in the message)."""


class JaxPeer:
    """Keras 3 on jax in a subprocess (``rnnkit.tools.bench_jax``), asked for one case's time at a time, so
    that its timings alternate with rnnkit's (:func:`alternated`). Use as a context manager. Its output and
    error streams are read by threads as they come (a full pipe never blocks it); an answer that takes over
    ``timeout_s`` seconds ends it."""

    def __init__(self, timeout_s: float = 600, argv: list[str] | None = None):
        # (glibc malloc's thresholds as this process keeps them, rnnkit.tools.allocator: both sides alike)
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", **kept_env())
        self.timeout_s = timeout_s
        argv = [sys.executable, "-m", "rnnkit.tools.bench_jax"] if argv is None else argv  # (tests: a stand-in)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self._answers: queue.Queue[str] = queue.Queue()
        self._errors: collections.deque[str] = collections.deque(maxlen=50)  # its last lines
        self._readers = [threading.Thread(target=_read_lines, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stdout, self._answers.put),
                                              (self.proc.stderr, self._errors.append))]
        for reader in self._readers:
            reader.start()

    def time(self, case: dict, timing: dict | None = None) -> float:
        """Median seconds of one run of ``case`` (built and compiled on its first request; ``timing``:
        :func:`rnnkit.tools.timing.median_time`'s arguments, ``ROUND`` by default). Raises
        :class:`PeerStopped` with the subprocess's last words where it has stopped (or was stopped for taking
        too long)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"case": case, "timing": ROUND if timing is None else timing}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # (it has stopped: said below)
        try:
            line = self._answers.get(timeout=self.timeout_s)
        except queue.Empty:
            self.proc.kill()
            line = ""
        if not line:
            self.proc.wait(self.timeout_s)
            self._readers[1].join(self.timeout_s)  # (its last error lines)
            raise PeerStopped(f"keras-jax peer stopped: {''.join(self._errors)[-2000:]}")
        answer = json.loads(line)
        assert answer["key"] == jax_key(case), (answer["key"], case)
        return answer["seconds"]

    def __enter__(self) -> JaxPeer:
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # (it has stopped already)
        try:
            self.proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _read_lines(stream: Any, into: Callable[[str], None]) -> None:
    """Each line of ``stream`` to ``into``, then "" at its end."""
    for line in stream:
        into(line)
    into("")


def jax_key(case: dict) -> str:
    """The key ``rnnkit.tools.bench_jax`` prints a case's time under."""
    return f"{case['cell']}|{tuple(case['shape'])}|{case['mode']}{'|mask' if case.get('mask') else ''}"


def jax_rows(cases: list[tuple[dict, list]], add: Callable) -> None:
    """Each case's rnnkit runs against Keras 3 on jax (:class:`JaxPeer`), their timings alternated
    (:func:`alternated`): ``add(name, cell, shape, mode, ours, "keras-jax", theirs)`` per run, in seconds per
    call (a streaming case's ``calls`` one-step calls divided out)."""
    try:
        with JaxPeer() as peer:
            for case, runs in cases:
                ours = [partial(median_time, run, **ROUND) for _, run in runs]  # (the peer times its side alike)
                *times, theirs = alternated([*ours, partial(peer.time, case)], JAX_ROUNDS)
                calls = case.get("calls", 1)
                mode = "infer" if case["mode"] == "stream" else case["mode"]
                for (name, _), t in zip(runs, times):
                    add(name, case["cell"], case["shape"], mode, t / calls, "keras-jax", theirs / calls)
    except PeerStopped as err:  # (the rows so far stay)
        print(err, file=sys.stderr)
