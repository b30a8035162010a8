"""``ConvLSTMCell`` without Keras: golden numbers, a numpy reference written out
by hand, the hoisted projection against per-step projections, dropout masks,
state shapes, config and errors. (The layers against Keras 3 are in
``tests/layers/test_conv_lstm.py``.)
"""

import json

import numpy as np
import pytest
import torch

from rnnkit import initializers
from rnnkit.cells.conv_lstm import ConvLSTMCell, conv_output_length, same_padding


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions gain nothing from threads, and on a busy machine each
    call can wait a time slice for a second OpenMP thread: run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DATA_FORMATS = ("channels_last", "channels_first")


def _to_first(a):
    """(batch, [time,] *spatial, channels) -> (batch, [time,] channels, *spatial) for one-step arrays."""
    return np.moveaxis(a, -1, 1)


def _cell(rank=2, filters=3, kernel_size=3, input_shape=(2, 5, 4, 2), **kwargs):
    cell = ConvLSTMCell(rank, filters, kernel_size, **kwargs)
    cell.build(input_shape)
    return cell


# ------------------------------------------------------------------- golden numbers
@pytest.mark.parametrize("data_format", DATA_FORMATS)
def test_golden_checksums_of_keras_cell_test(data_format):
    """The numbers of Keras 3's own ``ConvLSTMCellTest.test_correctness``."""
    x = np.arange(150).reshape((2, 5, 5, 3)).astype("float32") / 10
    s = np.arange(200).reshape((2, 5, 5, 4)).astype("float32") / 10
    if data_format == "channels_first":
        x, s = _to_first(x), _to_first(s)
    cell = ConvLSTMCell(2, 4, 3, padding="same", data_format=data_format,
                        kernel_initializer=initializers.Constant(0.01),
                        recurrent_initializer=initializers.Constant(0.02))
    with torch.no_grad():
        out, (h, c) = cell(torch.tensor(x), [torch.tensor(s), torch.tensor(s)])
    assert float(out.sum()) == pytest.approx(188.89502, rel=1e-5)
    assert float(h.sum()) == pytest.approx(188.89502, rel=1e-5)
    assert float(c.sum()) == pytest.approx(2170.444, rel=1e-5)


def _np_conv1d(x, w, stride, dilation, pads):
    """x (length, in), w (k, in, out) Keras layout -> (out_length, out), written out with loops."""
    x = np.pad(x, [pads, (0, 0)])
    k = w.shape[0]
    n_out = (x.shape[0] - (k - 1) * dilation - 1) // stride + 1
    out = np.zeros((n_out, w.shape[2]))
    for p in range(n_out):
        for j in range(k):
            out[p] += x[p * stride + j * dilation] @ w[j]
    return out


def _np_conv_lstm_1d(xs, kernel, recurrent_kernel, bias, stride, dilation, padding):
    """One sequence ``xs`` (time, length, channels) -> outputs (time, out_length, filters)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    k, filters = kernel.shape[0], recurrent_kernel.shape[1]
    n = xs.shape[1]
    if padding == "same":
        n_out = -(-n // stride)
        total = max((n_out - 1) * stride + (k - 1) * dilation + 1 - n, 0)
        pads = (total // 2, total - total // 2)
    else:
        pads = (0, 0)
    rec_pads = ((k - 1) // 2, k - 1 - (k - 1) // 2)
    h = c = None
    outs = []
    for x in xs:
        zx = _np_conv1d(x, kernel, stride, dilation, pads) + bias
        if h is None:
            h = c = np.zeros((zx.shape[0], filters))
        z = zx + _np_conv1d(h, recurrent_kernel, 1, 1, rec_pads)
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        c = sig(zf) * c + sig(zi) * np.tanh(zc)
        h = sig(zo) * np.tanh(c)
        outs.append(h)
    return np.stack(outs)


@pytest.mark.parametrize("padding,strides,dilation", [("valid", 1, 1), ("same", 1, 1), ("same", 2, 1), ("valid", 1, 2)])
def test_golden_constant_initializers_1d(padding, strides, dilation):
    """Constant kernels, np.arange inputs: the cell stepped by hand equals numpy by hand."""
    xs = np.arange(2 * 3 * 5 * 2).reshape((2, 3, 5, 2)).astype("float64") / 60 - 0.5  # (batch, time, length, ch)
    cell = ConvLSTMCell(1, 2, 3, strides=strides, padding=padding, dilation_rate=dilation, dtype="float64",
                        kernel_initializer=initializers.Constant(0.1),
                        recurrent_initializer=initializers.Constant(-0.2),
                        bias_initializer=initializers.Constant(0.05))
    cell.build((2, 5, 2))
    kernel, recurrent_kernel, bias = cell.get_weights()
    np.testing.assert_array_equal(bias, [0.05, 0.05, 1, 1, 0.05, 0.05, 0.05, 0.05])  # unit_forget_bias
    states = cell.get_initial_state(2)
    outs = []
    for t in range(xs.shape[1]):
        out, states = cell(torch.tensor(xs[:, t]), states)
        outs.append(out.detach().numpy())
    got = np.stack(outs, axis=1)
    for b in range(2):
        want = _np_conv_lstm_1d(xs[b], kernel, recurrent_kernel, bias, strides, dilation, padding)
        np.testing.assert_allclose(got[b], want, rtol=1e-12, atol=1e-12)
    assert got.shape[2] == conv_output_length(5, 3, strides, dilation, padding)


def test_numpy_reference_random_weights_even_kernel():
    """Random weights, kernel 4 (asymmetric 'same' padding on both convolutions)."""
    rng = np.random.RandomState(0)
    xs = rng.randn(2, 3, 7, 2)
    cell = _cell(1, 3, 4, input_shape=(2, 7, 2), padding="same", dtype="float64")
    weights = [rng.randn(*w.shape) * 0.5 for w in cell.get_weights()]
    cell.set_weights(weights)
    states = cell.get_initial_state(2)
    outs = []
    for t in range(3):
        out, states = cell(torch.tensor(xs[:, t]), states)
        outs.append(out.detach().numpy())
    got = np.stack(outs, axis=1)
    for b in range(2):
        np.testing.assert_allclose(got[b], _np_conv_lstm_1d(xs[b], *weights, 1, 1, "same"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,k,s,d,want", [(5, 3, 1, 1, (1, 1)), (6, 4, 1, 1, (1, 2)), (5, 3, 2, 1, (1, 1)),
                                          (6, 3, 2, 1, (0, 1)), (7, 3, 1, 2, (2, 2)), (4, 1, 3, 1, (0, 0))])
def test_same_padding_like_keras(n, k, s, d, want):
    assert same_padding(n, k, s, d) == want
    total = sum(want)
    assert conv_output_length(n, k, s, d, "same") == (n + total - (k - 1) * d - 1) // s + 1


# --------------------------------------------------------------- structure
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", DATA_FORMATS)
def test_weights_and_state_shapes(rank, data_format):
    spatial = (7, 6, 5)[:rank]
    shape = (2,) + spatial + (3,) if data_format == "channels_last" else (2, 3) + spatial
    cell = ConvLSTMCell(rank, 4, 3, strides=2, data_format=data_format)
    assert cell.state_size == [None, None] and cell.output_size is None
    cell.build(shape)
    k = (3,) * rank
    assert [w.shape for w in cell.get_weights()] == [k + (3, 16), k + (4, 16), (16,)]
    out_spatial = tuple((n - 3) // 2 + 1 for n in spatial)
    state = out_spatial + (4,) if data_format == "channels_last" else (4,) + out_spatial
    assert cell.state_size == [state, state]
    assert cell.output_size == state
    h, c = cell.get_initial_state(5)
    assert h.shape == c.shape == (5,) + state and not h.any()
    assert cell.compute_output_shape(shape) == ((2,) + state, [(2,) + state, (2,) + state])
    out, (h2, c2) = cell(torch.randn(shape), [h[:2], c[:2]])
    assert out.shape == h2.shape == c2.shape == (2,) + state


def test_use_bias_false_and_unit_forget_bias_off():
    cell = _cell(use_bias=False)
    assert cell.bias is None and len(cell.get_weights()) == 2
    cell = _cell(unit_forget_bias=False, bias_initializer="ones")
    np.testing.assert_array_equal(cell.get_weights()[2], np.ones(12))


# ------------------------------------------------------- the hoisted projection
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_project_all_steps_equals_per_step(data_format, dropout):
    """One convolution over batch*time == the per-step projections (same dropout masks)."""
    rng = np.random.RandomState(1)
    x = rng.randn(3, 4, 5, 6, 2).astype("float32")  # (batch, time, rows, cols, ch)
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 2)
    cell = ConvLSTMCell(2, 3, 3, padding="same", strides=2, data_format=data_format, dropout=dropout, seed=3)
    cell.build((3,) + x.shape[2:])
    xt = torch.tensor(x)
    all_steps = cell.project_inputs(xt, training=True)
    per_step = torch.stack([cell.project_inputs(xt[:, t], training=True) for t in range(4)], dim=1)
    torch.testing.assert_close(all_steps, per_step, rtol=1e-5, atol=1e-6)
    assert all_steps.shape[:2] == (3, 4)


@pytest.mark.parametrize("data_format", DATA_FORMATS)
def test_call_is_recurrent_step_of_projection(data_format):
    cell = _cell(data_format=data_format, padding="same", recurrent_dropout=0.3, dropout=0.2, seed=5,
                 input_shape=(2, 2, 5, 4) if data_format == "channels_first" else (2, 5, 4, 2))
    x = torch.randn((2, 2, 5, 4) if data_format == "channels_first" else (2, 5, 4, 2))
    states = [torch.randn((2,) + cell.state_size[0]) for _ in range(2)]
    for training in (False, True):
        out, new = cell(x, states, training=training)
        out2, new2 = cell.recurrent_step(cell.project_inputs(x, training), states, training)
        torch.testing.assert_close(out, out2)
        torch.testing.assert_close(new[1], new2[1])


# ------------------------------------------------------------------ dropout
def _input_grad(cell, x, states, training):
    x = x.clone().requires_grad_(True)
    out, (h, c) = cell(x, states, training=training)
    (g,) = torch.autograd.grad((out.sum() + c.sum()), x)
    return g


def test_dropout_four_masks_per_sequence():
    """Keras ConvLSTM: one input mask per gate, drawn once and kept until reset."""
    cell = _cell(1, 2, 1, input_shape=(4, 6, 5), dropout=0.5, seed=0)
    masks = cell.dropout_masks(torch.ones(4, 6, 5), True)
    assert len(masks) == 4 and masks[0].shape == (4, 6, 5)
    assert not all(torch.equal(masks[0], m) for m in masks[1:])
    x = torch.randn(4, 6, 5)
    states = [torch.randn(4, 6, 2) for _ in range(2)]  # c != 0: the forget gate matters too
    g1 = _input_grad(cell, x, states, True)
    g2 = _input_grad(cell, x, states, True)  # same masks: same step, same numbers
    torch.testing.assert_close(g1, g2)
    # with a 1x1 kernel an input element is dropped from every gate at once only
    # where all four masks drop it
    all_dropped = torch.stack([m == 0 for m in masks]).all(0)
    assert torch.equal(g1 == 0, all_dropped)
    cell.reset_dropout_masks()
    assert not torch.equal(cell.dropout_masks(x, True)[0], masks[0])


def test_no_dropout_outside_training():
    cell = _cell(dropout=0.5, recurrent_dropout=0.5, seed=1)
    plain = _cell()
    plain.set_weights(cell.get_weights())
    x = torch.randn(2, 5, 4, 2)
    states = [torch.randn(2, 3, 2, 3) for _ in range(2)]
    torch.testing.assert_close(cell(x, states, training=False)[0], plain(x, states)[0])
    assert not torch.allclose(cell(x, states, training=True)[0], plain(x, states)[0])


def test_recurrent_dropout_masks_per_gate_on_h():
    cell = _cell(recurrent_dropout=0.5, seed=2)
    h = torch.randn(2, 3, 2, 3)
    masks = cell.recurrent_dropout_masks(h, True)
    assert len(masks) == 4 and masks[0].shape == h.shape


# ------------------------------------------------------------------ config
def test_config_round_trip():
    cell = _cell(1, 2, (3,), strides=(2,), padding="SAME", data_format="channels_first", input_shape=(2, 2, 9),
                 recurrent_activation="hard_sigmoid", unit_forget_bias=False, kernel_regularizer="l2",
                 dropout=0.1, recurrent_dropout=0.2, seed=4)
    config = cell.get_config()
    assert config["padding"] == "same" and config["kernel_size"] == (3,) and config["rank"] == 1
    assert "units" not in config and "implementation" not in config
    clone = ConvLSTMCell.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=4), r"rank must be 1, 2 or 3, got 4"),
    (dict(filters=0), r"filters must be a positive integer, got 0"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size must be a positive int or a tuple of 2 positive ints, got \(3, 3, 3\)"),
    (dict(strides=0), r"strides must be .* got 0"),
    (dict(strides=2, dilation_rate=2), r"strides > 1 is not compatible with dilation_rate > 1"),
    (dict(padding="causal"), r"padding must be 'valid' or 'same', got 'causal'"),
    (dict(data_format="nhwc"), r"data_format must be 'channels_last' or 'channels_first', got 'nhwc'"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
])
def test_constructor_errors(kwargs, match):
    args = dict(rank=2, filters=3, kernel_size=3, name="my_cell")
    args.update(kwargs)
    with pytest.raises(ValueError, match="my_cell: " + match):
        ConvLSTMCell(**args)


def test_build_errors():
    cell = ConvLSTMCell(2, 3, 3, name="c")
    with pytest.raises(ValueError, match=r"c: the state shape comes from the input shape; build the cell first"):
        cell.get_initial_state(2)
    with pytest.raises(ValueError, match=r"c: expected step inputs of rank 4 \(batch, rows, cols, channels\), "
                                         r"got shape \(2, 5, 2\)"):
        cell.build((2, 5, 2))
    with pytest.raises(ValueError, match=r"c: the input's spatial shape \(2, 5\) is too small"):
        cell.build((2, 2, 5, 1))
    with pytest.raises(ValueError, match=r"c: the channel and spatial dimensions must be known"):
        cell.build((2, 5, 5, None))
    cell.build((2, 5, 5, 2))
    with pytest.raises(ValueError, match=r"c: expected inputs of rank 4 .* or 5 .*got shape \(5, 5\)"):
        cell.project_inputs(torch.zeros(5, 5))
