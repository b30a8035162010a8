"""The generic ``RNN`` layer, with Keras 3's ``keras.layers.RNN`` as the oracle.

The custom cell is the ``MinimalRNNCell`` of the TF 2.0 / Keras 3 ``RNN``
reference, ported to rnnkit in both the Keras 3 style (``super().__init__``
first) and the TF 2.0 style (attributes first, ``self.built = True``).
"""

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, keras_output_and_grad, rnnkit_output_and_grad

import rnnkit

B, T, F = 3, 6, 5


# ---------------------------------------------------------------- rnnkit cells
class MinimalRNNCell(rnnkit.Layer):
    """Keras 3 style (seed 004), ops.matmul -> @."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )

    def call(self, inputs, states):
        prev_output = states[0]
        h = inputs @ self.kernel
        output = h + prev_output @ self.recurrent_kernel
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class MinimalRNNCellTF2(rnnkit.Layer):
    """TF 2.0 style (seed 002), K.dot -> torch.matmul, keras.layers.Layer -> rnnkit.Layer."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = torch.matmul(inputs, self.kernel)
        output = h + torch.matmul(prev_output, self.recurrent_kernel)
        return output, [output]


STYLES = {"keras3": MinimalRNNCell, "tf2": MinimalRNNCellTF2}
TOPOLOGIES = {"single": [32], "stacked": [32, 64]}
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}


def _x(seed=0, shape=(B, T, F)):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def _weights(units, seed=1):
    """Kernel / recurrent kernel per cell, scaled so that outputs are O(1)."""
    rng = np.random.RandomState(seed)
    out, fan_in = [], F
    for u in units:
        out.append((rng.randn(fan_in, u) / np.sqrt(fan_in)).astype("float32"))
        out.append((0.9 * rng.randn(u, u) / np.sqrt(u) / 2).astype("float32"))
        fan_in = u
    return out


# ----------------------------------------------------------------- Keras oracle
@pytest.fixture(scope="module")
def keras_minimal_cell(keras):
    class KerasMinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
            )

        def call(self, inputs, states):
            prev_output = states[0]
            h = keras.ops.matmul(inputs, self.kernel)
            output = h + keras.ops.matmul(prev_output, self.recurrent_kernel)
            return output, [output]

    return KerasMinimalRNNCell


def _make_pair(keras, kcell_cls, rcell_cls, units, **flags):
    kcells = [kcell_cls(u) for u in units]
    rcells = [rcell_cls(u) for u in units]
    klayer = keras.layers.RNN(kcells if len(units) > 1 else kcells[0], **flags)
    rlayer = rnnkit.RNN(rcells if len(units) > 1 else rcells[0], **flags)
    klayer.build((None, T, F))
    rlayer.build((None, T, F))
    w = _weights(units)
    klayer.set_weights(w)
    rlayer.set_weights(w)
    return klayer, rlayer


GRID = list(
    itertools.product(
        sorted(STYLES),
        sorted(TOPOLOGIES),
        [False, True],  # return_sequences
        [False, True],  # return_state
        [False, True],  # go_backwards
        sorted(MASKS),
        [False, True],  # zero_output_for_mask
    )
)
# zero_output_for_mask only matters with a mask: drop the duplicate runs.
GRID = [g for g in GRID if not (g[5] == "none" and g[6])]


@pytest.mark.parametrize("style,topology,return_sequences,return_state,go_backwards,mask_name,zero_output", GRID)
def test_minimal_rnn_cell_matches_keras(
    keras, keras_minimal_cell, style, topology, return_sequences, return_state, go_backwards, mask_name, zero_output
):
    units = TOPOLOGIES[topology]
    klayer, rlayer = _make_pair(
        keras,
        keras_minimal_cell,
        STYLES[style],
        units,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
    )
    x = _x()
    mask = MASKS[mask_name]
    kkw = {} if mask is None else {"mask": torch.tensor(mask)}
    rkw = {} if mask is None else {"mask": mask}
    k_outs, k_grad = keras_output_and_grad(klayer, x, **kkw)
    r_outs, r_grad = rnnkit_output_and_grad(rlayer, x, **rkw)

    assert len(r_outs) == len(k_outs) == (1 + len(units) if return_state else 1)
    for r, k in zip(r_outs, k_outs):
        assert r.shape == k.shape
        np.testing.assert_allclose(r, k, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r_grad, k_grad, atol=1e-4, rtol=1e-4)
    expected_first = (B, T, units[-1]) if return_sequences else (B, units[-1])
    assert r_outs[0].shape == expected_first
    assert np.abs(r_outs[0]).max() > 0.1  # real numbers, not a vanishing signal


def test_seed_example_shapes():
    """The seed's usage: RNN(cell) and RNN([cells]) on inputs (batch, time, 5)."""
    x = torch.tensor(_x())
    for cls in STYLES.values():
        y = rnnkit.RNN(cls(32))(x)
        assert tuple(y.shape) == (B, 32)
        layer = rnnkit.RNN([cls(32), cls(64)])
        y = layer(x)
        assert tuple(y.shape) == (B, 64)
        assert isinstance(layer.cell, rnnkit.StackedRNNCells)
        assert [tuple(w.shape) for w in layer.get_weights()] == [(5, 32), (32, 32), (32, 64), (64, 64)]
        # 'uniform' initializer: U(-0.05, 0.05)
        w = np.concatenate([a.ravel() for a in layer.get_weights()])
        assert np.abs(w).max() <= 0.05 and w.std() > 0.01


def test_initial_state_matches_keras(keras, keras_minimal_cell):
    klayer, rlayer = _make_pair(keras, keras_minimal_cell, MinimalRNNCell, [32], return_sequences=True,
                                return_state=True)
    x = _x()
    h0 = np.random.RandomState(5).randn(B, 32).astype("float32")
    k = klayer(torch.tensor(x), initial_state=[torch.tensor(h0)])
    r = rlayer(x, initial_state=[h0])  # numpy in, torch out
    assert all(isinstance(o, torch.Tensor) for o in r)
    for a, b in zip(r, k):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5, rtol=1e-5)
    # A single tensor is accepted for a single state
    r2 = rlayer(x, initial_state=torch.tensor(h0))
    np.testing.assert_allclose(r2[0].detach().numpy(), r[0].detach().numpy(), atol=0)
    with pytest.raises(ValueError, match=rlayer.name):
        rlayer(x, initial_state=[np.zeros((B, 31), "float32")])


# ----------------------------------------------------------- training, constants
class TrainingCell(rnnkit.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state_size = 1
        self.seen = []

    def call(self, inputs, states, training=None):
        self.seen.append(training)
        scale = 2.0 if training else 1.0
        h = states[0] + scale * inputs
        return h, [h]


def test_training_reaches_the_cell():
    cell = TrainingCell()
    layer = rnnkit.RNN(cell)
    x = torch.ones(2, 4, 1)
    assert torch.equal(layer(x, training=True), torch.full((2, 1), 8.0))
    assert cell.seen == [True] * 4
    cell.seen.clear()
    assert torch.equal(layer(x, training=False), torch.full((2, 1), 4.0))
    assert cell.seen == [False] * 4
    # None follows torch's train()/eval()
    cell.seen.clear()
    layer.train()
    assert torch.equal(layer(x), torch.full((2, 1), 8.0))
    layer.eval()
    assert torch.equal(layer(x), torch.full((2, 1), 4.0))
    assert cell.seen == [True] * 4 + [False] * 4


def test_cell_without_training_arg_is_called_without_it():
    class NoTraining(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = 1

        def call(self, inputs, states):
            return states[0] + inputs, [states[0] + inputs]

    out = rnnkit.RNN(NoTraining())(torch.ones(2, 3, 1), training=True)
    assert torch.equal(out, torch.full((2, 1), 3.0))


class ConstantsCell(rnnkit.Layer):
    """h_t = h_{t-1} @ A + x_t + c @ V: a constant (batch, 2) enters every step."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.seen = []

    def build(self, input_shape):
        self.v = self.add_weight(shape=(2, self.units), initializer="ones", name="v")

    def call(self, inputs, states, constants=None):
        self.seen.append(constants)
        (c,) = constants
        h = 0.5 * states[0] + inputs.sum(-1, keepdim=True) + c @ self.v
        return h, [h]


def test_constants_reach_the_cell_every_step():
    cell = ConstantsCell(3)
    layer = rnnkit.RNN(cell, return_sequences=True)
    x = torch.ones(2, 4, 1)
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    out = layer(x, constants=[c])
    assert len(cell.seen) == 4
    assert all(len(s) == 1 and torch.equal(s[0], c) for s in cell.seen)
    # by hand: h_t = 0.5 h_{t-1} + 1 + sum(c)
    for b, k in enumerate([2.0, 3.0]):
        h, expected = 0.0, []
        for _ in range(4):
            h = 0.5 * h + k
            expected.append(h)
        np.testing.assert_allclose(out[b, :, 0].detach().numpy(), expected, rtol=1e-6)
    # numpy constants, and gradients reach them
    ct = c.clone().requires_grad_(True)
    layer(x, constants=[ct]).sum().backward()
    assert ct.grad is not None and ct.grad.abs().sum() > 0


def test_constants_with_a_cell_that_does_not_take_them():
    layer = rnnkit.RNN(MinimalRNNCell(3))
    with pytest.raises(ValueError, match="constants"):
        layer(torch.ones(2, 4, 5), constants=[torch.ones(2, 2)])


# -------------------------------------------------------------------- time_major
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_time_major(mask_name, go_backwards):
    cell_bm, cell_tm = MinimalRNNCell(4), MinimalRNNCell(4)
    bm = rnnkit.RNN(cell_bm, return_sequences=True, return_state=True, go_backwards=go_backwards)
    tm = rnnkit.RNN(cell_tm, return_sequences=True, return_state=True, go_backwards=go_backwards, time_major=True)
    x = torch.tensor(_x())
    bm(x)
    tm(x.transpose(0, 1))
    tm.set_weights(_weights([4]))
    bm.set_weights(_weights([4]))
    mask = MASKS[mask_name]
    kw = {} if mask is None else {"mask": mask}  # the mask stays (batch, timesteps)
    seq_bm, h_bm = bm(x, **kw)
    seq_tm, h_tm = tm(x.transpose(0, 1), **kw)
    assert tuple(seq_tm.shape) == (T, B, 4)
    torch.testing.assert_close(seq_tm, seq_bm.transpose(0, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(h_tm, h_bm, atol=1e-6, rtol=0)
    last_tm = rnnkit.RNN(cell_tm, time_major=True, go_backwards=go_backwards)(x.transpose(0, 1), **kw)
    last_bm = rnnkit.RNN(cell_tm, go_backwards=go_backwards)(x, **kw)
    assert tuple(last_tm.shape) == (B, 4)
    torch.testing.assert_close(last_tm, last_bm, atol=1e-6, rtol=0)
    torch.testing.assert_close(last_tm, seq_tm[-1], atol=1e-6, rtol=0)


# --------------------------------------------------------------------- stateful
def test_stateful_carries_and_detaches_states():
    x = torch.tensor(_x())
    stateful = rnnkit.RNN(MinimalRNNCell(4), stateful=True, return_sequences=True)
    plain = rnnkit.RNN(MinimalRNNCell(4), return_sequences=True)
    stateful(x[:, :1])
    plain(x[:, :1])
    stateful.reset_states()
    w = _weights([4])
    stateful.set_weights(w)
    plain.set_weights(w)

    x1 = x[:, :3].clone().requires_grad_(True)
    x2 = x[:, 3:].clone().requires_grad_(True)
    y1 = stateful(x1)
    assert not stateful.states[0].requires_grad  # detached
    y2 = stateful(x2)
    full = plain(x)
    torch.testing.assert_close(torch.cat([y1, y2], 1), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(stateful.states[0], full[:, -1], atol=1e-6, rtol=0)
    # the second call's graph stops at the stored states
    g1, g2 = torch.autograd.grad(y2.sum(), [x1, x2], allow_unused=True)
    assert g1 is None and g2 is not None
    # first call's graph is still usable (nothing freed by the second)
    (g,) = torch.autograd.grad(y1.sum(), [x1])
    assert g.abs().sum() > 0


def test_stateful_reset_states():
    layer = rnnkit.RNN(MinimalRNNCell(4), stateful=True, return_state=True)
    x = torch.tensor(_x())
    layer(x)
    assert layer.states[0].abs().sum() > 0
    layer.reset_states()
    assert torch.equal(layer.states[0], torch.zeros(B, 4))
    out_zero, h_zero = layer(x)
    fresh = rnnkit.RNN(layer.cell, return_state=True)
    torch.testing.assert_close(out_zero, fresh(x)[0], atol=0, rtol=0)

    h0 = np.random.RandomState(3).randn(B, 4).astype("float32")
    layer.reset_states(states=[h0])
    np.testing.assert_array_equal(layer.states[0].numpy(), h0)
    out, _ = layer(x)
    torch.testing.assert_close(out, fresh(x, initial_state=[torch.tensor(h0)])[0], atol=0, rtol=0)
    # a single array works too
    layer.reset_states(states=h0)
    np.testing.assert_array_equal(layer.states[0].numpy(), h0)


def test_stateful_wrong_batch_size():
    layer = rnnkit.RNN(MinimalRNNCell(4), stateful=True, name="my_stateful_rnn")
    layer(torch.tensor(_x()))
    with pytest.raises(ValueError, match="my_stateful_rnn") as err:
        layer(torch.tensor(_x(shape=(B + 1, T, F))))
    assert str(B) in str(err.value) and str(B + 1) in str(err.value)
    with pytest.raises(ValueError, match="my_stateful_rnn"):
        layer.reset_states(states=[np.zeros((B + 1, 4), "float32")])
    with pytest.raises(ValueError, match="my_stateful_rnn"):
        layer.reset_states(states=[np.zeros((B, 5), "float32")])


def test_stateful_eager_batch_input_shape():
    layer = rnnkit.RNN(MinimalRNNCell(4), stateful=True, batch_input_shape=(B, T, F))
    assert layer.states is not None and tuple(layer.states[0].shape) == (B, 4)
    assert torch.equal(layer.states[0], torch.zeros(B, 4))
    with pytest.raises(ValueError, match=layer.name):
        layer(torch.zeros(B + 2, T, F))


def test_reset_states_on_non_stateful_layer_raises():
    layer = rnnkit.RNN(MinimalRNNCell(4), name="not_stateful")
    layer(torch.tensor(_x()))
    with pytest.raises((AttributeError, ValueError, RuntimeError), match="not_stateful"):
        layer.reset_states()


# ------------------------------------------------------------------------- masks
@pytest.mark.parametrize("return_state", [False, True])
def test_keras_mask_attribute_is_used_and_propagated(return_state):
    layer = rnnkit.RNN(MinimalRNNCell(4), return_sequences=True, return_state=return_state)
    x = torch.tensor(_x())
    layer(x)
    layer.set_weights(_weights([4]))
    mask = torch.tensor(MASK_HOLES)
    explicit = layer(x, mask=mask)
    explicit_seq = explicit[0] if return_state else explicit
    assert torch.equal(explicit_seq._keras_mask, mask)
    tagged = x.clone()
    tagged._keras_mask = mask
    out = layer(tagged)
    seq = out[0] if return_state else out
    torch.testing.assert_close(seq, explicit_seq, atol=0, rtol=0)
    assert torch.equal(seq._keras_mask, mask)
    unmasked = layer(x)
    unmasked_seq = unmasked[0] if return_state else unmasked
    assert not torch.allclose(unmasked_seq, seq)
    assert getattr(unmasked_seq, "_keras_mask", None) is None


def test_masked_outputs_by_hand():
    """Masked steps repeat the previous output (zeros with zero_output_for_mask)."""
    x = torch.tensor(_x())
    mask = torch.tensor(MASK_HOLES)
    for zero in (False, True):
        layer = rnnkit.RNN(MinimalRNNCell(4), return_sequences=True, zero_output_for_mask=zero)
        out = layer(x, mask=mask)
        for b in range(B):
            prev = torch.zeros(4)
            for t in range(T):
                if not mask[b, t]:
                    assert torch.equal(out[b, t], torch.zeros(4) if zero else prev)
                prev = out[b, t]


def test_mask_errors():
    layer = rnnkit.RNN(MinimalRNNCell(4), name="masked_rnn")
    x = torch.tensor(_x())
    with pytest.raises(ValueError, match="masked_rnn"):
        layer(x, mask=torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="masked_rnn"):
        layer(x, mask=torch.ones(B, T))


# --------------------------------------------------------------- construction
def test_cell_without_state_size():
    class NoStateSize(rnnkit.Layer):
        def call(self, inputs, states):
            return inputs, states

    with pytest.raises(ValueError, match="state_size"):
        rnnkit.RNN(NoStateSize())
    with pytest.raises(ValueError, match="state_size"):
        rnnkit.RNN([MinimalRNNCell(3), NoStateSize()])


def test_rank2_input_rejected():
    layer = rnnkit.RNN(MinimalRNNCell(4), name="rank_rnn")
    with pytest.raises(ValueError, match="rank_rnn"):
        layer(torch.zeros(B, F))


def test_eager_build_via_input_shape():
    layer = rnnkit.RNN([MinimalRNNCell(3), MinimalRNNCellTF2(2)], input_shape=(T, F))
    assert layer.built
    assert [tuple(p.shape) for p in layer.parameters()] == [(5, 3), (3, 3), (3, 2), (2, 2)]
    assert tuple(layer(torch.zeros(B, T, F)).shape) == (B, 2)


# ------------------------------------------------------------------------- config
def test_config_roundtrip_custom_cell():
    layer = rnnkit.RNN(MinimalRNNCell(4), return_sequences=True, go_backwards=True, zero_output_for_mask=True)
    x = torch.tensor(_x())
    y = layer(x, mask=MASK_HOLES)
    config = layer.get_config()
    json.dumps(config)
    assert config["cell"]["class_name"] == "MinimalRNNCell"
    assert config["cell"]["config"]["units"] == 4
    with pytest.raises(ValueError, match="MinimalRNNCell"):
        rnnkit.RNN.from_config(config)
    clone = rnnkit.RNN.from_config(config, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    assert isinstance(clone.cell, MinimalRNNCell) and clone.cell.units == 4
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x, mask=MASK_HOLES), y, atol=0, rtol=0)


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: rnnkit.LSTMCell(3),
        lambda: rnnkit.GRUCell(3, reset_after=False),
        lambda: rnnkit.SimpleRNNCell(3, activation="relu"),
        lambda: [rnnkit.LSTMCell(3), rnnkit.SimpleRNNCell(2)],
    ],
    ids=["lstm", "gru", "simple", "stacked"],
)
def test_config_roundtrip_builtin_cells(make_cell):
    layer = rnnkit.RNN(make_cell(), return_sequences=True, return_state=True, unroll=True)
    x = torch.tensor(_x())
    y = layer(x)
    config = layer.get_config()
    json.dumps(config)
    clone = rnnkit.RNN.from_config(config)
    assert type(clone.cell) is type(layer.cell)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone(x), y):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# ------------------------------------------------------------ output shape, unroll
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("cells", ["minimal", "stacked_lstm"])
def test_compute_output_shape(keras, return_sequences, return_state, cells):
    def make(mod):
        if cells == "minimal":
            return MinimalRNNCell(7) if mod is rnnkit else mod.layers.SimpleRNNCell(7)
        return [mod.LSTMCell(4) if mod is rnnkit else mod.layers.LSTMCell(4),
                mod.SimpleRNNCell(7) if mod is rnnkit else mod.layers.SimpleRNNCell(7)]

    flags = dict(return_sequences=return_sequences, return_state=return_state)
    layer = rnnkit.RNN(make(rnnkit), **flags)
    shape = layer.compute_output_shape((B, T, F))
    out = layer(torch.tensor(_x()))

    def shapes_of(o):
        if isinstance(o, (list, tuple)):
            return [shapes_of(i) for i in o]
        return tuple(o.shape)

    if return_state:
        assert isinstance(shape, list)
        flat = [s for item in shape for s in (item if isinstance(item, list) else [item])]
        assert flat == [tuple(o.shape) for o in _flatten(out)]
    else:
        assert shape == tuple(out.shape)
    kshape = keras.layers.RNN(make(keras), **flags).compute_output_shape((B, T, F))
    assert _as_lists(shape) == _as_lists(kshape)


def _flatten(o):
    if isinstance(o, (list, tuple)):
        return [leaf for i in o for leaf in _flatten(i)]
    return [o]


def _as_lists(s):
    if isinstance(s, (list, tuple)) and s and isinstance(s[0], (list, tuple)):
        return [_as_lists(i) for i in s]
    return tuple(s)


def test_compute_output_shape_time_major():
    layer = rnnkit.RNN(MinimalRNNCell(7), return_sequences=True, time_major=True)
    assert tuple(layer.compute_output_shape((T, B, F))) == (T, B, 7)


@pytest.mark.parametrize("mask_name", sorted(MASKS))
def test_unroll_same_numbers(mask_name):
    x = torch.tensor(_x())
    cells = [MinimalRNNCell(4), MinimalRNNCell(3)]
    loop = rnnkit.RNN(cells, return_sequences=True, return_state=True, go_backwards=True)
    unrolled = rnnkit.RNN(loop.cell, return_sequences=True, return_state=True, go_backwards=True, unroll=True)
    kw = {} if MASKS[mask_name] is None else {"mask": MASKS[mask_name]}
    for a, b in zip(loop(x, **kw), unrolled(x, **kw)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
