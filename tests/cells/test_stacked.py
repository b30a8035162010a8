"""``StackedRNNCells``: several cells run as one, directly and through ``RNN([cells])``."""

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED

import rnnkit

B, T, F = 3, 6, 5

MIXES = {
    "lstm_gru_simple": [("LSTMCell", 4, {}), ("GRUCell", 3, {}), ("SimpleRNNCell", 2, {})],
    "simple_lstm": [("SimpleRNNCell", 4, {}), ("LSTMCell", 3, {})],
    "gru_gru_v1": [("GRUCell", 4, {}), ("GRUCell", 3, {"reset_after": False})],
    "lstm_lstm": [("LSTMCell", 3, {}), ("LSTMCell", 3, {})],
}
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}


def _cells(mod, mix):
    ns = mod if mod is rnnkit else mod.layers
    return [getattr(ns, name)(units, **kw) for name, units, kw in MIXES[mix]]


def _x(seed=0, shape=(B, T, F)):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def _random_weights(layer, seed=1):
    rng = np.random.RandomState(seed)
    return [(0.5 * rng.randn(*w.shape)).astype(w.dtype) for w in layer.get_weights()]


def _flat(o):
    if isinstance(o, (list, tuple)):
        return [leaf for i in o for leaf in _flat(i)]
    return [o]


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _outputs_and_grad(layer, x, **call_kwargs):
    """Flat list of a layer's outputs (nested states included) and d(sum of output)/dx.

    Works for Keras (KerasVariable-free torch tensors) and rnnkit layers alike;
    conftest's helpers do not flatten nested per-cell states.
    """
    xt = torch.tensor(x, requires_grad=True)
    outs = _flat(layer(xt, **call_kwargs))
    first = outs[0].value if hasattr(outs[0], "value") else outs[0]
    (grad,) = torch.autograd.grad(first.sum(), xt)
    return [_np(o) for o in outs], grad.numpy()


# ---------------------------------------------------------------- structure
def test_state_size_and_initial_state_structure():
    stacked = rnnkit.StackedRNNCells(_cells(rnnkit, "lstm_gru_simple"))
    assert stacked.state_size == [[4, 4], 3, 2]
    assert stacked.output_size == 2
    states = stacked.get_initial_state(batch_size=B)
    assert isinstance(states, list) and len(states) == 3
    assert isinstance(states[0], list) and len(states[0]) == 2
    assert all(isinstance(s, list) and len(s) == 1 for s in states[1:])  # Keras 3: built-in cells give lists
    assert [tuple(s.shape) for s in _flat(states)] == [(B, 4), (B, 4), (B, 3), (B, 2)]
    assert all(torch.equal(s, torch.zeros_like(s)) for s in _flat(states))
    assert all(s.dtype == torch.float32 for s in _flat(states))


def test_get_initial_state_of_cells_without_one():
    class Plain(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = [2, 3]

        def call(self, inputs, states):
            return inputs[:, :2] + states[0], [states[0] + 1, states[1] + 1]

    stacked = rnnkit.StackedRNNCells([Plain(dtype="float64"), rnnkit.SimpleRNNCell(4, dtype="float64")])
    states = stacked.get_initial_state(batch_size=B)
    assert isinstance(states[0], list)
    assert [tuple(s.shape) for s in _flat(states)] == [(B, 2), (B, 3), (B, 4)]
    assert states[0][0].dtype == torch.float64
    # RNN uses it
    layer = rnnkit.RNN(stacked, return_state=True)
    assert [tuple(s.shape) for s in _flat(layer.get_initial_state(B))] == [(B, 2), (B, 3), (B, 4)]


def test_get_weights_cell_by_cell():
    cells = _cells(rnnkit, "lstm_gru_simple")
    stacked = rnnkit.StackedRNNCells(cells)
    stacked.build((None, F))
    shapes = [tuple(w.shape) for w in stacked.get_weights()]
    assert shapes == [
        (5, 16), (4, 16), (16,),  # LSTMCell(4)
        (4, 9), (3, 9), (2, 9),  # GRUCell(3), reset_after=True
        (3, 2), (2, 2), (2,),  # SimpleRNNCell(2)
    ]
    # and the arrays really are the cells' own weights, in that order
    expected = [w for c in cells for w in c.get_weights()]
    for got, want in zip(stacked.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    layer = rnnkit.RNN(stacked)
    assert [tuple(w.shape) for w in layer.get_weights()] == shapes
    # set_weights goes back cell by cell
    new = _random_weights(layer)
    layer.set_weights(new)
    np.testing.assert_array_equal(cells[1].recurrent_kernel.detach().numpy(), new[4])


def test_get_weights_order_matches_keras(keras):
    k = keras.layers.RNN(_cells(keras, "lstm_gru_simple"))
    k.build((None, T, F))
    r = rnnkit.RNN(_cells(rnnkit, "lstm_gru_simple"))
    r.build((None, T, F))
    assert [tuple(w.shape) for w in r.get_weights()] == [tuple(w.shape) for w in k.get_weights()]


def test_errors():
    with pytest.raises(ValueError):
        rnnkit.StackedRNNCells([])
    stacked = rnnkit.StackedRNNCells([rnnkit.SimpleRNNCell(2), rnnkit.SimpleRNNCell(3)])
    stacked.build((None, F))
    with pytest.raises(ValueError, match="one state entry per cell"):
        stacked(torch.zeros(B, F), [torch.zeros(B, 2)])


# ------------------------------------------------------- equals cells by hand
@pytest.mark.parametrize("mix", sorted(MIXES))
def test_one_step_equals_cells_by_hand(mix):
    cells = _cells(rnnkit, mix)
    stacked = rnnkit.StackedRNNCells(cells)
    stacked.build((None, F))
    stacked.set_weights(_random_weights(stacked))
    x = torch.tensor(_x()[:, 0])
    rng = np.random.RandomState(7)
    states = [
        [torch.tensor(rng.randn(B, s).astype("float32")) for s in c.state_size]
        if isinstance(c.state_size, list)
        else torch.tensor(rng.randn(B, c.state_size).astype("float32"))
        for c in cells
    ]
    out, new_states = stacked(x, states)

    y = x
    expected_states = []
    for cell, s in zip(cells, states):
        y, s_new = cell(y, s if isinstance(s, list) else [s])
        expected_states.append(list(s_new) if isinstance(s, list) else s_new[0])
    torch.testing.assert_close(out, y, atol=0, rtol=0)
    assert len(new_states) == len(cells)
    for got, want in zip(new_states, expected_states):
        assert isinstance(got, list) == isinstance(want, list)
        for a, b in zip(_flat(got), _flat(want)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_of_stack_equals_layer_by_layer(mix, mask_name, go_backwards):
    """A stack of cells over time = the cells' RNNs applied one after another."""
    cells = _cells(rnnkit, mix)
    stacked_layer = rnnkit.RNN(cells, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = torch.tensor(_x())
    stacked_layer(x)
    stacked_layer.set_weights(_random_weights(stacked_layer))
    mask = MASKS[mask_name]
    kw = {} if mask is None else {"mask": mask}
    seq, *states = stacked_layer(x, **kw)

    y = x
    for i, cell in enumerate(cells):
        # only the first layer reverses; the following ones see its (reversed) sequence
        backwards = go_backwards and i == 0
        layer_mask = None if mask is None else (np.flip(mask, 1).copy() if go_backwards and i > 0 else mask)
        single = rnnkit.RNN(cell, return_sequences=True, return_state=True, go_backwards=backwards)
        y, *s = single(y, **({} if layer_mask is None else {"mask": layer_mask}))
        want = s if isinstance(cell.state_size, list) else s[0]
        got = states[i]
        for a, b in zip(_flat(got), _flat(want)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(seq, y, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------- against Keras
@pytest.mark.parametrize("mix", sorted(MIXES))
def test_cell_call_matches_keras(keras, mix):
    kstack = keras.layers.StackedRNNCells(_cells(keras, mix))
    kstack.build((None, F))
    rstack = rnnkit.StackedRNNCells(_cells(rnnkit, mix))
    rstack.build((None, F))
    w = [(0.5 * np.random.RandomState(i).randn(*a.shape)).astype("float32") for i, a in enumerate(kstack.get_weights())]
    kstack.set_weights(w)
    rstack.set_weights(w)
    x = _x()[:, 0]
    rs = rstack.get_initial_state(batch_size=B)
    rng = np.random.RandomState(3)
    rs = [[torch.tensor(rng.randn(*t.shape).astype("float32")) for t in s] if isinstance(s, list)
          else torch.tensor(rng.randn(*s.shape).astype("float32")) for s in rs]
    ks = [[t.clone() for t in s] if isinstance(s, list) else s.clone() for s in rs]
    k_out, k_states = kstack(torch.tensor(x), ks)
    r_out, r_states = rstack(torch.tensor(x), rs)
    np.testing.assert_allclose(_np(r_out), _np(k_out), atol=1e-5, rtol=1e-5)
    assert len(_flat(r_states)) == len(_flat(k_states))
    for a, b in zip(_flat(r_states), _flat(k_states)):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5, rtol=1e-5)


GRID = [
    g
    for g in itertools.product(
        sorted(MIXES),
        [False, True],  # return_sequences
        [False, True],  # return_state
        [False, True],  # go_backwards
        ["none", "holes"],
    )
]


@pytest.mark.parametrize("mix,return_sequences,return_state,go_backwards,mask_name", GRID)
def test_rnn_of_cells_matches_keras(keras, mix, return_sequences, return_state, go_backwards, mask_name):
    flags = dict(return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards)
    klayer = keras.layers.RNN(_cells(keras, mix), **flags)
    klayer.build((None, T, F))
    rlayer = rnnkit.RNN(_cells(rnnkit, mix), **flags)
    rlayer.build((None, T, F))
    w = _random_weights(rlayer)
    klayer.set_weights(w)
    rlayer.set_weights(w)
    x = _x()
    mask = MASKS[mask_name]
    k_flat, k_grad = _outputs_and_grad(klayer, x, **({} if mask is None else {"mask": torch.tensor(mask)}))
    r_flat, r_grad = _outputs_and_grad(rlayer, x, **({} if mask is None else {"mask": mask}))
    # (output, *states) with nested per-cell states, compared leaf by leaf
    assert len(r_flat) == len(k_flat)
    for a, b in zip(r_flat, k_flat):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r_grad, k_grad, atol=1e-4, rtol=1e-4)


def _structure(s):
    if isinstance(s, (list, tuple)):
        return [_structure(i) for i in s]
    return tuple(s.shape)


@pytest.mark.parametrize("mix", ["lstm_gru_simple", "simple_lstm"])
@pytest.mark.parametrize("mask_name", ["none", "holes"])
def test_return_state_structure(mix, mask_name):
    """``[output, *states]``: one entry per cell, each a list as the built-in cells' initial states (Keras 3)."""
    rlayer = rnnkit.RNN(_cells(rnnkit, mix), return_state=True)
    x = _x()
    r = rlayer(x, **({} if MASKS[mask_name] is None else {"mask": MASKS[mask_name]}))
    assert isinstance(r, list)
    # the same structure as the initial state and as a user-given initial state
    assert _structure(r[1:]) == _structure(rlayer.get_initial_state(B))
    r2 = rlayer(x, initial_state=r[1:])
    assert _structure(r2) == _structure(r)
    n_cells = len(MIXES[mix])
    assert len(r) == 1 + n_cells
    for entry, (name, _units, _) in zip(r[1:], MIXES[mix]):
        assert isinstance(entry, list) and len(entry) == (2 if name == "LSTMCell" else 1)


@pytest.mark.parametrize("mix", ["lstm_gru_simple"])
def test_state_structure_identical_to_keras(keras, mix):
    k = keras.layers.StackedRNNCells(_cells(keras, mix)).get_initial_state(batch_size=B)
    r = rnnkit.StackedRNNCells(_cells(rnnkit, mix)).get_initial_state(batch_size=B)
    assert _structure(r) == _structure(k)
    k = keras.layers.RNN(_cells(keras, mix), return_state=True)(torch.tensor(_x()))
    r = rnnkit.RNN(_cells(rnnkit, mix), return_state=True)(_x())
    assert _structure(r) == _structure(list(k))


def test_initial_state_for_stack_matches_keras(keras):
    mix = "lstm_gru_simple"
    klayer = keras.layers.RNN(_cells(keras, mix), return_sequences=True, return_state=True)
    klayer.build((None, T, F))
    rlayer = rnnkit.RNN(_cells(rnnkit, mix), return_sequences=True, return_state=True)
    rlayer.build((None, T, F))
    w = _random_weights(rlayer)
    klayer.set_weights(w)
    rlayer.set_weights(w)
    rng = np.random.RandomState(9)
    h, c, g, s = (rng.randn(B, n).astype("float32") for n in (4, 4, 3, 2))
    k = klayer(torch.tensor(_x()), initial_state=[[torch.tensor(h), torch.tensor(c)], torch.tensor(g),
                                                   torch.tensor(s)])
    r = rlayer(_x(), initial_state=[[h, c], g, s])
    for a, b in zip(_flat(r), _flat(list(k))):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5, rtol=1e-5)
    # a flat list (one array per leaf state) is accepted too
    r_flat = rlayer(_x(), initial_state=[h, c, g, s])
    for a, b in zip(_flat(r_flat), _flat(r)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


# ------------------------------------------------------------------- misc
def test_training_flag_reaches_cells_that_take_it():
    class Recorder(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = 1
            self.seen = []

        def call(self, inputs, states, training=None):
            self.seen.append(training)
            return inputs, [states[0]]

    class NoTraining(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = 1

        def call(self, inputs, states):
            return inputs, [states[0]]

    rec = Recorder()
    layer = rnnkit.RNN([NoTraining(), rec])
    layer(torch.zeros(2, 3, 1), training=True)
    assert rec.seen == [True] * 3


def test_stacked_config_roundtrip():
    stacked = rnnkit.StackedRNNCells(_cells(rnnkit, "lstm_gru_simple"))
    config = stacked.get_config()
    json.dumps(config)
    assert [c["class_name"] for c in config["cells"]] == ["LSTMCell", "GRUCell", "SimpleRNNCell"]
    clone = rnnkit.StackedRNNCells.from_config(config)
    assert [type(c).__name__ for c in clone.cells] == ["LSTMCell", "GRUCell", "SimpleRNNCell"]
    assert clone.state_size == stacked.state_size
    assert clone.get_config() == config


def test_stacked_float64_and_gradients():
    cells = [rnnkit.LSTMCell(2, dtype="float64"), rnnkit.SimpleRNNCell(2, dtype="float64")]
    layer = rnnkit.RNN(cells, return_sequences=True)
    x = torch.tensor(_x(shape=(2, 3, 2)), dtype=torch.float64, requires_grad=True)
    layer(x)
    assert layer.dtype == torch.float64
    mask = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda inp: layer(inp, mask=mask), (x,))


def test_stateful_stack():
    mix = "lstm_gru_simple"
    stateful = rnnkit.RNN(_cells(rnnkit, mix), stateful=True, return_sequences=True)
    plain = rnnkit.RNN(_cells(rnnkit, mix), return_sequences=True)
    x = torch.tensor(_x())
    plain(x)
    stateful(x[:, :1])
    w = _random_weights(plain)
    plain.set_weights(w)
    stateful.set_weights(w)
    stateful.reset_states()
    assert _structure(stateful.states) == [[(B, 4), (B, 4)], [(B, 3)], [(B, 2)]]
    assert all(float(s.abs().sum()) == 0 for s in _flat(stateful.states))
    y = torch.cat([stateful(x[:, :2]), stateful(x[:, 2:])], 1)
    torch.testing.assert_close(y, plain(x), atol=1e-6, rtol=1e-6)
    assert all(not s.requires_grad for s in _flat(stateful.states))

    rng = np.random.RandomState(4)
    h, c, g, s = (rng.randn(B, n).astype("float32") for n in (4, 4, 3, 2))
    stateful.reset_states(states=[[h, c], g, s])
    assert _structure(stateful.states) == [[(B, 4), (B, 4)], [(B, 3)], [(B, 2)]]
    np.testing.assert_array_equal(stateful.states[0][1].numpy(), c)
    y = stateful(x)
    torch.testing.assert_close(y, plain(x, initial_state=[[h, c], g, s]), atol=0, rtol=0)
    stateful.reset_states(states=[h, c, g, s])  # flat, one array per leaf
    np.testing.assert_array_equal(stateful.states[1][0].numpy(), g)
    with pytest.raises(ValueError, match=stateful.name):
        stateful.reset_states(states=[h, c, g])
