"""``rnnkit.save_keras_model``: rnnkit -> ``.keras`` -> Keras 3 ``load_model`` -> the same predictions."""

import numpy as np
import pytest
import torch

import rnnkit


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def keras_predict(keras, path, inputs):
    loaded = keras.saving.load_model(path)
    return loaded.predict(inputs, verbose=0)


def test_sequential_round_trip(keras, tmp_path):
    model = rnnkit.Sequential([
        rnnkit.Embedding(10, 4, mask_zero=True),
        rnnkit.Bidirectional(rnnkit.LSTM(3, return_sequences=True), merge_mode="sum"),
        rnnkit.RNN([rnnkit.LSTMCell(2), rnnkit.GRUCell(3, reset_after=False)], return_sequences=True),
        rnnkit.SimpleRNN(2, go_backwards=True),
    ])
    ids = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]])
    model(ids)
    randomize(model)
    with torch.no_grad():
        expected = model(ids).numpy()
    path = tmp_path / "model.keras"
    rnnkit.save_keras_model(model, path)
    got = keras_predict(keras, path, ids.numpy().astype("int32"))
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # and back into rnnkit, exactly
    back = rnnkit.load_keras_model(path)
    with torch.no_grad():
        np.testing.assert_allclose(back(ids).numpy(), expected, atol=1e-6)


def test_functional_round_trip(keras, tmp_path):
    a, b = rnnkit.Input((5, 3), name="a"), rnnkit.Input((5, 3), name="b")
    seq, h, c = rnnkit.LSTM(4, return_sequences=True, return_state=True)(a)
    shared = rnnkit.GRU(3, return_sequences=True)
    out1 = rnnkit.SimpleRNN(2)(shared(b))
    out2 = rnnkit.LSTM(4, go_backwards=True)(a, initial_state=[h, c])
    model = rnnkit.Model([a, b], [out1, h, out2])
    randomize(model, seed=1)
    xa, xb = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    with torch.no_grad():
        expected = model(xa, xb)
    path = tmp_path / "model.keras"
    rnnkit.save_keras_model(model, path)
    got = keras_predict(keras, path, [xa.numpy(), xb.numpy()])
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), atol=1e-5)


def test_conv_lstm_round_trip(keras, tmp_path):
    model = rnnkit.Sequential([rnnkit.ConvLSTM2D(3, 3, padding="same")])
    x = torch.randn(2, 3, 5, 5, 2)
    model(x)
    randomize(model, seed=2)
    with torch.no_grad():
        expected = model(x).numpy()
    rnnkit.save_keras_model(model, tmp_path / "m.keras")
    np.testing.assert_allclose(keras_predict(keras, tmp_path / "m.keras", x.numpy()), expected, atol=1e-5)


@pytest.mark.parametrize("layer, match", [
    (lambda: rnnkit.LSTM(3, time_major=True), "time_major"),
    (lambda: rnnkit.LSTM(3, recurrent_activation="legacy_hard_sigmoid"), "hard_sigmoid"),
])
def test_what_keras3_cannot_express_is_refused(tmp_path, layer, match):
    model = rnnkit.Sequential([layer()])
    model(torch.zeros(2, 4, 3))
    with pytest.raises(TypeError, match=match):
        rnnkit.save_keras_model(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_plain_torch_module_is_refused(tmp_path):
    model = rnnkit.Sequential([rnnkit.LSTM(3), torch.nn.Linear(3, 2)])
    model(torch.zeros(2, 4, 3))
    with pytest.raises(TypeError, match="plain torch module"):
        rnnkit.save_keras_model(model, tmp_path / "m.keras")


def test_input_shape_without_batch_or_time_axis_is_refused(tmp_path):
    model = rnnkit.Sequential([rnnkit.LSTM(3)])
    model(torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="no batch axis or time axis"):
        rnnkit.save_keras_model(model, tmp_path / "m.keras", input_shape=(4, 3))


def _branches(layers, make_input, make_model, deep_first: bool):
    """Two inputs; same-class layers in branches of different depths, so that Keras's layer order (deepest
    first) differs from the order of the calls."""
    a, b = make_input((5, 4), name="a"), make_input((5, 4), name="b")
    shallow = layers.LSTM(3, name="lstm_a")(a)
    deep = layers.Dense(2, name="head")(layers.LSTM(3, name="lstm_b")(layers.SimpleRNN(4, return_sequences=True,
                                                                                       name="rnn_b")(b)))
    other = layers.SimpleRNN(2, name="rnn_a")(a)
    return make_model([a, b], [deep, shallow, other] if deep_first else [shallow, other, deep])


@pytest.mark.parametrize("deep_first", [False, True])
def test_functional_layers_in_keras_order_and_weight_files_line_up(keras, tmp_path, deep_first):
    """Keras 3 names a functional model's layers in its files by class, numbered in its own layer order (by depth
    from the outputs, then by a walk from them), not in call order: rnnkit's ``model.layers`` follows it, so
    weights saved by either side load into the right layers of the other (same-shape layers swapped before)."""
    km = _branches(keras.layers, keras.Input, keras.Model, deep_first)
    rm = _branches(rnnkit, rnnkit.Input, rnnkit.Model, deep_first)
    assert [layer.name for layer in rm.layers] == [layer.name for layer in km.layers if layer.name not in ("a", "b")]
    x = [np.random.RandomState(0).rand(2, 5, 4).astype("float32") for _ in range(2)]
    want = [np.asarray(t.detach()) for t in km(x)]
    km.save_weights(tmp_path / "k.weights.h5")
    rnnkit.load_keras_weights(rm, tmp_path / "k.weights.h5")
    with torch.no_grad():
        for g, w in zip(rm(*[torch.tensor(v) for v in x]), want):
            np.testing.assert_allclose(g.numpy(), w, atol=1e-6)
    randomize(rm, seed=3)
    with torch.no_grad():
        expected = [t.numpy() for t in rm(*[torch.tensor(v) for v in x])]
    rnnkit.save_keras_model(rm, tmp_path / "r.keras")
    for g, e in zip(keras_predict(keras, tmp_path / "r.keras", x), expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
