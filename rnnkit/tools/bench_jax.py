"""Keras 3 on jax (XLA-compiled) timings, run in a subprocess by ``rnnkit.tools.jax_peer``.

Serves one request per stdin line, a JSON object ``{"case": {"cell", "shape", "mode"[, "mask"][, "calls"]},
"timing": {...}}``, and answers each on one stdout line, ``{"key": ..., "seconds": ...}`` (keys:
``rnnkit.tools.jax_peer.jax_key``; seconds: ``rnnkit.tools.timing.median_time`` of one run, with the request's
``timing`` as its arguments), until stdin closes. The parent alternates these requests with its own timings of
the same case, so that both sides of a ratio are measured within seconds of each other. A case is built on its
first request: the forward (and, for ``train``, its gradient) ``jax.jit``-compiled and run once before any
timing; ``mask`` passes the benchmark's right-padded mask; mode ``stream`` times ``calls`` one-step calls of a
layer whose states are carried from call to call (online inference).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

os.environ["KERAS_BACKEND"] = "jax"


def build(case: dict) -> Callable[[], None]:
    """One timed run of ``case`` in Keras 3 on jax (compiled and run once here)."""
    import jax
    import keras
    import numpy as np

    from rnnkit.tools.bench import right_padded_mask
    from rnnkit.tools.bench_custom import _keras_cell

    b, t, d, u = case["shape"]
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN,
           "minimal": lambda units, **kw: keras.layers.RNN(_keras_cell(units), **kw)}[case["cell"]]
    stream = case["mode"] == "stream"
    layer = cls(u, return_sequences=not stream, return_state=stream)
    layer.build((b, t, d))
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((b, t, d)).astype("float32"))
    kwargs = {}
    if case.get("mask"):
        kwargs["mask"] = jax.numpy.asarray(right_padded_mask(b, t).numpy())
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]

    def loss(tv, x):
        y, _ = layer.stateless_call(tv, ntv, x, **kwargs)
        return y.sum()

    if stream:  # one step per call, the states carried from call to call (``calls`` calls per run); each
        # call's output is waited for, as an online consumer reads it before the next step
        step = jax.jit(lambda tv, x, states: layer.stateless_call(tv, ntv, x, initial_state=states)[0])
        zeros = [jax.numpy.zeros((b, u), "float32") for _ in range(2 if case["cell"] == "lstm" else 1)]

        def run():
            states = zeros
            for _ in range(case["calls"]):
                _, *states = jax.block_until_ready(step(tv, x, states))
    else:
        if case["mode"] == "infer":
            fn = jax.jit(lambda tv, x: layer.stateless_call(tv, ntv, x, **kwargs)[0])
        else:
            fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
        run = lambda: jax.block_until_ready(fn(tv, x))  # noqa: E731
    run()
    return run


def main() -> None:
    from rnnkit.tools.jax_peer import jax_key
    from rnnkit.tools.timing import median_time

    built: dict[str, Callable[[], None]] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        key = jax_key(request["case"])
        if key not in built:
            built[key] = build(request["case"])
        seconds = median_time(built[key], **request["timing"])
        print(json.dumps({"key": key, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
