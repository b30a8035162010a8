"""``rnnkit.core.protocol``: what the layers ask of a cell."""

import gc

import pytest
import torch

import rnnkit
from rnnkit.core import protocol
from rnnkit.core.protocol import call_accepts


class Cell:
    state_size = 2

    def call(self, inputs, states, training=None):
        return inputs, states


class AnyKeyword:
    def __call__(self, inputs, states, **kwargs):
        return inputs, states


@pytest.mark.parametrize("fn, arg, expected", [
    (Cell().call, "training", True),
    (Cell().call, "constants", False),
    (Cell.call, "training", True),
    (AnyKeyword(), "constants", True),
    (lambda inputs, states: None, "training", False),
    (torch.tanh, "training", False),  # a builtin without a signature
])
def test_call_accepts(fn, arg, expected):
    assert call_accepts(fn, arg) is expected
    assert call_accepts(fn, arg) is expected  # the cached answer


def test_call_accepts_inspects_each_function_once(monkeypatch):
    calls = []
    real = protocol.inspect.signature
    monkeypatch.setattr(protocol.inspect, "signature", lambda fn: (calls.append(fn), real(fn))[1])

    class Other(Cell):
        def call(self, inputs, states, constants=None):
            return inputs, states

    cells = [Other() for _ in range(3)]
    answers = [call_accepts(c.call, arg) for c in cells for arg in ("training", "constants", "training")]
    assert answers == [False, True, False] * 3
    assert len(calls) == 2  # once per (function, argument), whichever instance it is bound to


def test_call_accepts_keeps_nothing_alive():
    class Temporary(Cell):
        def call(self, inputs, states, mask=None):
            return inputs, states

    assert call_accepts(Temporary.call, "mask")
    n = len(protocol._ACCEPTS)
    del Temporary
    gc.collect()
    assert len(protocol._ACCEPTS) < n


def test_layers_read_the_cached_answer():
    layer = rnnkit.RNN(Cell())
    assert layer._cell_takes_training and not layer._cell_takes_constants
