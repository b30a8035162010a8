"""The Keras-on-jax peer of the benchmarks, seen from rnnkit's side: a subprocess running
``rnnkit.tools.bench_jax`` (Keras 3 on jax cannot share a process with Keras on torch), asked for one case's
time at a time so that its timings alternate with rnnkit's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial

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


class PeerStopped(RuntimeError):
    """The Keras-on-jax subprocess stopped (its last words in the message)."""


class JaxPeer:
    """Keras 3 on jax in a subprocess (``rnnkit.tools.bench_jax``), asked for one case's time at a time, so
    that its timings alternate with rnnkit's (:func:`alternated`). Use as a context manager."""

    def __init__(self, timeout_s: int = 600, argv: list[str] | None = None):
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
        self.timeout_s = timeout_s
        argv = [sys.executable, "-m", "rnnkit.tools.bench_jax"] if argv is None else argv  # (tests: a stand-in)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def time(self, case: dict, repeats: int = 5, budget_s: float = 1.0) -> float:
        """Median seconds of one run of ``case`` (built and compiled on its first request). Raises
        :class:`PeerStopped` with the subprocess's last words where it has stopped."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"case": case, "repeats": repeats, "budget_s": budget_s}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # (it has stopped: said below)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(self.timeout_s)
            assert self.proc.stderr is not None
            raise PeerStopped(f"keras-jax peer stopped: {self.proc.stderr.read()[-2000:]}")
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
                ours = [partial(median_time, run, repeats=5, warmup=1, budget_s=1.0) for _, run in runs]
                *times, theirs = alternated([*ours, partial(peer.time, case)], JAX_ROUNDS)
                calls = case.get("calls", 1)
                mode = "infer" if case["mode"] == "stream" else case["mode"]
                for (name, _), t in zip(runs, times):
                    add(name, case["cell"], case["shape"], mode, t / calls, "keras-jax", theirs / calls)
    except PeerStopped as err:  # (the rows so far stay)
        print(err, file=sys.stderr)
