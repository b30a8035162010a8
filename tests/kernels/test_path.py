"""Path selection (``rnnkit.kernels.path``): fused kernel, hoisted loop or generic loop.

The predicates are checked one by one, then through the layers: ``use_fused``
(``"auto"``, ``True``, ``False``; alias ``use_cudnn``) and the ``ValueError``
that ``use_fused=True`` raises for a configuration that cannot fuse, naming why.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.core.sequences import right_padded_lengths
from rnnkit.kernels.path import (
    FUSED,
    GENERIC,
    HOISTED,
    Plan,
    config_blockers,
    is_builtin_cell,
    select_path,
)

B, T, F, U = 3, 6, 4, 5
X = np.random.RandomState(0).randn(B, T, F).astype("float32")
RIGHT_PADDED = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=bool)
HOLES = np.array([[1, 1, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
LEADING = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=bool)


class MinimalCell(rnnkit.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")

    def call(self, inputs, states):
        h = inputs @ self.kernel + states[0]
        return h, [h]


class PlainSubclass(rnnkit.LSTMCell):
    """Only a new name: the step math is the built-in one, so it may fuse."""


class OverridesStep(rnnkit.LSTMCell):
    def recurrent_step(self, x_proj, states, training=False):
        h, new = super().recurrent_step(x_proj, states, training)
        return 2 * h, new


class OverridesCall(rnnkit.GRUCell):
    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training)


class OverridesProjection(rnnkit.SimpleRNNCell):
    def project_inputs(self, x, training=False):
        return super().project_inputs(x, training) + 1.0


# ------------------------------------------------------------ right_padded_lengths
@pytest.mark.parametrize("mask, expected", [
    (np.ones((B, T), bool), True),
    (np.zeros((B, T), bool), True),
    (RIGHT_PADDED, True),
    (HOLES, False),
    (LEADING, False),
    (np.array([[1, 0, 1]], bool), False),
    (np.array([[0, 1, 1]], bool), False),
    (np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool), True),
    (np.array([[1]], bool), True),
])
def test_is_right_padded(mask, expected):
    assert right_padded_lengths(torch.tensor(mask))[1] is expected


# ------------------------------------------------------------ is_builtin_cell
def test_is_builtin_cell():
    assert is_builtin_cell(rnnkit.LSTMCell(2))
    assert is_builtin_cell(rnnkit.GRUCell(2))
    assert is_builtin_cell(rnnkit.GRUCell(2, reset_after=False))  # built-in, even if it cannot fuse
    assert is_builtin_cell(rnnkit.SimpleRNNCell(2))
    assert is_builtin_cell(PlainSubclass(2))
    assert not is_builtin_cell(OverridesStep(2))
    assert not is_builtin_cell(OverridesCall(2))
    assert not is_builtin_cell(OverridesProjection(2))
    assert not is_builtin_cell(MinimalCell(2))
    assert not is_builtin_cell(rnnkit.StackedRNNCells([rnnkit.LSTMCell(2)]))
    assert not is_builtin_cell(torch.nn.LSTMCell(2, 2))


# ------------------------------------------------------------ config_blockers
@pytest.mark.parametrize("cell, unroll, training, expected", [
    (rnnkit.LSTMCell(U), False, True, []),
    (rnnkit.GRUCell(U), False, True, []),
    (rnnkit.SimpleRNNCell(U), False, True, []),
    (rnnkit.SimpleRNNCell(U, activation="relu"), False, True, []),
    (rnnkit.LSTMCell(U, dropout=0.5), False, True, []),  # per-sequence input dropout fuses
    (rnnkit.LSTMCell(U, recurrent_dropout=0.5), False, False, []),
    (rnnkit.LSTMCell(U, implementation=1, dropout=0.5), False, False, []),
    (rnnkit.GRUCell(U, reset_after=False), False, False, ["reset_after=False"]),
    (rnnkit.LSTMCell(U, recurrent_activation="hard_sigmoid"), False, False, ["'hard_sigmoid' is not 'sigmoid'"]),
    (rnnkit.GRUCell(U, activation="relu"), False, False, ["activation 'relu' is not 'tanh'"]),
    (rnnkit.SimpleRNNCell(U, activation="sigmoid"), False, False, ["'sigmoid' is neither 'tanh' nor 'relu'"]),
    (rnnkit.SimpleRNNCell(U), True, False, ["unroll=True"]),
    (rnnkit.LSTMCell(U, recurrent_dropout=0.5), False, True, ["recurrent_dropout in training"]),
    (rnnkit.LSTMCell(U, implementation=1, dropout=0.5), False, True, ["implementation=1"]),
    (rnnkit.GRUCell(U, reset_after=False, recurrent_activation="hard_sigmoid", recurrent_dropout=0.2), True, True,
     ["reset_after=False", "hard_sigmoid", "unroll", "recurrent_dropout"]),
])
def test_config_blockers(cell, unroll, training, expected):
    cell.build((B, F))
    reasons = config_blockers(cell, unroll, training)
    assert len(reasons) == len(expected), reasons
    for reason, want in zip(reasons, expected):
        assert want in reason


def test_low_precision_dtype_blocks_on_cpu():
    cell = rnnkit.LSTMCell(U, dtype="float16")
    cell.build((B, F))
    assert any("float16" in r for r in config_blockers(cell, False, False))
    layer = rnnkit.LSTM(U, dtype="bfloat16")
    assert rnnkit.explain(layer, X).path == HOISTED


# ------------------------------------------------------------- select_path
def _layer(cls=rnnkit.LSTM, **kwargs):
    layer = cls(U, **kwargs)
    layer.build((B, T, F))
    return layer


@pytest.mark.parametrize("use_fused", ["auto", True])
@pytest.mark.parametrize("mask", [None, np.ones((B, T), bool), RIGHT_PADDED])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.SimpleRNN])
def test_fusable_configs_fuse(cls, mask, use_fused):
    layer = _layer(cls, use_fused=use_fused)
    plan = select_path(layer, None if mask is None else torch.tensor(mask), training=True)
    assert plan == Plan(FUSED, [])
    assert str(plan) == "fused kernel: the configuration allows it"


def test_use_fused_false_is_generic_whatever_the_config():
    for kwargs in [{}, {"recurrent_activation": "hard_sigmoid"}]:
        plan = select_path(_layer(use_fused=False, **kwargs), torch.tensor(HOLES), training=True)
        assert plan.path == GENERIC
        assert "use_fused=False" in str(plan)


@pytest.mark.parametrize("mask", [HOLES, LEADING])
def test_mask_values_never_decide_the_path(mask):
    """Holes or leading padding: the same fused path (exact for any mask), chosen from static facts."""
    plan = select_path(_layer(), torch.tensor(mask), training=False)
    assert plan == Plan(FUSED, [])


def test_constants_block_fusing():
    plan = select_path(_layer(), None, training=False, has_constants=True)
    assert plan.path == HOISTED and "constants" in str(plan)


def test_custom_and_stacked_cells_are_generic():
    for cell in [MinimalCell(U), [rnnkit.LSTMCell(U), rnnkit.GRUCell(U)], OverridesStep(U)]:
        layer = rnnkit.RNN(cell)
        layer.build((B, T, F))
        plan = select_path(layer, None, training=False)
        assert plan.path == GENERIC
        assert "is not a built-in LSTM/GRU/SimpleRNN cell" in str(plan)
    layer = rnnkit.RNN(PlainSubclass(U))
    layer.build((B, T, F))
    assert select_path(layer, None, training=False).path == FUSED


def test_several_reasons_are_all_listed():
    layer = _layer(rnnkit.GRU, reset_after=False, recurrent_activation="hard_sigmoid", unroll=True)
    plan = select_path(layer, torch.tensor(HOLES), training=False, has_constants=True)
    assert plan.path == HOISTED
    assert len(plan.reasons) == 4
    text = str(plan)
    for word in ("reset_after=False", "hard_sigmoid", "unroll", "constants"):
        assert word in text


# -------------------------------------------------------- use_fused=True errors
@pytest.mark.parametrize("make, call_kwargs, words", [
    (lambda: rnnkit.LSTM(U, recurrent_activation="hard_sigmoid", use_fused=True), {}, ["hard_sigmoid"]),
    (lambda: rnnkit.GRU(U, recurrent_activation="hard_sigmoid", use_fused=True), {}, ["hard_sigmoid"]),
    (lambda: rnnkit.GRU(U, reset_after=False, use_fused=True), {}, ["reset_after=False"]),
    (lambda: rnnkit.RNN(MinimalCell(U), use_fused=True), {}, ["MinimalCell", "not a built-in"]),
    (lambda: rnnkit.RNN([rnnkit.LSTMCell(U)], use_fused=True), {}, ["StackedRNNCells"]),
    (lambda: rnnkit.LSTM(U, recurrent_dropout=0.3, use_fused=True), {"training": True}, ["recurrent_dropout"]),
    (lambda: rnnkit.SimpleRNN(U, activation="elu", use_fused=True), {}, ["'elu'"]),
    (lambda: rnnkit.LSTM(U, unroll=True, use_fused=True), {}, ["unroll=True"]),
    (lambda: rnnkit.LSTM(U, use_cudnn=True, recurrent_activation="hard_sigmoid"), {}, ["hard_sigmoid"]),
])
def test_use_fused_true_raises_naming_the_reason(make, call_kwargs, words):
    layer = make()
    with pytest.raises(ValueError, match="use_fused=True") as info:
        layer(X, **call_kwargs)
    message = str(info.value)
    assert layer.name in message
    for word in words:
        assert word in message
    with pytest.raises(ValueError):
        rnnkit.explain(layer, X, mask=call_kwargs.get("mask"), training=call_kwargs.get("training"))


def test_use_fused_true_runs_when_it_can():
    layer = rnnkit.LSTM(U, use_fused=True, recurrent_dropout=0.3, return_sequences=True)
    out = layer(X, training=False, mask=RIGHT_PADDED)  # no recurrent dropout outside training
    assert out.shape == (B, T, U)
    ref = rnnkit.LSTM(U, use_fused=False, return_sequences=True)
    ref.build((B, T, F))
    ref.set_weights(layer.get_weights())
    np.testing.assert_allclose(out.detach().numpy(), ref(X, mask=RIGHT_PADDED).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.SimpleRNN])
def test_use_cudnn_alias(cls):
    assert cls(U, use_cudnn=False).use_fused is False
    assert cls(U, use_cudnn=True).use_fused is True
    assert cls(U, use_cudnn="auto").use_fused == "auto"
    assert cls(U).use_fused == "auto"
    assert rnnkit.explain(cls(U, use_cudnn=False), X).path == GENERIC
    assert rnnkit.explain(cls(U, use_cudnn=True), X).path == FUSED


@pytest.mark.parametrize("value", ["yes", "cudnn", None, 2, "True"])
def test_invalid_use_fused_raises(value):
    with pytest.raises(ValueError, match="use_fused"):
        rnnkit.RNN(rnnkit.LSTMCell(U), use_fused=value)
    if value is not None:  # None is "not given" for the built-in layers' use_cudnn alias
        with pytest.raises(ValueError, match="use_fused"):
            rnnkit.LSTM(U, use_fused=value)
        with pytest.raises(ValueError, match="use_fused"):
            rnnkit.GRU(U, use_cudnn=value)


@pytest.mark.parametrize("value", [0, 1, np.bool_(False), np.bool_(True)])
def test_bool_like_use_fused_is_rejected_or_honoured(value):
    try:
        layer = rnnkit.LSTM(U, use_fused=value, recurrent_activation="hard_sigmoid")
    except ValueError:
        return
    if bool(value):
        with pytest.raises(ValueError):
            rnnkit.explain(layer, X)
    else:
        assert rnnkit.explain(layer, X).path == GENERIC


def test_use_fused_in_config_round_trip():
    for value in ("auto", True, False):
        layer = rnnkit.GRU(U, use_fused=value)
        config = layer.get_config()
        assert config["use_fused"] == value
        assert rnnkit.GRU.from_config(config).use_fused == value
