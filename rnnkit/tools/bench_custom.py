"""The custom-cell benchmark: the same minimal tanh cell in rnnkit and in Keras 3."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import rnnkit
from rnnkit.tools.bench import runner


class MinimalTanhCell(rnnkit.Layer):
    """``h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel)``, written as a user would."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units), "glorot_uniform", "kernel")
        self.recurrent_kernel = self.add_weight((self.units, self.units), "orthogonal", "recurrent_kernel")

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h]


def _keras_cell(units):
    import keras

    class KerasMinimalTanhCell(keras.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

        def call(self, inputs, states):
            z = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(states[0], self.recurrent_kernel)
            h = keras.ops.tanh(z)
            return h, [h]

    return KerasMinimalTanhCell(units)


def custom_cell_runners(shape: tuple, mode: str = "train") -> tuple[Callable[[], None], Callable[[], None]]:
    """(rnnkit run, Keras-on-torch run) of ``RNN(custom cell)`` (``rnnkit.tools.bench.runner``)."""
    import keras

    b, t, d, u = shape
    x = torch.randn(b, t, d, requires_grad=mode == "train")
    ours = rnnkit.RNN(MinimalTanhCell(u), return_sequences=True)
    ours.build((b, t, d))
    theirs = keras.layers.RNN(_keras_cell(u), return_sequences=True)
    theirs.build((b, t, d))
    params_k = [v.value for v in theirs.trainable_variables] + [x]
    return runner(lambda: ours(x), list(ours.parameters()) + [x], mode), runner(lambda: theirs(x), params_k, mode)


def compiled_loop_runners(shape: tuple, mode: str = "train") -> tuple[Callable[[], None], Callable[[], None], float]:
    """(compiled run, plain run, compile seconds) for ``RNN(cell, compile=True)`` and the same cell's plain
    ``RNN``; the compiled one has made its first call (the compilation, timed)."""
    b, t, d, u = shape
    x = torch.randn(b, t, d, requires_grad=mode == "train")
    plain = rnnkit.RNN(MinimalTanhCell(u), return_sequences=True)
    plain.build((b, t, d))
    compiled = rnnkit.RNN(MinimalTanhCell(u), return_sequences=True, compile=True)
    compiled.build((b, t, d))
    run_compiled = runner(lambda: compiled(x), list(compiled.parameters()) + [x], mode)
    start = time.perf_counter()
    run_compiled()
    compile_s = time.perf_counter() - start
    return run_compiled, runner(lambda: plain(x), list(plain.parameters()) + [x], mode), compile_s
