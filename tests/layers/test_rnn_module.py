"""RNN layers as first-class torch modules: state buffers, lazy loading, compiled copies,
seeded dropout under checkpointing, the input dtype rule, automatic cell configs."""

import copy
import pickle

import numpy as np
import pytest
import torch
from torch.utils.checkpoint import checkpoint

import rnnkit
from rnnkit.core.sequences import as_tensor

B, T, F, U = 3, 6, 4, 5


def _x(*shape, seed=0, dtype=torch.float64):
    return torch.tensor(np.random.RandomState(seed).randn(*shape), dtype=dtype)


# ------------------------------------------------------------ states as buffers
class Tagger(torch.nn.Module):
    """A stateful LSTM inside a plain torch module."""

    def __init__(self):
        super().__init__()
        self.lstm = rnnkit.LSTM(U, stateful=True, return_sequences=True)
        self.head = torch.nn.Linear(U, 2)

    def forward(self, x):
        return self.head(self.lstm(x))


def test_stateful_stream_resumes_after_a_checkpoint():
    torch.manual_seed(0)
    x = _x(B, 2 * T, F)
    first, second = x[:, :T], x[:, T:]
    model = Tagger().double()
    y1 = model(first)
    assert model.lstm.states[0].dtype == torch.float64
    ckpt = model.state_dict()
    assert {"lstm.state_0", "lstm.state_1", "lstm.states_zeroed"} <= set(ckpt)
    assert torch.equal(ckpt["lstm.state_0"], model.lstm.states[0]) and ckpt["lstm.states_zeroed"].item() is False

    fresh = Tagger().double()  # never called: lazily built from the checkpoint's shapes
    fresh.load_state_dict(ckpt)
    assert fresh.lstm.built and fresh.lstm.cell.kernel.dtype == torch.float64
    y2 = fresh(second)

    whole = Tagger().double()
    whole.load_state_dict({k: v for k, v in ckpt.items() if "state" not in k})
    y = whole(x)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-12, rtol=0)
    # starting chunk 2 from zero states would give other numbers
    restart = Tagger().double()
    restart.load_state_dict(ckpt)
    restart.lstm.reset_states()
    assert (restart(second) - y2).abs().max() > 1e-3


def test_states_follow_dtype_and_device_conversions():
    layer = rnnkit.LSTM(U, stateful=True)
    layer(_x(B, T, F, dtype=torch.float32))
    h = layer.states[0].clone()
    layer.double()
    assert [s.dtype for s in layer.states] == [torch.float64, torch.float64]
    torch.testing.assert_close(layer.states[0], h.double())
    layer.reset_states()
    assert [s.dtype for s in layer.states] == [torch.float64, torch.float64]
    assert all(float(s.abs().sum()) == 0.0 for s in layer.states)
    layer.half()
    assert layer.states[1].dtype == torch.float16
    layer.to("meta")
    assert layer.states[0].device.type == "meta"


def test_zeroed_flag_survives_a_checkpoint():
    layer = rnnkit.GRU(U, stateful=True)
    layer(_x(B, T, F, dtype=torch.float32))
    layer.reset_states()
    fresh = rnnkit.GRU(U, stateful=True)
    fresh.load_state_dict(layer.state_dict())
    fresh(_x(B + 2, T, F, dtype=torch.float32))  # zeroed: any batch size may start over
    assert fresh.states[0].shape == (B + 2, U)
    fresh2 = rnnkit.GRU(U, stateful=True)
    fresh2.load_state_dict(fresh.state_dict())  # holds a stream: its batch size is kept
    with pytest.raises(ValueError, match="batch size 5"):
        fresh2(_x(B, T, F, dtype=torch.float32))


def test_loaded_states_replace_the_layers_own():
    five = rnnkit.SimpleRNN(U, stateful=True)
    five(_x(5, T, F, dtype=torch.float32))
    three = rnnkit.SimpleRNN(U, stateful=True)
    three(_x(B, T, F, dtype=torch.float32))
    three.load_state_dict(five.state_dict())  # another batch size: the checkpoint's states
    torch.testing.assert_close(three.states[0], five.states[0], atol=0, rtol=0)
    never_called = rnnkit.SimpleRNN(U, stateful=True, input_shape=(None, F))
    three.load_state_dict(never_called.state_dict())  # taken before any call: no states
    assert three.states is None and "state_0" not in three.state_dict()
    assert three(_x(B, T, F, dtype=torch.float32)).shape == (B, U)


def test_stacked_states_load_nested():
    layer = rnnkit.RNN([rnnkit.LSTMCell(4), rnnkit.SimpleRNNCell(3)], stateful=True)
    layer(_x(B, T, F, dtype=torch.float32))
    fresh = rnnkit.RNN([rnnkit.LSTMCell(4), rnnkit.SimpleRNNCell(3)], stateful=True)
    fresh.load_state_dict(layer.state_dict())
    shapes = [[tuple(s.shape) for s in entry] for entry in fresh.states]
    assert shapes == [[(B, 4), (B, 4)], [(B, 3)]]
    torch.testing.assert_close(fresh.states[0][1], layer.states[0][1])
    x = _x(B, T, F, seed=1, dtype=torch.float32)
    torch.testing.assert_close(fresh(x), layer(x))


def test_bidirectional_stateful_resumes_after_a_checkpoint():
    x = _x(2, 2 * T, F)
    a = rnnkit.Bidirectional(rnnkit.LSTM(U, stateful=True, return_sequences=True), input_shape=(None, F)).double()
    b = copy.deepcopy(a)
    a(x[:, :T])
    expected = a(x[:, T:])
    b(x[:, :T])
    fresh = rnnkit.Bidirectional(rnnkit.LSTM(U, stateful=True, return_sequences=True)).double()
    fresh.load_state_dict(b.state_dict())
    assert {"forward_layer.state_0", "backward_layer.state_1"} <= set(b.state_dict())
    torch.testing.assert_close(fresh(x[:, T:]), expected, atol=1e-12, rtol=0)


# --------------------------------------------------------------- lazy loading
def test_unbuilt_layer_loads_a_state_dict():
    trained = rnnkit.LSTM(U, return_sequences=True)
    x = _x(B, T, F, dtype=torch.float32)
    y = trained(x)
    lazy = rnnkit.LSTM(U, return_sequences=True)
    lazy.load_state_dict(trained.state_dict())
    assert lazy.built and lazy.cell.input_dim == F
    for w, v in zip(lazy.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(w, v)
    torch.testing.assert_close(lazy(x), y, atol=0, rtol=0)


def test_unbuilt_stacked_and_bidirectional_layers_load_a_state_dict():
    x = _x(B, T, F, dtype=torch.float32)
    stacked = rnnkit.RNN([rnnkit.GRUCell(4), rnnkit.LSTMCell(3)], return_sequences=True)
    bi = rnnkit.Bidirectional(rnnkit.SimpleRNN(U, return_sequences=True), merge_mode="sum")
    for trained, fresh in ((stacked, rnnkit.RNN([rnnkit.GRUCell(4), rnnkit.LSTMCell(3)], return_sequences=True)),
                           (bi, rnnkit.Bidirectional(rnnkit.SimpleRNN(U, return_sequences=True), merge_mode="sum"))):
        y = trained(x)
        fresh.load_state_dict(trained.state_dict())
        torch.testing.assert_close(fresh(x), y, atol=0, rtol=0)


def test_unbuilt_layer_converted_before_loading_builds_in_that_dtype():
    trained = rnnkit.GRU(U)
    x = _x(B, T, F, dtype=torch.float32)
    y = trained(x)
    lazy = rnnkit.GRU(U).double()
    assert lazy.dtype == torch.float64
    lazy.load_state_dict(trained.state_dict())
    assert lazy.cell.kernel.dtype == torch.float64
    torch.testing.assert_close(lazy(x.double()), y.double(), atol=1e-6, rtol=0)


def test_unbuilt_conv_lstm_asks_to_be_built_first():
    trained = rnnkit.ConvLSTM2D(2, 3, padding="same")
    trained(_x(1, 2, 5, 5, 3, dtype=torch.float32))
    with pytest.raises(RuntimeError, match="build it first"):
        rnnkit.ConvLSTM2D(2, 3, padding="same").load_state_dict(trained.state_dict())
    built = rnnkit.ConvLSTM2D(2, 3, padding="same")
    built.build((None, None, 5, 5, 3))
    built.load_state_dict(trained.state_dict())
    for w, v in zip(built.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(w, v)


# ----------------------------------------------------------- compiled copies
class TinyCell(rnnkit.Layer):
    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units), "glorot_uniform", name="kernel")

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0])
        return h, [h]


def test_compiled_layer_copies_and_pickles_without_compiling(monkeypatch):
    compiled = []

    def fake_compile(fn, **kwargs):
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    layer = rnnkit.RNN(TinyCell(2), return_sequences=True, compile=True)
    x = _x(2, 3, 2, dtype=torch.float32)
    y = layer(x)
    assert len(compiled) == 1 and compiled[0].__self__ is layer
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        clone.set_weights([2 * w for w in clone.get_weights()])
        yc = clone(x)
        assert compiled[-1].__self__ is clone  # its own loop, bound to the copy
        ref = rnnkit.RNN(TinyCell(2), return_sequences=True)
        ref.build((2, 3, 2))
        ref.set_weights(clone.get_weights())
        torch.testing.assert_close(yc, ref(x), atol=0, rtol=0)
        assert (yc - y).abs().max() > 1e-3
    torch.testing.assert_close(layer(x), y, atol=0, rtol=0)


def test_compiled_copy_runs_its_own_weights():
    layer = rnnkit.SimpleRNN(3, return_sequences=True, compile=True, use_fused=False)
    x = _x(2, 2, 2, dtype=torch.float32)
    y = layer(x)
    clone = copy.deepcopy(layer)
    clone.set_weights([0.5 * w for w in clone.get_weights()])
    ref = rnnkit.SimpleRNN(3, return_sequences=True, use_fused=False)
    ref.build((2, 2, 2))
    ref.set_weights(clone.get_weights())
    torch.testing.assert_close(clone(x), ref(x), atol=1e-6, rtol=0)
    assert (clone(x) - y).abs().max() > 1e-3
    torch.testing.assert_close(pickle.loads(pickle.dumps(layer))(x), y, atol=1e-6, rtol=0)


# ------------------------------------------------- seeded dropout, checkpointed
def _grads(layer, x, checkpointed, reentrant):
    x = x.clone().requires_grad_(True)
    y = checkpoint(layer, x, use_reentrant=reentrant) if checkpointed else layer(x)
    (y ** 2).sum().backward()
    return [x.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("config", [{}, {"use_fused": False}, {"recurrent_dropout": 0.2}])
def test_seeded_dropout_gives_the_same_gradients_under_checkpoint(config, reentrant):
    def make():
        layer = rnnkit.LSTM(U, return_sequences=True, dropout=0.3, seed=1, **config)
        layer.build((B, T, F))
        return layer

    plain, ckpt = make(), make()
    ckpt.load_state_dict(plain.state_dict())
    x = _x(B, T, F, dtype=torch.float32)
    expected = _grads(plain, x, False, reentrant)
    for g, e in zip(_grads(ckpt, x, True, reentrant), expected):
        torch.testing.assert_close(g, e, atol=0, rtol=0)
    # the masks were in effect: a layer without dropout has other gradients
    undropped = rnnkit.LSTM(U, return_sequences=True, **config)
    undropped.build((B, T, F))
    undropped.load_state_dict(plain.state_dict())
    assert (_grads(undropped, x, False, reentrant)[0] - expected[0]).abs().max() > 1e-3


def test_seeded_dropout_still_draws_new_masks_per_call():
    layer = rnnkit.LSTM(U, return_sequences=True, dropout=0.5, seed=3)
    x = _x(B, T, F, dtype=torch.float32)
    y1, y2 = layer(x), layer(x)
    assert (y1 - y2).abs().max() > 1e-3
    twin = rnnkit.LSTM(U, return_sequences=True, dropout=0.5, seed=3)
    twin.build((B, T, F))
    twin.load_state_dict(layer.state_dict())
    torch.manual_seed(123)  # the global generator does not change a seeded layer's masks
    torch.testing.assert_close(twin(x), y1, atol=0, rtol=0)
    torch.testing.assert_close(twin(x), y2, atol=0, rtol=0)


# ------------------------------------------------------------ input dtypes
def test_floating_and_integer_inputs_are_cast_to_the_layer_dtype():
    layer = rnnkit.LSTM(U, return_sequences=True)
    x = np.arange(B * T * F).reshape(B, T, F) % 5 - 2
    expected = layer(torch.tensor(x, dtype=torch.float32))
    for given in (x.astype("float64"), x.astype("int32"), torch.tensor(x), torch.tensor(x, dtype=torch.float16)):
        out = layer(given)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", ["bool", "complex64"])
def test_bool_and_complex_inputs_are_refused(dtype):
    layer = rnnkit.GRU(U, name="my_gru")
    with pytest.raises(TypeError, match=f"my_gru: input must hold real numbers, got dtype torch.{dtype}"):
        layer(np.ones((B, T, F), dtype=dtype))


def test_as_tensor_leaves_floats_to_autocast():
    x16 = torch.ones(2, 3, dtype=torch.bfloat16)
    assert as_tensor(x16, torch.float32, torch.device("cpu"), "input", "l").dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert as_tensor(x16, torch.float32, torch.device("cpu"), "input", "l").dtype == torch.bfloat16
        assert as_tensor(np.ones((2, 3)), torch.float32, torch.device("cpu"), "input", "l").dtype == torch.float32
        assert as_tensor(np.ones((2, 3), "int64"), torch.float32, None, "input", "l").dtype == torch.float32


def _torch_lstm_and_twin():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(F, U, batch_first=True)
    layer = rnnkit.LSTM(U, return_sequences=True)
    layer.build((None, None, F))
    with torch.no_grad():
        layer.set_weights([ref.weight_ih_l0.T, ref.weight_hh_l0.T, ref.bias_ih_l0 + ref.bias_hh_l0])
    return ref, layer


@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16])
def test_autocast_bfloat16_on_cpu_matches_torch_lstm(x_dtype):
    ref, layer = _torch_lstm_and_twin()
    x = _x(B, T, F, dtype=torch.float32).to(x_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _ = ref(x)
        out = layer(x)
    assert rnnkit.explain(layer, x).path == "fused"
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-2)  # one bfloat16 step: biases summed apart


def test_autocast_bfloat16_on_cpu_takes_numpy_float64():
    ref, layer = _torch_lstm_and_twin()
    x = np.random.RandomState(0).randn(B, T, F)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _ = ref(torch.tensor(x, dtype=torch.float32))
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-2)


# ------------------------------------------------------ automatic cell config
class ScaledCell(rnnkit.Layer):
    """A custom cell without get_config: ``h_t = tanh(x_t W + scale * h_{t-1} U)``."""

    def __init__(self, units, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units), "glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight((self.units, self.units), "orthogonal", name="recurrent_kernel")

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + self.scale * states[0] @ self.recurrent_kernel)
        return h, [h]


def _step_by_hand(cell, x, reverse=False):
    h = torch.zeros(x.shape[0], cell.units, dtype=x.dtype)
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs = {}
    for t in steps:
        h, _ = cell.call(x[:, t], [h])
        outputs[t] = h
    return torch.stack([outputs[t] for t in range(x.shape[1])], 1)


def test_custom_cell_config_is_recorded():
    layer = rnnkit.RNN(ScaledCell(3, scale=0.5, name="scaled"), return_sequences=True)
    config = layer.get_config()
    assert config["cell"] == {"class_name": "ScaledCell", "config": {
        "name": "scaled", "trainable": True, "dtype": "float32", "units": 3, "scale": 0.5}}
    clone = rnnkit.RNN.from_config(config, custom_objects={"ScaledCell": ScaledCell})
    assert type(clone.cell) is ScaledCell and clone.cell.scale == 0.5 and clone.cell.units == 3
    assert clone.get_config() == config


def test_bidirectional_over_a_custom_cell_without_get_config():
    x = _x(B, T, F, dtype=torch.float32)
    bi = rnnkit.Bidirectional(rnnkit.RNN(ScaledCell(3, scale=0.5), return_sequences=True))
    y = bi(x)
    assert bi.backward_layer.cell.scale == 0.5 and bi.backward_layer.go_backwards
    expected = torch.cat([_step_by_hand(bi.forward_layer.cell, x),
                          _step_by_hand(bi.backward_layer.cell, x, reverse=True)], -1)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)
