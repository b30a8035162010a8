"""Wall-clock timing for the benchmarks: medians, and two or more sides timed in alternation so that a
shared machine's drift weighs on every side of a ratio alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int = 11, warmup: int = 3, budget_s: float = 3.0) -> float:
    """Median wall time of ``fn()``; fewer repeats when one call is slow."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_times(fn_a: Callable[[], Any], fn_b: Callable[[], Any], repeats: int = 15, warmup: int = 3,
                 budget_s: float = 6.0) -> tuple[float, float]:
    """Median wall times of ``fn_a()`` and ``fn_b()`` timed in alternation, so that a machine's drift
    (another process, clock changes) weighs on both sides of a ratio alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a: list[float] = []
    b: list[float] = []
    start = time.perf_counter()
    while len(a) < repeats and (len(a) < 3 or time.perf_counter() - start < budget_s):
        for fn, into in ((fn_a, a), (fn_b, b)):
            t0 = time.perf_counter()
            fn()
            into.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def alternated(timers: list[Callable[[], float]], rounds: int = 3) -> list[float]:
    """Each timer (a function that measures something and returns seconds) called in turn, ``rounds`` times
    over; the median of each one's results. Where one side runs in another process and cannot be timed call
    by call against the other (:func:`paired_times`), its measurements and ours still alternate every few
    seconds, so that a machine's slow minute weighs on both sides of a ratio alike."""
    results: list[list[float]] = [[] for _ in timers]
    for _ in range(rounds):
        for timer, into in zip(timers, results):
            into.append(timer())
    return [statistics.median(r) for r in results]


def warm_up(fns: list[Callable[[], Any]], seconds: float = 2.0) -> int:
    """Each of ``fns`` called in turn until ``seconds`` have passed (at least once each); the rounds run. A
    process's first seconds (the CPU's clock rising, first allocations, lazy initialization) then weigh on no
    timed run: a benchmark's first row had read rnnkit at 1.34x torch.nn where its next rows, the same call,
    read 1.0x."""
    rounds = 0
    start = time.perf_counter()
    while rounds == 0 or time.perf_counter() - start < seconds:
        for fn in fns:
            fn()
        rounds += 1
    return rounds
