"""Keras 3 on jax (XLA-compiled) timings, run in a subprocess by ``rnnkit.tools.bench``.

Reads a JSON list of ``{"cell", "shape", "mode"}`` from stdin and prints one
JSON object ``{"cell|shape|mode": seconds}``. The forward (and, for
``train``, its gradient) is ``jax.jit``-compiled once before timing.
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

    from rnnkit.tools.bench import median_time

    cases = json.loads(sys.stdin.read())
    out = {}
    for case in cases:
        b, t, d, u = case["shape"]
        cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}[case["cell"]]
        layer = cls(u, return_sequences=True)
        layer.build((b, t, d))
        x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((b, t, d)).astype("float32"))
        tv = [v.value for v in layer.trainable_variables]
        ntv = [v.value for v in layer.non_trainable_variables]

        def loss(tv, x):
            y, _ = layer.stateless_call(tv, ntv, x)
            return y.sum()

        if case["mode"] == "infer":
            fn = jax.jit(lambda tv, x: layer.stateless_call(tv, ntv, x)[0])
        else:
            fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
        run = lambda: jax.block_until_ready(fn(tv, x))  # noqa: E731
        out[f"{case['cell']}|{tuple(case['shape'])}|{case['mode']}"] = median_time(run)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
