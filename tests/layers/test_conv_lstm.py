"""``ConvLSTM1D/2D/3D``: Keras 3 (torch backend) as the oracle, then golden
numbers, gradcheck, stateful / time-major / unroll equivalences, dropout, config
round trips and error messages.

Every oracle test copies the Keras layer's weights into rnnkit
(``keras_layer.get_weights()`` -> ``set_weights``) and compares outputs (1e-5)
and d(sum of first output)/d(input) (1e-4) on three paths: ``use_fused="auto"``
(whatever the layer picks), ``use_fused=False`` (the generic loop calling the
cell) and the hoisted loop (``cell.project_inputs`` over all timesteps, then
``cell.recurrent_step``), forced here by patching ``select_path``.
"""

import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, keras_output_and_grad, rnnkit_output_and_grad, to_numpy

import rnnkit.layers.rnn as rnn_module
from rnnkit import Bidirectional, initializers
from rnnkit.cells.conv_lstm import ConvLSTMCell
from rnnkit.kernels.path import HOISTED, Plan
from rnnkit.layers.conv_lstm import ConvLSTM, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from rnnkit.layers.rnn import RNN


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions gain nothing from threads, and on a busy machine each
    call can wait a time slice for a second OpenMP thread: run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CLASSES = {1: ConvLSTM1D, 2: ConvLSTM2D, 3: ConvLSTM3D}
SPATIAL = {1: (7,), 2: (5, 4), 3: (4, 3, 3)}
CHANNELS, FILTERS = 2, 2
PATHS = ("auto", "generic", "hoisted")
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}


def _shape(rank, data_format, batch=2, steps=3, channels=CHANNELS):
    spatial = SPATIAL[rank]
    if data_format == "channels_last":
        return (batch, steps) + spatial + (channels,)
    return (batch, steps, channels) + spatial


def _x(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def _random_weights(shapes, seed=1):
    """Weights scaled so that the gates see O(1) pre-activations (not saturated)."""
    rng = np.random.RandomState(seed)
    out = []
    for i, shape in enumerate(shapes):
        fan_in = int(np.prod(shape[:-1]))
        scale = (1.0, 0.6, 0.3)[i] / (np.sqrt(fan_in) if i < 2 else 1.0)
        out.append((scale * rng.randn(*shape)).astype("float32"))
    return out


def _make(keras, rank, build_shape, **kwargs):
    """A built Keras layer and one rnnkit layer per path, with the Keras layer's weights."""
    klayer = getattr(keras.layers, f"ConvLSTM{rank}D")(FILTERS, **kwargs)
    klayer.build(build_shape)
    klayer.set_weights(_random_weights([w.shape for w in klayer.get_weights()]))
    rlayers = {}
    for path in PATHS:
        r = CLASSES[rank](FILTERS, use_fused=False if path == "generic" else "auto", **kwargs)
        r.build(build_shape)
        r.set_weights(klayer.get_weights())
        rlayers[path] = r
    return klayer, rlayers


def _call(monkeypatch, path, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, on the hoisted loop when ``path == "hoisted"``."""
    with monkeypatch.context() as m:
        if path == "hoisted":
            m.setattr(rnn_module, "select_path", lambda *a, **k: Plan(HOISTED, ["forced by the test"]))
        return fn(*args, **kwargs)


def _assert_same(monkeypatch, klayer, rlayers, x, mask=None, **call_kwargs):
    kmask = {} if mask is None else {"mask": torch.tensor(mask)}
    rmask = {} if mask is None else {"mask": mask}
    k_outs, k_grad = keras_output_and_grad(klayer, x, **kmask, **call_kwargs)
    assert np.abs(k_outs[0]).max() > 0.05  # the oracle computed real numbers
    for path, r in rlayers.items():
        r_outs, r_grad = _call(monkeypatch, path, rnnkit_output_and_grad, r, x, **rmask, **call_kwargs)
        assert len(r_outs) == len(k_outs), path
        for a, b in zip(r_outs, k_outs):
            assert a.shape == b.shape, path
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=path)
        np.testing.assert_allclose(r_grad, k_grad, atol=1e-4, rtol=1e-4, err_msg=path)
    return k_outs


# ------------------------------------------------------ convolution settings
CONVS = {
    "valid": dict(kernel_size=3),
    "same_even_kernel": dict(kernel_size=2, padding="same"),
    "strides2_same": dict(kernel_size=3, strides=2, padding="same"),
    "strides2_valid": dict(kernel_size=2, strides=2),
    "dilation2_same": dict(kernel_size=3, dilation_rate=2, padding="same"),
    "dilation2_valid": dict(kernel_size=2, dilation_rate=2),
    "per_axis": dict(kernel_size=(3, 2, 1), strides=(2, 1, 1), padding="same"),
}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("conv", sorted(CONVS))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_convolutions_match_keras(keras, monkeypatch, rank, conv, data_format):
    kwargs = dict(CONVS[conv])
    for key in ("kernel_size", "strides"):
        if isinstance(kwargs.get(key), tuple):
            kwargs[key] = kwargs[key][:rank]
    shape = _shape(rank, data_format)
    klayer, rlayers = _make(keras, rank, shape, data_format=data_format, return_sequences=True, **kwargs)
    outs = _assert_same(monkeypatch, klayer, rlayers, _x(shape))
    assert outs[0].shape == tuple(rlayers["auto"].compute_output_shape(shape))


# ------------------------------------------------------------- layer semantics
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_semantics_match_keras(keras, monkeypatch, return_sequences, return_state, go_backwards, mask_name):
    shape = _shape(2, "channels_first", batch=3, steps=6)
    klayer, rlayers = _make(keras, 2, shape, kernel_size=3, data_format="channels_first", padding="same",
                            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards)
    outs = _assert_same(monkeypatch, klayer, rlayers, _x(shape), MASKS[mask_name])
    assert len(outs) == (3 if return_state else 1)


@pytest.mark.parametrize("mask_name", ["right_padded", "holes"])
def test_zero_output_for_mask_matches_keras(keras, monkeypatch, mask_name):
    shape = _shape(1, "channels_last", batch=3, steps=6)
    klayer, rlayers = _make(keras, 1, shape, kernel_size=3, padding="same", return_sequences=True,
                            zero_output_for_mask=True)
    outs = _assert_same(monkeypatch, klayer, rlayers, _x(shape), MASKS[mask_name])
    assert not outs[0][~MASKS[mask_name]].any()


@pytest.mark.parametrize("rank,data_format,mask_name,go_backwards", [
    (2, "channels_last", "none", False),
    (2, "channels_last", "holes", True),
    (1, "channels_first", "right_padded", False),
    (3, "channels_first", "none", True),
])
def test_initial_state_matches_keras(keras, monkeypatch, rank, data_format, mask_name, go_backwards):
    shape = _shape(rank, data_format, batch=3, steps=6)
    klayer, rlayers = _make(keras, rank, shape, kernel_size=3, padding="same", data_format=data_format,
                            return_sequences=True, return_state=True, go_backwards=go_backwards)
    state_shape = tuple(rlayers["auto"].compute_output_shape(shape)[1])
    rng = np.random.RandomState(5)
    states = [rng.randn(*state_shape).astype("float32") for _ in range(2)]
    kmask = {} if MASKS[mask_name] is None else {"mask": torch.tensor(MASKS[mask_name])}
    k_outs, k_grad = keras_output_and_grad(klayer, _x(shape), initial_state=[torch.tensor(s) for s in states], **kmask)
    for path, r in rlayers.items():
        r_outs, r_grad = _call(monkeypatch, path, rnnkit_output_and_grad, r, _x(shape), initial_state=states,
                               mask=MASKS[mask_name])
        for a, b in zip(r_outs, k_outs):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=path)
        np.testing.assert_allclose(r_grad, k_grad, atol=1e-4, rtol=1e-4, err_msg=path)


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_matches_keras(keras, merge_mode):
    shape = _shape(2, "channels_last", batch=3, steps=6)
    kw = dict(kernel_size=3, padding="same", return_sequences=True, return_state=True)
    klayer = keras.layers.Bidirectional(keras.layers.ConvLSTM2D(FILTERS, **kw), merge_mode=merge_mode)
    klayer.build(shape)
    klayer.set_weights(_random_weights([w.shape for w in klayer.get_weights()[:3]]) * 2)
    rlayer = Bidirectional(ConvLSTM2D(FILTERS, **kw), merge_mode=merge_mode)
    rlayer.build(shape)
    rlayer.set_weights(klayer.get_weights())
    state_shape = (3,) + SPATIAL[2] + (FILTERS,)
    states = [np.random.RandomState(i).randn(*state_shape).astype("float32") for i in range(4)]
    k_outs, k_grad = keras_output_and_grad(klayer, _x(shape), mask=torch.tensor(MASK_HOLES),
                                           initial_state=[torch.tensor(s) for s in states])
    r_outs, r_grad = rnnkit_output_and_grad(rlayer, _x(shape), mask=MASK_HOLES, initial_state=states)
    assert len(r_outs) == len(k_outs) == 5
    for a, b in zip(r_outs, k_outs):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r_grad, k_grad, atol=1e-4, rtol=1e-4)


def test_layer_from_keras_config(keras, monkeypatch):
    kw = dict(kernel_size=(3, 2), strides=(2, 1), padding="same", data_format="channels_first",
              recurrent_activation="hard_sigmoid", return_sequences=True, go_backwards=True, dropout=0.1)
    shape = _shape(2, "channels_first", batch=3, steps=6)
    klayer = keras.layers.ConvLSTM2D(FILTERS, **kw)
    klayer.build(shape)
    klayer.set_weights(_random_weights([w.shape for w in klayer.get_weights()]))
    rlayer = ConvLSTM2D.from_config(klayer.get_config())
    rlayer.build(shape)
    rlayer.set_weights(klayer.get_weights())
    assert rlayer.kernel_size == (3, 2) and rlayer.dropout == 0.1 and rlayer.go_backwards
    _assert_same(monkeypatch, klayer, {"auto": rlayer}, _x(shape), MASK_HOLES, training=False)


# --------------------------------------------------------------- golden numbers
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_golden_checksum_of_keras_layer_test(data_format):
    """The number of Keras 3's own ``ConvLSTMTest.test_correctness``."""
    x = np.arange(450).reshape((2, 3, 5, 5, 3)).astype("float32") / 100
    s = np.arange(200).reshape((2, 5, 5, 4)).astype("float32") / 100
    if data_format == "channels_first":
        x, s = x.transpose((0, 1, 4, 2, 3)), s.transpose((0, 3, 1, 2))
    layer = ConvLSTM2D(4, 3, padding="same", data_format=data_format,
                       kernel_initializer=initializers.Constant(0.01),
                       recurrent_initializer=initializers.Constant(0.02))
    with torch.no_grad():
        out = layer(x, initial_state=[s, s])
    assert float(out.sum()) == pytest.approx(119.812454, rel=1e-5)


def _np_lstm_1x1(xs, kernel, recurrent_kernel, bias, mask, go_backwards):
    """A kernel_size=1 ConvLSTM1D in numpy: per-position LSTM, masked steps carry state and output."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    batch, steps, length, _ = xs.shape
    filters = recurrent_kernel.shape[-2]
    h = np.zeros((batch, length, filters))
    c = np.zeros_like(h)
    outs = []
    for t in (reversed(range(steps)) if go_backwards else range(steps)):
        z = xs[:, t] @ kernel[0] + h @ recurrent_kernel[0] + bias
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        c_new = sig(zf) * c + sig(zi) * np.tanh(zc)
        h_new = sig(zo) * np.tanh(c_new)
        m = mask[:, t, None, None]
        h, c = np.where(m, h_new, h), np.where(m, c_new, c)
        outs.append(h)
    return np.stack(outs, axis=1)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_golden_constant_initializers_1x1(go_backwards):
    """Constant initializers, np.arange inputs, holes in the mask: numpy by hand."""
    xs = np.arange(3 * 6 * 4 * 2).reshape((3, 6, 4, 2)).astype("float64") / 144 - 0.5
    layer = ConvLSTM1D(3, 1, dtype="float64", return_sequences=True, go_backwards=go_backwards,
                       kernel_initializer=initializers.Constant(0.3),
                       recurrent_initializer=initializers.Constant(-0.4),
                       bias_initializer=initializers.Constant(0.1))
    with torch.no_grad():
        got = layer(xs, mask=MASK_HOLES).numpy()
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert np.all(kernel == 0.3) and np.all(recurrent_kernel == -0.4)
    np.testing.assert_array_equal(bias, [0.1] * 3 + [1.0] * 3 + [0.1] * 6)
    want = _np_lstm_1x1(xs, kernel, recurrent_kernel, bias, MASK_HOLES, go_backwards)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", ["generic", "hoisted"])
def test_gradcheck_float64_1d(monkeypatch, path):
    layer = ConvLSTM1D(2, 2, padding="same", strides=2, dtype="float64", return_sequences=True,
                       use_fused=False if path == "generic" else "auto")
    layer.build((2, 3, 4, 1))
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    params = dict(layer.named_parameters())
    assert sorted(params) == sorted(names)
    mask = torch.tensor([[True, False, True], [True, True, False]])

    def f(x, kernel, recurrent_kernel, bias):
        values = dict(zip(names, (kernel, recurrent_kernel, bias)))
        return torch.func.functional_call(layer, values, (x,), {"mask": mask})

    rng = np.random.RandomState(0)
    x = torch.tensor(rng.randn(2, 3, 4, 1), requires_grad=True)
    args = [x] + [(p.detach() * 2).requires_grad_(True) for p in (params[n] for n in names)]
    assert _call(monkeypatch, path, torch.autograd.gradcheck, f, args, eps=1e-6, atol=1e-7)


# --------------------------------------------------------------- equivalences
def test_layer_equals_cell_stepped_by_hand():
    layer = ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True, return_state=True)
    x = torch.tensor(_x((2, 4, 5, 4, 2)))
    out, h, c = layer(x)
    cell = layer.cell
    states = cell.get_initial_state(2)
    for t in range(4):
        y, states = cell(x[:, t], states)
        torch.testing.assert_close(out[:, t], y)
    torch.testing.assert_close(h, states[0])
    torch.testing.assert_close(c, states[1])


def test_stateful_two_halves_equal_one_call():
    x = _x((2, 6) + SPATIAL[2] + (CHANNELS,))
    whole = ConvLSTM2D(FILTERS, 3, padding="same")
    whole.build(x.shape)
    stateful = ConvLSTM2D(FILTERS, 3, padding="same", stateful=True)
    stateful.build(x.shape)
    stateful.set_weights(whole.get_weights())
    stateful(x[:, :3])
    np.testing.assert_allclose(to_numpy(stateful(x[:, 3:])), to_numpy(whole(x)), atol=1e-6)
    stateful.reset_states()
    assert not any(s.any() for s in stateful.states)
    assert stateful.states[0].shape == (2,) + SPATIAL[2] + (FILTERS,)


def test_time_major_and_unroll_are_the_same_numbers():
    x = _x((2, 5, 6, CHANNELS))
    base = ConvLSTM1D(FILTERS, 3, return_sequences=True)
    want = to_numpy(base(x))
    for kwargs in (dict(time_major=True), dict(unroll=True)):
        other = ConvLSTM1D(FILTERS, 3, return_sequences=True, **kwargs)
        other.build(x.shape)
        other.set_weights(base.get_weights())
        if kwargs.get("time_major"):
            got = to_numpy(other(x.transpose(1, 0, 2, 3))).transpose(1, 0, 2, 3)
        else:
            got = to_numpy(other(x))
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_generic_rnn_over_the_cell():
    cell = ConvLSTMCell(2, FILTERS, 3, padding="same")
    layer = RNN(cell, return_sequences=True)
    x = _x((2, 3) + SPATIAL[2] + (CHANNELS,))
    conv = ConvLSTM2D(FILTERS, 3, padding="same", return_sequences=True)
    conv.build(x.shape)
    layer.build(x.shape)
    conv.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(conv(x)), atol=1e-6)
    clone = RNN.from_config(json.loads(json.dumps(layer.get_config())), custom_objects={"ConvLSTMCell": ConvLSTMCell})
    assert clone.cell.get_config() == cell.get_config()


# --------------------------------------------------------------------- dropout
def test_dropout_only_in_training_and_reproducible_with_seed(monkeypatch):
    x = _x((2, 4) + SPATIAL[2] + (CHANNELS,))
    plain = ConvLSTM2D(FILTERS, 3, return_sequences=True)
    plain.build(x.shape)
    outs = {}
    for path in ("generic", "hoisted"):
        layer = ConvLSTM2D(FILTERS, 3, return_sequences=True, dropout=0.3, recurrent_dropout=0.3, seed=7)
        layer.build(x.shape)
        layer.set_weights(plain.get_weights())
        np.testing.assert_allclose(to_numpy(_call(monkeypatch, path, layer, x, training=False)),
                                   to_numpy(plain(x)), atol=1e-6)
        outs[path] = to_numpy(_call(monkeypatch, path, layer, x, training=True))
        assert not np.allclose(outs[path], to_numpy(plain(x)), atol=1e-3)
    # the same seed draws the same masks on both paths: the same numbers
    np.testing.assert_allclose(outs["generic"], outs["hoisted"], atol=1e-6)


# ----------------------------------------------------------- config, attributes
def _rich_kwargs():
    return dict(kernel_size=(3, 2), strides=(2, 1), padding="same", data_format="channels_first",
                activation="relu", recurrent_activation="hard_sigmoid", use_bias=True,
                kernel_initializer="he_normal", unit_forget_bias=False, kernel_regularizer="l2",
                recurrent_constraint="non_neg", dropout=0.2, recurrent_dropout=0.1, seed=3,
                return_sequences=True, return_state=True, go_backwards=True, name="clstm")


def test_config_round_trip():
    layer = ConvLSTM2D(FILTERS, **_rich_kwargs())
    shape = _shape(2, "channels_first", batch=3, steps=6)
    layer.build(shape)
    config = layer.get_config()
    assert "cell" not in config and "rank" not in config and "units" not in config
    assert config["kernel_size"] == (3, 2) and config["filters"] == FILTERS
    clone = ConvLSTM2D.from_config(json.loads(json.dumps(config)))
    assert type(clone) is ConvLSTM2D and clone.get_config() == config
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    x = _x(shape)
    for training in (False, True):  # same seed: the same dropout masks too
        a = layer(x, mask=MASK_HOLES, training=training)
        b = clone(x, mask=MASK_HOLES, training=training)
        assert len(a) == len(b) == 3
        for u, v in zip(a, b):
            np.testing.assert_array_equal(to_numpy(u), to_numpy(v))
    assert len(layer.losses) == 1


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_config_keys_match_keras(keras, rank):
    kw = {k: v for k, v in _rich_kwargs().items()
          if not k.endswith(("initializer", "regularizer", "constraint")) and k != "name"}
    kw["kernel_size"], kw["strides"] = (3, 2, 1)[:rank], (2, 1, 1)[:rank]
    kcfg = getattr(keras.layers, f"ConvLSTM{rank}D")(FILTERS, **kw).get_config()
    rcfg = CLASSES[rank](FILTERS, **kw).get_config()
    assert set(kcfg) - {"dtype"} <= set(rcfg)
    for key in sorted(set(kcfg) - {"dtype", "name"}):
        if not key.endswith(("initializer", "regularizer", "constraint")):
            assert rcfg[key] == kcfg[key], key
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
        assert rcfg[key]["class_name"] == kcfg[key]["class_name"], key


def test_attributes_read_through_the_layer():
    layer = ConvLSTM3D(4, 3, strides=(1, 2, 1), data_format="channels_first", dropout=0.25)
    assert layer.filters == 4 and layer.kernel_size == (3, 3, 3) and layer.strides == (1, 2, 1)
    assert layer.data_format == "channels_first" and layer.padding == "valid" and layer.dropout == 0.25
    assert layer.cell.name.startswith("conv_lstm_cell")  # Keras's cell name
    assert ConvLSTM2D(4, 3, name="mine").cell.name == "mine_cell"


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("return_sequences,return_state", [(False, False), (True, True)])
def test_compute_output_shape_before_build(rank, return_sequences, return_state):
    shape = _shape(rank, "channels_last")
    layer = CLASSES[rank](FILTERS, 2, strides=2, return_sequences=return_sequences, return_state=return_state)
    predicted = layer.compute_output_shape(shape)
    assert not layer.built
    outs = layer(_x(shape))
    if return_state:
        assert [tuple(p) for p in predicted] == [tuple(o.shape) for o in outs]
    else:
        assert tuple(predicted) == tuple(outs.shape)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("arg", ["units", "implementation", "bogus_arg"])
def test_unknown_constructor_argument(arg):
    with pytest.raises(TypeError, match=rf"ConvLSTM2D: unexpected keyword argument\(s\) \['{arg}'\]"):
        ConvLSTM2D(4, 3, **{arg: 1})


def test_abstract_base_is_not_a_layer():
    with pytest.raises(TypeError, match="use ConvLSTM1D, ConvLSTM2D or ConvLSTM3D"):
        ConvLSTM(4, 3)


def test_constructor_errors_name_the_cell():
    with pytest.raises(ValueError, match=r"c_cell: strides > 1 is not compatible with dilation_rate > 1"):
        ConvLSTM2D(4, 3, strides=2, dilation_rate=2, name="c")
    with pytest.raises(ValueError, match=r"kernel_size must be a positive int or a tuple of 3 positive ints"):
        ConvLSTM3D(4, (3, 3))


def test_wrong_input_rank():
    layer = ConvLSTM2D(4, 3, name="c2d")
    with pytest.raises(ValueError, match=r"c2d: expected input of rank 5 \(batch, timesteps, rows, cols, channels\), "
                                         r"got shape \(2, 3, 5, 5\) \(rank 4\)"):
        layer(np.zeros((2, 3, 5, 5), "float32"))
    layer(np.zeros((2, 3, 5, 5, 2), "float32"))  # built now
    with pytest.raises(ValueError, match=r"c2d: expected input of rank 5 .*got shape \(2, 3, 5, 5, 2, 1\)"):
        layer(np.zeros((2, 3, 5, 5, 2, 1), "float32"))
    first = ConvLSTM1D(4, 3, data_format="channels_first", time_major=True, name="c1d")
    with pytest.raises(ValueError, match=r"c1d: expected input of rank 4 \(timesteps, batch, channels, steps\)"):
        first(np.zeros((2, 3, 5), "float32"))


@pytest.mark.parametrize("data_format,good,bad,axis", [
    ("channels_last", (2, 3, 5, 5, 2), (2, 3, 5, 5, 3), "last"),
    ("channels_first", (2, 3, 2, 5, 5), (2, 3, 3, 5, 5), "third"),
])
def test_channels_changed_after_build(data_format, good, bad, axis):
    layer = ConvLSTM2D(4, 3, data_format=data_format, name="c2d")
    layer(np.zeros(good, "float32"))
    with pytest.raises(ValueError, match=rf"c2d: expected 2 input channels \({axis} axis, "
                                         rf"data_format='{data_format}'\) as at build time, got 3 in input of shape"):
        layer(np.zeros(bad, "float32"))


def test_spatial_shape_changed_after_build():
    layer = ConvLSTM2D(4, 3, name="c2d")
    layer(np.zeros((2, 3, 5, 5, 2), "float32"))
    with pytest.raises(ValueError, match=r"c2d: expected spatial shape \(5, 5\) as at build time .*got \(6, 5\)"):
        layer(np.zeros((2, 3, 6, 5, 2), "float32"))


def test_input_too_small_for_valid_convolution():
    with pytest.raises(ValueError, match=r"spatial shape \(2,\) is too small for kernel_size=\(3,\)"):
        ConvLSTM1D(4, 3)(np.zeros((2, 3, 2, 1), "float32"))


def test_initial_state_wrong_shape():
    layer = ConvLSTM2D(4, 3, name="c2d")
    with pytest.raises(ValueError, match=r"c2d: initial_state\[0\] must have shape \(2, 3, 3, 4\), got \(2, 5, 5, 4\)"):
        layer(np.zeros((2, 3, 5, 5, 2), "float32"), initial_state=[np.zeros((2, 5, 5, 4), "float32")] * 2)
