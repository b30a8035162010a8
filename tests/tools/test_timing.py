"""``rnnkit.tools.timing``: the sides of a ratio timed in alternation."""

from rnnkit.tools import timing


def test_paired_times_alternate_the_two_sides():
    calls = []
    a, b = timing.paired_times(lambda: calls.append("a"), lambda: calls.append("b"), repeats=4, warmup=1)
    assert calls == ["a", "b"] * 5 and a >= 0 and b >= 0


def test_alternated_calls_the_timers_in_turn_and_takes_each_ones_median():
    calls = []

    def timer(name, values):
        values = iter(values)
        return lambda: calls.append(name) or next(values)
    assert timing.alternated([timer("ours", [3.0, 1.0, 2.0]), timer("jax", [9.0, 5.0, 4.0])], rounds=3) == [2.0, 5.0]
    assert calls == ["ours", "jax"] * 3


def test_warm_up_calls_each_in_turn_until_the_time_is_spent():
    calls = []
    rounds = timing.warm_up([lambda: calls.append("a"), lambda: calls.append("b")], seconds=0.0)
    assert rounds == 1 and calls == ["a", "b"]  # (at least once each)
    calls.clear()
    start = timing.time.perf_counter()
    rounds = timing.warm_up([lambda: calls.append("a"), lambda: calls.append("b")], seconds=0.02)
    assert timing.time.perf_counter() - start >= 0.02 and rounds > 1 and calls == ["a", "b"] * rounds
