"""tf.keras 2 CuDNN weight layouts: the converters in ``rnnkit.kernels.lstm`` / ``gru`` and ``rnnkit.io``'s helpers.

Round trips; tf.keras 2's own formula (each gate's input kernel is the
transpose read back in Fortran order) as an independent check of the kernel
part; the fixture files written by tf.keras 2 (``tests/fixtures/legacy``):
its CuDNN weights, what its own loader converted them to, and the equivalent
layer's outputs; and plain layers loaded through the helpers computing what
the CuDNN layers compute.
"""

import pathlib

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.io import CUDNN_PLAIN_CLASS, cudnn_to_keras_weights, keras_to_cudnn_weights
from rnnkit.kernels.gru import cudnn_gru_to_keras, keras_to_cudnn_gru
from rnnkit.kernels.lstm import (
    cudnn_kernels_to_keras,
    cudnn_lstm_to_keras,
    keras_kernels_to_cudnn,
    keras_to_cudnn_lstm,
)

D, U = 3, 5  # D != U, so a transpose where a reshape belongs shows
GATES = {"CuDNNLSTM": 4, "CuDNNGRU": 3}


def _plain(class_name, seed=0):
    rng = np.random.RandomState(seed)
    n = GATES[class_name]
    bias = rng.randn(n * U) if class_name == "CuDNNLSTM" else rng.randn(2, n * U)
    return [rng.randn(D, n * U), rng.randn(U, n * U), bias]


def _cudnn(class_name, seed=0):
    rng = np.random.RandomState(seed)
    n = GATES[class_name]
    return [rng.randn(D, n * U), rng.randn(U, n * U), rng.randn(2 * n * U)]


@pytest.mark.parametrize("n_gates", [3, 4])
def test_kernels_follow_tf_keras_2_fortran_order_formula(n_gates):
    kernel, recurrent = _cudnn("CuDNNLSTM" if n_gates == 4 else "CuDNNGRU")[:2]
    got_kernel, got_recurrent = cudnn_kernels_to_keras(kernel, recurrent, n_gates)
    for g in range(n_gates):
        block = kernel[:, g * U:(g + 1) * U]
        np.testing.assert_array_equal(got_kernel[:, g * U:(g + 1) * U], np.reshape(block.T, block.shape, order="F"))
        np.testing.assert_array_equal(got_recurrent[:, g * U:(g + 1) * U], recurrent[:, g * U:(g + 1) * U].T)
    back = keras_kernels_to_cudnn(got_kernel, got_recurrent, n_gates)
    np.testing.assert_array_equal(back[0], kernel)
    np.testing.assert_array_equal(back[1], recurrent)


def test_one_gate_block_is_cudnn_memory_read_as_input_by_units():
    w = np.arange(D * U).reshape(U, D)  # cuDNN's row-major (U, D) matrix of one gate
    cudnn_block = w.reshape(D, U)  # what tf.keras 2 stores
    keras, _ = cudnn_kernels_to_keras(np.tile(cudnn_block, 4), np.zeros((U, 4 * U)), 4)
    np.testing.assert_array_equal(keras[:, :U], w.T)


@pytest.mark.parametrize("to_keras, to_cudnn, name", [
    (cudnn_lstm_to_keras, keras_to_cudnn_lstm, "CuDNNLSTM"),
    (cudnn_gru_to_keras, keras_to_cudnn_gru, "CuDNNGRU"),
])
def test_round_trips(to_keras, to_cudnn, name):
    plain = _plain(name)
    for a, b in zip(to_keras(*to_cudnn(*plain)), plain, strict=True):
        np.testing.assert_array_equal(a, b)
    cudnn = _cudnn(name)
    back = to_cudnn(*to_keras(*cudnn))
    np.testing.assert_array_equal(back[0], cudnn[0])
    np.testing.assert_array_equal(back[1], cudnn[1])
    if name == "CuDNNGRU":
        np.testing.assert_array_equal(back[2], cudnn[2])
    else:  # only the sum of the input and recurrent biases is defined
        n = 4 * U
        np.testing.assert_allclose(back[2][:n] + back[2][n:], cudnn[2][:n] + cudnn[2][n:], rtol=1e-15)
        np.testing.assert_array_equal(back[2][:n], back[2][n:])


def test_lstm_and_gru_biases():
    kernel, recurrent, bias = _cudnn("CuDNNLSTM")
    np.testing.assert_array_equal(cudnn_lstm_to_keras(kernel, recurrent, bias)[2], bias[:4 * U] + bias[4 * U:])
    kernel, recurrent, bias = _cudnn("CuDNNGRU")
    got = cudnn_gru_to_keras(kernel, recurrent, bias)[2]
    np.testing.assert_array_equal(got, np.stack([bias[:3 * U], bias[3 * U:]]))
    assert keras_to_cudnn_lstm(*_plain("CuDNNLSTM"))[2].dtype == np.float64
    f32 = [w.astype("float32") for w in _plain("CuDNNLSTM")]
    assert {w.dtype for w in keras_to_cudnn_lstm(*f32)} == {np.dtype("float32")}


@pytest.mark.parametrize("fn, args, match", [
    (cudnn_lstm_to_keras, lambda: _plain("CuDNNLSTM"), r"cudnn_lstm_to_keras: expected a CuDNNLSTM bias of shape"),
    (keras_to_cudnn_lstm, lambda: _cudnn("CuDNNLSTM"), r"keras_to_cudnn_lstm: expected a Keras LSTM bias"),
    (cudnn_gru_to_keras, lambda: _plain("CuDNNGRU"), r"cudnn_gru_to_keras: expected a CuDNNGRU bias of shape \(30,\)"),
    (keras_to_cudnn_gru, lambda: _cudnn("CuDNNGRU"), r"expected a GRU\(reset_after=True\) bias of shape \(2, 15\)"),
    (cudnn_lstm_to_keras, lambda: _cudnn("CuDNNGRU"), r"recurrent kernel of shape \(units, 4\*units\)"),
    (cudnn_gru_to_keras, lambda: [np.zeros((D, 4 * U)), np.zeros((U, 3 * U)), np.zeros(6 * U)],
     r"kernel of shape \(input_dim, 15\) for 5 units"),
])
def test_wrong_shapes_are_refused(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args())


# ------------------------------------------------------------- io helpers
@pytest.mark.parametrize("class_name", list(GATES))
def test_helpers_convert_whole_weight_lists(class_name):
    cudnn = _cudnn(class_name, 1) + _cudnn(class_name, 2)  # a Bidirectional wrapper: forward, then backward
    plain = cudnn_to_keras_weights(class_name, cudnn)
    assert len(plain) == 6
    single = cudnn_to_keras_weights(class_name, cudnn[3:])
    for a, b in zip(plain[3:], single, strict=True):
        np.testing.assert_array_equal(a, b)
    back = keras_to_cudnn_weights(class_name, plain)
    for a, b in zip(back[:2] + back[3:5], cudnn[:2] + cudnn[3:5]):
        np.testing.assert_array_equal(a, b)
    assert CUDNN_PLAIN_CLASS[class_name] in ("LSTM", "GRU")


def test_helpers_refuse_other_classes_and_counts():
    with pytest.raises(ValueError, match=r"cudnn_to_keras_weights: expected class_name 'CuDNNLSTM' or 'CuDNNGRU', "
                                         r"got 'LSTM'"):
        cudnn_to_keras_weights("LSTM", _cudnn("CuDNNLSTM"))
    with pytest.raises(ValueError, match=r"3 weights .* per direction; got 2"):
        keras_to_cudnn_weights("CuDNNGRU", _plain("CuDNNGRU")[:2])
    with pytest.raises(ValueError, match="got 0"):
        cudnn_to_keras_weights("CuDNNGRU", [])


@pytest.mark.parametrize("class_name", list(GATES))
def test_plain_layer_loaded_through_helper_computes_what_the_cudnn_layer_computes(class_name):
    cudnn_layer = getattr(rnnkit, class_name)(U, return_sequences=True, dtype="float64")
    plain_layer = getattr(rnnkit, CUDNN_PLAIN_CLASS[class_name])(U, return_sequences=True, dtype="float64",
                                                                 use_fused=False)
    for layer in (cudnn_layer, plain_layer):
        layer.build((None, None, D))
    weights = [0.4 * w for w in _cudnn(class_name, 3)]
    cudnn_layer.set_weights(weights)
    plain_layer.set_weights(cudnn_to_keras_weights(class_name, weights))
    x = torch.tensor(np.random.RandomState(4).randn(2, 7, D))
    torch.testing.assert_close(plain_layer(x), cudnn_layer(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------- files written by tf.keras 2
FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
FILES = [("cudnn_lstm", "CuDNNLSTM", "lstm"), ("cudnn_gru", "CuDNNGRU", "gru"),
         ("keras2_12/cudnn_gru", "CuDNNGRU", "gru")]


def _file_weights(stem, class_name):
    """The CuDNN layer's weights as tf.keras 2 wrote them, and the fixture's ``.npz``."""
    h5py = pytest.importorskip("h5py")
    group_name = {"CuDNNLSTM": "cu_dnnlstm", "CuDNNGRU": "cu_dnngru"}[class_name]
    with h5py.File(FIXTURES / f"{stem}.h5", "r") as f:
        group = f["model_weights"][group_name]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        weights = [np.asarray(group[n]) for n in names]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["kernel:0", "recurrent_kernel:0", "bias:0"]
    return weights, np.load(FIXTURES / f"{stem}.npz")


@pytest.mark.parametrize("stem, class_name, plain_name", FILES)
def test_conversion_equals_tf_keras_2s_own(stem, class_name, plain_name):
    """``equivalent_weight_*``: what tf.keras 2's loader made of the file's CuDNN weights."""
    weights, data = _file_weights(stem, class_name)
    assert weights[2].shape == (2 * GATES[class_name] * 4,)
    for got, want in zip(cudnn_to_keras_weights(class_name, weights), (data[f"equivalent_weight_{j}"]
                                                                        for j in range(3)), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stem, class_name, plain_name", FILES)
def test_cudnn_layer_with_the_file_weights_gives_tf_keras_2s_output(stem, class_name, plain_name):
    weights, data = _file_weights(stem, class_name)
    layer = getattr(rnnkit, class_name)(4)
    layer.build((None, None, 3))
    layer.set_weights(weights)
    np.testing.assert_allclose(layer(data["input_0"]).detach().numpy(), data[f"layer__{plain_name}"],
                               rtol=1e-5, atol=1e-6)
    got = layer.get_weights()
    for j in (0, 1) if class_name == "CuDNNLSTM" else (0, 1, 2):
        np.testing.assert_array_equal(got[j], weights[j])
