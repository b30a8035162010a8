"""Keras 3 on jax (XLA-compiled) timings, run in a subprocess by ``rnnkit.tools.bench``.

Reads a JSON list of ``{"cell", "shape", "mode"[, "mask"][, "calls"]}`` from
stdin and prints one JSON object ``{key: seconds}`` (keys:
``rnnkit.tools.bench.jax_key``). The forward (and, for ``train``, its
gradient) is ``jax.jit``-compiled once before timing; ``mask`` passes the
benchmark's right-padded mask; mode ``stream`` times ``calls`` one-step calls
of a layer whose states are carried from call to call (online inference).
"""

from __future__ import annotations

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"


def main() -> None:
    import jax
    import keras
    import numpy as np

    from rnnkit.tools.bench import jax_key, median_time, right_padded_mask
    from rnnkit.tools.bench_custom import _keras_cell

    cases = json.loads(sys.stdin.read())
    out = {}
    for case in cases:
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
        out[jax_key(case)] = median_time(run)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
