"""``rnnkit.explain(layer, inputs, mask=None, training=None, constants=None)``.

It must predict the path that a call with the same arguments actually takes
(checked with a spy on the dispatch), compute nothing, build an unbuilt layer,
and read ``training`` / ``_keras_mask`` / ``time_major`` as the call does.
"""

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.layers.rnn as rnn_module
from rnnkit.kernels import native
from rnnkit.kernels.path import Plan

B, T, F, U = 3, 5, 4, 2
X = np.random.RandomState(0).randn(B, T, F).astype("float32")
RIGHT = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
HOLES = np.array([[1, 0, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)


class ConstCell(rnnkit.Layer):
    """A custom cell that takes constants."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")

    def call(self, inputs, states, constants=None):
        h = inputs @ self.kernel + states[0]
        if constants is not None:
            h = h + constants[0]
        return h, [h]


@pytest.fixture
def taken(monkeypatch):
    """The list of paths actually taken by RNN.call, in order."""
    calls = []
    real_fused, real_hoisted, real_generic = rnn_module.fused_rnn, rnn_module.RNN.hoisted_step, \
        rnn_module.RNN.step_function
    monkeypatch.setattr(rnn_module, "fused_rnn", lambda *a, **k: (calls.append("fused"), real_fused(*a, **k))[1])
    monkeypatch.setattr(rnn_module.RNN, "hoisted_step",
                        lambda self, *a, **k: (calls.append("hoisted"), real_hoisted(self, *a, **k))[1])
    monkeypatch.setattr(rnn_module.RNN, "step_function",
                        lambda self, *a, **k: (calls.append("generic"), real_generic(self, *a, **k))[1])
    return calls


CASES = {
    "lstm": (lambda: rnnkit.LSTM(U), {}, "fused"),
    "gru_right_padded": (lambda: rnnkit.GRU(U), {"mask": RIGHT}, "fused"),
    "simple_relu_backwards": (lambda: rnnkit.SimpleRNN(U, activation="relu", go_backwards=True), {"mask": RIGHT},
                              "fused"),
    "lstm_dropout_training": (lambda: rnnkit.LSTM(U, dropout=0.5), {"training": True}, "fused"),
    "holes": (lambda: rnnkit.LSTM(U), {"mask": HOLES}, "fused"),  # mask values never decide the path
    "hard_sigmoid": (lambda: rnnkit.GRU(U, recurrent_activation="hard_sigmoid"), {}, "hoisted"),
    "reset_before": (lambda: rnnkit.GRU(U, reset_after=False), {}, "hoisted"),
    "recurrent_dropout_training": (lambda: rnnkit.LSTM(U, recurrent_dropout=0.5), {"training": True}, "hoisted"),
    "recurrent_dropout_inference": (lambda: rnnkit.LSTM(U, recurrent_dropout=0.5), {"training": False}, "fused"),
    "unroll": (lambda: rnnkit.SimpleRNN(U, unroll=True), {}, "hoisted"),
    "use_fused_false": (lambda: rnnkit.LSTM(U, use_fused=False), {}, "generic"),
    "stacked": (lambda: rnnkit.RNN([rnnkit.LSTMCell(U), rnnkit.GRUCell(U)]), {}, "generic"),
    "custom": (lambda: rnnkit.RNN(ConstCell(U)), {}, "generic"),
    "custom_constants": (lambda: rnnkit.RNN(ConstCell(U)), {"constants": np.ones((B, U), "float32")}, "generic"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_explain_predicts_the_path_taken(name, taken):
    make, kwargs, expected = CASES[name]
    layer = make()
    plan = rnnkit.explain(layer, X, **kwargs)
    assert isinstance(plan, Plan)
    assert plan.path == expected
    assert taken == []  # explain computes nothing
    layer(X, **kwargs)
    # eagerly, the fused path runs a mask with holes on the native kernel, or on the layer's hoisted loop
    holes_loop = name == "holes" and native.unavailable() is not None
    assert taken == ([expected, "hoisted"] if holes_loop else [expected])
    # and the str names the path and, off the fused path, the reason
    prefix = {"fused": "fused kernel", "hoisted": "hoisted loop: ", "generic": "generic loop: "}[expected]
    assert str(plan).startswith(prefix)
    assert ("mask" in plan.detail) == (expected == "fused" and "mask" in kwargs)
    assert (plan.reasons == []) == (expected == "fused")


def test_explain_builds_an_unbuilt_layer_without_calling_it(taken):
    layer = rnnkit.LSTM(U)
    assert not layer.built
    rnnkit.explain(layer, X)
    assert layer.built
    assert [w.shape for w in layer.get_weights()] == [(F, 4 * U), (U, 4 * U), (4 * U,)]
    assert taken == []


def test_explain_reads_keras_mask_attribute():
    layer = rnnkit.LSTM(U)
    x = torch.tensor(X)
    x._keras_mask = torch.tensor(HOLES)
    plan = rnnkit.explain(layer, x)
    assert plan.path == "fused" and "mask" in plan.detail  # the attribute's mask was seen
    assert rnnkit.explain(layer, torch.tensor(X)).detail in ("torch.lstm", "native kernel")
    # an explicit mask wins over the attribute
    assert "mask" in rnnkit.explain(layer, torch.tensor(X), mask=HOLES).detail


def test_explain_training_defaults_to_module_mode():
    layer = rnnkit.GRU(U, recurrent_dropout=0.5)
    layer.train()
    assert rnnkit.explain(layer, X).path == "hoisted"
    layer.eval()
    assert rnnkit.explain(layer, X).path == "fused"
    assert rnnkit.explain(layer, X, training=True).path == "hoisted"


def test_explain_time_major():
    layer = rnnkit.LSTM(U, time_major=True)
    xt = X.transpose(1, 0, 2)  # (T, B, F); the mask stays (batch, timesteps)
    assert rnnkit.explain(layer, xt, mask=RIGHT).path == "fused"
    assert rnnkit.explain(layer, xt, mask=HOLES).path == "fused"


def test_explain_validates_like_a_call():
    layer = rnnkit.LSTM(U)
    with pytest.raises(ValueError, match="mask"):
        rnnkit.explain(layer, X, mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="rank"):
        rnnkit.explain(layer, X[0])


def test_explain_bidirectional_gives_forward_plan(monkeypatch):
    monkeypatch.setattr(native, "preferred", lambda *a: False)  # torch's kernels for the pairs below
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U))
    assert rnnkit.explain(bi, X).path == "fused"
    plan = rnnkit.explain(bi, X, mask=HOLES)  # LSTM with a mask: two unpacked calls
    assert plan.path == "fused" and plan.detail == "two kernel calls" and "two unpacked kernel calls" in str(plan)
    gru = rnnkit.Bidirectional(rnnkit.GRU(U))
    gru.eval()
    with torch.no_grad():
        plan = rnnkit.explain(gru, X, mask=HOLES)  # GRU inference: one call when right-padded
    assert plan.path == "fused" and "one masked call per half" in plan.detail
    assert rnnkit.explain(gru, X, mask=HOLES, training=True).detail == "two kernel calls"
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U, use_fused=False))
    assert rnnkit.explain(bi, X).path == "generic"


def test_explain_stateful_layer():
    layer = rnnkit.LSTM(U, stateful=True)
    assert rnnkit.explain(layer, X).path == "fused"
    layer(X)
    assert rnnkit.explain(layer, X, mask=HOLES).path == "fused"


def test_explain_cudnn_layers():
    assert rnnkit.explain(rnnkit.CuDNNLSTM(U), X, mask=RIGHT).path == "fused"
    assert rnnkit.explain(rnnkit.CuDNNGRU(U), X).path == "fused"
    assert rnnkit.explain(rnnkit.CuDNNGRU(U), X, mask=HOLES).path == "fused"  # exact for any mask


def test_plan_str_joins_reasons():
    assert str(Plan("hoisted", ["a", "b"])) == "hoisted loop: a; b"
    assert str(Plan("generic", ["x"])) == "generic loop: x"
    assert str(Plan("fused")) == "fused kernel: the configuration allows it"
