"""``rnnkit.load_keras_model``: Keras 3 models saved as ``.keras`` and ``.h5``, loaded and compared with ``predict``."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.io.keras_file import KerasFileError

EXTS = ("keras", "h5")


def randomize(model, seed=0, scale=0.5):
    """Weights far from their initial values, so a weight not loaded shows up in the outputs."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((rng.normal(size=tuple(w.shape)) * scale).astype(w.dtype if isinstance(w.dtype, str) else "float32"))


def check(keras_model, inputs, tmp_path, ext, atol=1e-5):
    """Save, load with rnnkit, compare with ``predict`` (one output or a list)."""
    path = tmp_path / f"model.{ext}"
    keras_model.save(path)
    expected = keras_model.predict(inputs, verbose=0)
    loaded = rnnkit.load_keras_model(path)
    assert not loaded.training
    args = [torch.as_tensor(x) for x in inputs] if isinstance(inputs, list) else [torch.as_tensor(inputs)]
    with torch.no_grad():
        got = loaded(*args)
    expected = expected if isinstance(expected, list) else [expected]
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert np.abs(e).max() > 1e-3  # the model computed something
        np.testing.assert_allclose(g.numpy(), e, atol=atol, rtol=1e-5)
    return loaded


def padded_ids(rows=(3, 6, 1, 4), steps=6, vocab=10, seed=1):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(rows), steps), dtype="int32")
    for i, n in enumerate(rows):
        x[i, :n] = rng.integers(1, vocab, size=n)
    return x


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_embedding_bidirectional_gru(keras, tmp_path, ext, merge_mode):
    m = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(10, 4, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), merge_mode=merge_mode),
        keras.layers.GRU(2, go_backwards=True),
    ])
    randomize(m)
    loaded = check(m, padded_ids(), tmp_path, ext)
    assert isinstance(loaded, rnnkit.Sequential)
    assert [type(layer).__name__ for layer in loaded] == ["Embedding", "Bidirectional", "GRU"]


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("reset_after", [True, False])
def test_masking_stacked_layers_and_gru_modes(keras, tmp_path, ext, reset_after):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    x[0, 3:] = 0.0  # padding, masked by Masking
    x[2, 1:] = 0.0
    m = keras.Sequential([
        keras.Input((5, 4)),
        keras.layers.Masking(0.0),
        keras.layers.SimpleRNN(3, activation="relu", return_sequences=True),
        keras.layers.GRU(3, reset_after=reset_after, return_sequences=True),
        keras.layers.LSTM(2, recurrent_activation="hard_sigmoid"),
    ])
    randomize(m, seed=3)
    check(m, x, tmp_path, ext)


@pytest.mark.parametrize("ext", EXTS)
def test_rnn_over_stacked_cells(keras, tmp_path, ext):
    cells = [keras.layers.SimpleRNNCell(3), keras.layers.LSTMCell(2), keras.layers.GRUCell(2)]
    m = keras.Sequential([keras.Input((4, 3)), keras.layers.RNN(cells, return_sequences=True, go_backwards=True)])
    randomize(m, seed=4)
    check(m, np.random.default_rng(5).normal(size=(2, 4, 3)).astype("float32"), tmp_path, ext)


@pytest.mark.parametrize("ext", EXTS)
def test_conv_lstm(keras, tmp_path, ext):
    m = keras.Sequential([keras.Input((3, 5, 5, 2)),
                          keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=False)])
    randomize(m, seed=6, scale=0.3)
    check(m, np.random.default_rng(7).normal(size=(2, 3, 5, 5, 2)).astype("float32"), tmp_path, ext)


@pytest.mark.parametrize("ext", EXTS)
def test_functional_two_inputs_shared_layer_and_states(keras, tmp_path, ext):
    a, b = keras.Input((5, 3), name="a"), keras.Input((5, 3), name="b")
    shared = keras.layers.LSTM(4, return_sequences=True, name="shared")
    seq, h, c = keras.layers.LSTM(4, return_sequences=True, return_state=True, name="first")(a)
    left, right = shared(b), shared(a)  # one layer, two calls, one set of weights
    out = keras.layers.GRU(3, name="gru")(keras.layers.Concatenate()([left, right, seq]))
    m = keras.Model([a, b], [out, h, c])
    randomize(m, seed=8)
    rng = np.random.default_rng(9)
    inputs = [rng.normal(size=(2, 5, 3)).astype("float32") for _ in range(2)]
    loaded = check(m, inputs, tmp_path, ext)
    assert isinstance(loaded, rnnkit.Model)
    assert loaded.get_layer("shared") is not loaded.get_layer("first")
    # several inputs may also come as one list
    with torch.no_grad():
        again = loaded([torch.as_tensor(x) for x in inputs])
        assert torch.equal(again[0], loaded(*[torch.as_tensor(x) for x in inputs])[0])


@pytest.mark.parametrize("ext", EXTS)
def test_functional_initial_state_from_another_layer(keras, tmp_path, ext):
    a = keras.Input((5, 3))
    _, h, c = keras.layers.LSTM(4, return_state=True)(a)
    out = keras.layers.LSTM(4, go_backwards=True)(a, initial_state=[h, c])
    m = keras.Model(a, out)
    randomize(m, seed=10)
    check(m, np.random.default_rng(11).normal(size=(3, 5, 3)).astype("float32"), tmp_path, ext)


def test_loaded_model_trains(keras, tmp_path):
    m = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(10, 4, mask_zero=True),
                          keras.layers.LSTM(3)])
    m.save(tmp_path / "m.keras")
    loaded = rnnkit.load_keras_model(tmp_path / "m.keras").train()
    opt = torch.optim.SGD(loaded.parameters(), lr=0.1)
    x = torch.as_tensor(padded_ids())
    before = loaded(x).pow(2).sum()
    before.backward()
    opt.step()
    assert loaded(x).pow(2).sum() < before


def test_load_keras_weights_in_order(keras, tmp_path):
    m = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True), keras.layers.GRU(2)])
    randomize(m, seed=12)
    m.save_weights(tmp_path / "w.weights.h5")
    x = np.random.default_rng(13).normal(size=(2, 5, 3)).astype("float32")
    model = rnnkit.Sequential([rnnkit.LSTM(4, return_sequences=True), rnnkit.GRU(2)])
    model(torch.as_tensor(x))
    rnnkit.load_keras_weights(model, tmp_path / "w.weights.h5")
    np.testing.assert_allclose(model(torch.as_tensor(x)).detach().numpy(), m.predict(x, verbose=0), atol=1e-5)


def test_load_keras_weights_wrong_model_is_refused(keras, tmp_path):
    m = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    m.save_weights(tmp_path / "w.weights.h5")
    model = rnnkit.Sequential([rnnkit.LSTM(5)])
    model(torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="lstm"):
        rnnkit.load_keras_weights(model, tmp_path / "w.weights.h5")


def test_wiring_and_loading_leave_moving_statistics_alone(keras, tmp_path):
    """Building runs layers on example zeros, in eval mode: BatchNormalization keeps its statistics."""
    x = rnnkit.Input((4, 3))
    bn = rnnkit.BatchNormalization()
    rnnkit.Model(x, rnnkit.LSTM(2)(bn(x)))
    assert torch.equal(bn.moving_variance, torch.ones(3)) and torch.equal(bn.moving_mean, torch.zeros(3))
    m = keras.Sequential([keras.Input((4, 3)), keras.layers.BatchNormalization(), keras.layers.LSTM(2)])
    randomize(m, seed=14)
    bn_k = m.layers[0]
    bn_k.moving_variance.assign(np.abs(np.asarray(bn_k.moving_variance)) + 0.5)  # a variance is positive
    check(m, np.random.default_rng(15).normal(size=(2, 4, 3)).astype("float32"), tmp_path, "keras")


@pytest.mark.parametrize("ext", EXTS)
def test_the_layers_around_recurrent_ones(keras, tmp_path, ext):
    L = keras.layers
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    feats = keras.Input((6, 4), name="feats")
    e = L.Embedding(12, 4, mask_zero=True)(tokens)
    e = L.SpatialDropout1D(0.3)(e)
    f = L.Masking(0.0)(feats)
    f = L.TimeDistributed(L.Dense(4, activation="relu"))(f)
    f = L.LayerNormalization()(f)
    both = L.Concatenate()([e, f])
    seq = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="ave")(both)
    seq = L.Dropout(0.2)(seq)
    pooled = L.GlobalAveragePooling1D()(seq)
    conv = L.Conv1D(2, 3, padding="causal")(L.Permute((1, 2))(seq))
    conv = L.BatchNormalization()(conv)
    flat = L.Flatten()(L.Activation("tanh")(conv))
    rep = L.RepeatVector(2)(L.Dense(3)(pooled))
    rep = L.Reshape((6,))(rep)
    mx = L.GlobalMaxPooling1D()(L.LSTM(3, return_sequences=True)(seq))
    merged = [L.Add()([pooled, mx]), L.Subtract()([pooled, mx]), L.Multiply()([pooled, mx]),
              L.Average()([pooled, mx]), L.Maximum()([pooled, mx]), L.Minimum()([pooled, mx]),
              L.Dot(axes=1)([pooled, mx])]
    out = L.Dense(2)(L.Concatenate()([flat, rep] + merged))
    m = keras.Model([tokens, feats], out)
    randomize(m, seed=16, scale=0.4)
    for layer in m.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.moving_variance.assign(np.abs(np.asarray(layer.moving_variance)) + 0.5)
    rng = np.random.default_rng(17)
    x_feats = rng.normal(size=(4, 6, 4)).astype("float32")
    x_feats[1, 4:] = 0.0
    loaded = check(m, [padded_ids(), x_feats], tmp_path, ext)
    classes = {type(layer).__name__ for layer in loaded.layers}
    assert {"TimeDistributed", "Conv1D", "BatchNormalization", "Dot", "Reshape"} <= classes


def test_a_value_rnnkit_does_not_have_is_refused_naming_the_file_and_layer(keras, tmp_path):
    """A Keras file whose layer uses a function of the user's (a registered activation): a KerasFileError that names
    the file and the layer, and the value (no code from the file is looked up)."""

    @keras.saving.register_keras_serializable(package="rnnkit_test")
    def scaled_tanh(x):
        return keras.ops.tanh(x) * 2.0

    model = keras.Sequential([keras.Input((4, 3)), keras.layers.SimpleRNN(2, activation=scaled_tanh, name="odd")])
    path = tmp_path / "custom_activation.keras"
    model.save(path)
    with pytest.raises(KerasFileError, match=r"custom_activation\.keras.*layer 'odd' \(SimpleRNN\): Unknown "
                                                    r"activation 'rnnkit_test>scaled_tanh'"):
        rnnkit.load_keras_model(path)
