"""``Sequential`` with Keras 3's ``keras.Sequential`` (torch backend) as the oracle.

Each case builds the Keras model and the rnnkit one, gives Keras random
weights, copies them with ``get_weights()`` -> ``set_weights()`` (a ``Dense``
kernel ``(in, out)`` becomes the ``torch.nn.Linear`` weight ``(out, in)``)
and compares the outputs (1e-5) and the gradient of a random linear
functional of them with respect to every weight (1e-4). The masks travel from
``Embedding(mask_zero=True)`` / ``Masking`` through the recurrent layers.
"""

import warnings

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

V, E, U, U2, K = 11, 4, 3, 5, 2
B, T = 4, 6
# Right-padded token ids, rows of different lengths, one full row (0 = padding).
IDS_PADDED = np.array([[3, 7, 1, 9, 2, 5],
                       [4, 4, 8, 0, 0, 0],
                       [10, 2, 0, 0, 0, 0],
                       [6, 1, 3, 2, 7, 0]], dtype="int64")
# Zeros in the middle too (Keras allows them: the step is skipped wherever it is).
IDS_HOLES = np.array([[3, 0, 1, 9, 0, 5],
                      [0, 4, 8, 0, 2, 0],
                      [10, 2, 0, 3, 0, 0],
                      [6, 1, 3, 2, 7, 4]], dtype="int64")
IDS = {"right_padded": IDS_PADDED, "holes": IDS_HOLES}


def random_weights(weights, seed):
    rng = np.random.RandomState(seed)
    return [((1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3) * rng.randn(*w.shape)).astype(w.dtype)
            for w in weights]


def copy_weights(k_model, r_model, x_shape, seed):
    """Random Keras weights, copied into ``r_model`` (Dense kernels transposed for torch.nn.Linear)."""
    weights = random_weights(k_model.get_weights(), seed)
    k_model.set_weights(weights)
    r_model.build(x_shape)
    r_weights = r_model.weights
    assert len(r_weights) == len(weights)
    converted = []
    for w, p in zip(weights, r_weights):
        converted.append(w.T if w.ndim == 2 and tuple(p.shape) == w.shape[::-1] and w.shape != w.shape[::-1] else w)
    r_model.set_weights(converted)


def keras_value(t):
    return t.value if hasattr(t, "value") else t


def outputs_and_weight_grads(model, params, x, coef=None, seed=0, **kwargs):
    out = keras_value(model(x, **kwargs))
    if coef is None:
        coef = torch.tensor(np.random.RandomState(seed).randn(*out.shape).astype("float32"))
    grads = torch.autograd.grad((out * coef).sum(), params)
    return to_numpy(out), [g.numpy() for g in grads], coef


def compare(k_model, r_model, x, transpose_2d_linear=True, **kwargs):
    """Outputs and gradients with respect to every weight, Keras vs rnnkit."""
    k_params = [keras_value(w) for w in k_model.weights]
    r_params = r_model.weights
    k_out, k_grads, coef = outputs_and_weight_grads(k_model, k_params, torch.tensor(x), **kwargs)
    r_out, r_grads, _ = outputs_and_weight_grads(r_model, r_params, x, coef, **kwargs)
    assert r_out.shape == k_out.shape
    np.testing.assert_allclose(r_out, k_out, rtol=1e-5, atol=1e-5)
    for i, (g, p, kg) in enumerate(zip(r_grads, r_params, k_grads)):
        if isinstance(p, torch.nn.Parameter) and g.ndim == 2 and g.shape != kg.shape:
            g = g.T  # torch.nn.Linear.weight vs Dense kernel
        np.testing.assert_allclose(g, kg, rtol=1e-4, atol=1e-5, err_msg=f"gradient of weight {i}")
    return r_out


def keras_must_show(keras, gru_sequences=False):
    return keras.Sequential([
        keras.layers.Embedding(V, E, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True)),
        keras.layers.GRU(U2, return_sequences=gru_sequences),
        keras.layers.Dense(K),
    ])


def rnnkit_must_show(gru_sequences=False, use_fused="auto"):
    return rnnkit.Sequential([
        rnnkit.Embedding(V, E, mask_zero=True),
        rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, use_fused=use_fused)),
        rnnkit.GRU(U2, return_sequences=gru_sequences, use_fused=use_fused),
        torch.nn.Linear(U2, K),
    ])


# ------------------------------------------------------------- the oracle
@pytest.mark.parametrize("ids_name", list(IDS))
def test_embedding_bidirectional_lstm_gru_linear_matches_keras(keras, ids_name):
    """The must-show model: Embedding(mask_zero) -> Bidirectional(LSTM) -> GRU -> Linear."""
    x = IDS[ids_name]
    k_model, r_model = keras_must_show(keras), rnnkit_must_show()
    k_model(torch.tensor(x))
    copy_weights(k_model, r_model, x.shape, seed=1)
    out = compare(k_model, r_model, x)
    assert out.shape == (B, K)
    # the mask mattered: without it the numbers differ
    unmasked = rnnkit.Sequential([rnnkit.Embedding(V, E), r_model[1], r_model[2], r_model[3]])
    unmasked[0].set_weights(r_model[0].get_weights())
    assert np.abs(to_numpy(unmasked(x)) - out).max() > 1e-3


@pytest.mark.parametrize("ids_name", list(IDS))
def test_per_step_linear_after_return_sequences_gru_matches_keras(keras, ids_name):
    """GRU(return_sequences=True) then a Linear on every step (Keras: Dense on a sequence)."""
    x = IDS[ids_name]
    k_model, r_model = keras_must_show(keras, gru_sequences=True), rnnkit_must_show(gru_sequences=True)
    k_model(torch.tensor(x))
    copy_weights(k_model, r_model, x.shape, seed=2)
    out = compare(k_model, r_model, x)
    assert out.shape == (B, T, K)
    # the output mask is the padding mask: it went through the Linear (same leading dims)
    _, mask = r_model.forward_with_mask(x)
    np.testing.assert_array_equal(to_numpy(mask), x != 0)
    from keras.src.backend import get_keras_mask

    k_mask = get_keras_mask(k_model(torch.tensor(x)))
    np.testing.assert_array_equal(to_numpy(k_mask), x != 0)


def test_holes_run_on_the_fused_path_and_agree_with_the_generic_path(keras):
    """With holes the fused path runs its step loop; every path gives Keras's numbers."""
    x = IDS_HOLES
    k_model = keras_must_show(keras, gru_sequences=True)
    k_model(torch.tensor(x))
    r_auto, r_generic = rnnkit_must_show(True), rnnkit_must_show(True, use_fused=False)
    copy_weights(k_model, r_auto, x.shape, seed=3)
    r_generic.build(x.shape)
    r_generic.set_weights(r_auto.get_weights())
    emb = r_auto[0](x)
    mask = r_auto[0].compute_mask(x)
    assert rnnkit.explain(r_auto[1], emb, mask=mask).path == "fused"  # mask values never decide the path
    assert rnnkit.explain(r_auto[1], emb, mask=torch.tensor(IDS_PADDED != 0)).path == "fused"
    assert rnnkit.explain(r_generic[1], emb, mask=mask).path == "generic"
    out_auto = compare(k_model, r_auto, x)
    out_generic = compare(k_model, r_generic, x)
    np.testing.assert_allclose(out_auto, out_generic, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("holes", [False, True])
def test_masking_layer_on_float_inputs_matches_keras(keras, holes):
    rng = np.random.RandomState(4)
    x = rng.randn(B, T, E).astype("float32")
    mask = (IDS_HOLES if holes else IDS_PADDED) != 0
    x[~mask] = 0.0
    x[0, 1, 0] = 0.0  # one zero feature alone does not mask a step
    k_model = keras.Sequential([keras.layers.Masking(0.0), keras.layers.LSTM(U, return_sequences=True),
                                keras.layers.Dense(K), keras.layers.GRU(U2)])
    r_model = rnnkit.Sequential([rnnkit.Masking(0.0), rnnkit.LSTM(U, return_sequences=True),
                                 torch.nn.Linear(U, K), rnnkit.GRU(U2)])
    k_model(torch.tensor(x))
    copy_weights(k_model, r_model, x.shape, seed=5)
    compare(k_model, r_model, x)
    # the mask went through the Linear to the GRU: feeding the GRU without it changes the numbers
    seq = r_model[2](r_model[1](r_model[0](x)))
    np.testing.assert_allclose(to_numpy(r_model(x)), to_numpy(r_model[3](seq, mask=torch.tensor(mask))), rtol=1e-6)
    assert np.abs(to_numpy(r_model(x)) - to_numpy(r_model[3](seq.detach().clone()))).max() > 1e-3


@pytest.mark.filterwarnings("ignore:.*does not support masking")  # Keras, about its own output mask
def test_mask_argument_matches_keras(keras):
    """A mask given to the model (no masking layer) reaches the first recurrent layer."""
    x = np.random.RandomState(6).randn(B, T, E).astype("float32")
    mask = IDS_HOLES != 0
    k_model = keras.Sequential([keras.layers.LSTM(U, return_sequences=True), keras.layers.GRU(U2)])
    r_model = rnnkit.Sequential([rnnkit.LSTM(U, return_sequences=True), rnnkit.GRU(U2)])
    k_model(torch.tensor(x))
    copy_weights(k_model, r_model, x.shape, seed=7)
    k_out = to_numpy(k_model(torch.tensor(x), mask=torch.tensor(mask)))
    np.testing.assert_allclose(to_numpy(r_model(x, mask=mask)), k_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(r_model(x, mask=mask.astype("int32"))), k_out, rtol=1e-5, atol=1e-5)
    assert np.abs(to_numpy(r_model(x)) - k_out).max() > 1e-3  # the mask mattered


def test_nested_sequential_passes_the_mask(keras):
    x = IDS_PADDED
    k_model = keras_must_show(keras)
    k_model(torch.tensor(x))
    flat = rnnkit_must_show()
    copy_weights(k_model, flat, x.shape, seed=8)
    nested = rnnkit.Sequential([rnnkit.Sequential([flat[0], flat[1]]), flat[2], flat[3]])
    np.testing.assert_allclose(to_numpy(nested(x)), to_numpy(k_model(torch.tensor(x))), rtol=1e-5, atol=1e-5)
    _, mask = nested[0].forward_with_mask(x)
    np.testing.assert_array_equal(to_numpy(mask), x != 0)


# ------------------------------------------------------------- mask rules
class Pool(torch.nn.Module):
    """A plain module that drops the time axis."""

    def forward(self, x):
        return x.mean(1)


def test_plain_module_rule():
    """Same two leading dims: the mask passes; another leading shape: it is dropped."""
    x = IDS_PADDED
    keep = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), torch.nn.Linear(E, 3), torch.nn.Tanh()])
    _, mask = keep.forward_with_mask(x)
    np.testing.assert_array_equal(to_numpy(mask), x != 0)
    drop = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), Pool()])
    y, mask = drop.forward_with_mask(x)
    assert mask is None and y.shape == (B, E)
    flat = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), torch.nn.Flatten()])
    assert flat.forward_with_mask(x)[1] is None


def test_mask_never_read_from_tensor_attributes():
    """A Linear's output carries no _keras_mask: the next layer still gets the mask, as a value."""
    x = IDS_PADDED
    model = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), torch.nn.Linear(E, E),
                               rnnkit.LSTM(U, return_sequences=True)])
    seq = model[1](model[0](x))
    assert getattr(seq, "_keras_mask", None) is None
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(model[2](seq, mask=torch.tensor(x != 0))), rtol=1e-6)
    assert np.abs(to_numpy(model(x)) - to_numpy(model[2](seq))).max() > 1e-3


def test_compute_mask_per_layer():
    x = IDS_PADDED
    m = torch.tensor(x != 0)
    emb = rnnkit.Embedding(V, E, mask_zero=True)
    assert rnnkit.Embedding(V, E).compute_mask(x) is None
    np.testing.assert_array_equal(to_numpy(emb.compute_mask(x)), x != 0)
    assert rnnkit.LSTM(U).compute_mask(None, m) is None
    assert rnnkit.LSTM(U, return_sequences=True, go_backwards=True).compute_mask(None, m) is m
    assert rnnkit.LSTM(U, return_sequences=True, return_state=True).compute_mask(None, m) == [m, None, None]
    assert rnnkit.GRU(U, return_state=True).compute_mask(None, m) == [None, None]
    assert rnnkit.GRU(U, return_sequences=True).compute_mask(None, [m, None]) is m
    assert rnnkit.Layer().compute_mask(None, m) is None and not rnnkit.Layer().supports_masking
    layer = rnnkit.Layer()
    layer.supports_masking = True
    assert layer.compute_mask(None, m) is m
    model = rnnkit.Sequential([emb, rnnkit.LSTM(U, return_sequences=True)])
    np.testing.assert_array_equal(to_numpy(model.compute_mask(x)), x != 0)


def test_compute_mask_agrees_with_keras(keras):
    m = torch.tensor(IDS_HOLES != 0)
    for kwargs, expected in [({"return_sequences": True}, m), ({}, None)]:
        k = keras.layers.LSTM(U, **kwargs).compute_mask(None, m)
        r = rnnkit.LSTM(U, **kwargs).compute_mask(None, m)
        assert (k is None) == (r is None) == (expected is None) and (r is None or torch.equal(r, k))
    k = keras.layers.GRU(U, return_sequences=True, return_state=True).compute_mask(None, m)
    r = rnnkit.GRU(U, return_sequences=True, return_state=True).compute_mask(None, m)
    assert len(k) == len(r) and torch.equal(r[0], k[0]) and r[1] is None and k[1] is None


def test_layer_without_masking_support_drops_the_mask_with_a_warning():
    class Scale(rnnkit.Layer):
        def call(self, x):
            return 2 * x

    model = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), Scale()])
    with pytest.warns(UserWarning, match="does not support masking"):
        _, mask = model.forward_with_mask(IDS_PADDED)
    assert mask is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnnkit.Sequential([rnnkit.Embedding(V, E), Scale()])(IDS_PADDED)  # no mask, no warning


def test_layer_taking_mask_and_training_gets_them():
    seen = {}

    class Probe(rnnkit.Layer):
        def call(self, x, mask=None, training=None):
            seen.update(mask=mask, training=training)
            return x

        def compute_mask(self, inputs, mask=None):
            return mask

    model = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True), Probe()])
    model(IDS_PADDED, training=True)
    np.testing.assert_array_equal(to_numpy(seen["mask"]), IDS_PADDED != 0)
    assert seen["training"] is True
    model(IDS_PADDED)
    assert seen["training"] is None  # not passed when not given
    rnnkit.Sequential([rnnkit.Embedding(V, E), Probe()])(IDS_PADDED)
    assert seen["mask"] is None


# ------------------------------------------------------------ container
def test_add_pop_index_len_iter():
    model = rnnkit.Sequential()
    assert len(model) == 0
    emb, lstm, lin = rnnkit.Embedding(V, E), rnnkit.LSTM(U), torch.nn.Linear(U, K)
    model.add(emb)
    model.add(lstm)
    model.add(lin)
    assert len(model) == 3 and model[0] is emb and model[-1] is lin and model[1:] == [lstm, lin]
    assert list(model) == [emb, lstm, lin]
    assert model(IDS_PADDED).shape == (B, K)
    assert model.pop() is lin and len(model) == 2
    assert model(IDS_PADDED).shape == (B, U)
    with pytest.raises(TypeError, match="torch modules"):
        model.add("dense")


def test_weights_losses_and_parameters():
    model = rnnkit.Sequential([rnnkit.Embedding(V, E, embeddings_regularizer="l2"),
                               rnnkit.GRU(U, kernel_regularizer="l1"), torch.nn.Linear(U, K)])
    model.build((None, T))
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(V, E), (E, 3 * U), (U, 3 * U), (2, 3 * U), (K, U), (K,)]
    assert len(model.losses) == 2
    assert len(list(model.parameters())) == 6
    model.trainable = False
    assert not any(p.requires_grad for p in model.parameters())


def test_build_and_output_shape():
    model = rnnkit_must_show(gru_sequences=True)
    assert model.compute_output_shape((None, T)) == (None, T, K)
    model.build((None, T))
    assert all(layer.built for layer in model if isinstance(layer, rnnkit.Layer))
    assert model(IDS_PADDED).shape == (B, T, K)


def test_training_backward_pass_and_step():
    model = rnnkit_must_show()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.randn(B, K)
    losses = []
    for _ in range(3):
        loss = ((model(IDS_PADDED) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_config_round_trip():
    model = rnnkit.Sequential([rnnkit.Embedding(V, E, mask_zero=True),
                               rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True)),
                               rnnkit.GRU(U2, go_backwards=True)], name="seq")
    config = model.get_config()
    clone = rnnkit.Sequential.from_config(config)
    assert clone.name == "seq" and [type(x) for x in clone] == [type(x) for x in model]
    clone.build((None, T))
    model.build((None, T))
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(to_numpy(clone(IDS_PADDED)), to_numpy(model(IDS_PADDED)), rtol=1e-6)
    nested = rnnkit.Sequential([rnnkit.Sequential([rnnkit.Masking()]), rnnkit.LSTM(U)])
    assert type(rnnkit.Sequential.from_config(nested.get_config())[0]) is rnnkit.Sequential


def test_config_with_plain_module_is_an_error():
    model = rnnkit.Sequential([rnnkit.GRU(U), torch.nn.Linear(U, K)])
    with pytest.raises(TypeError, match="layer 1 is a plain torch.nn.modules.linear.Linear"):
        model.get_config()


def test_keras_sequential_config_loads(keras):
    k_model = keras.Sequential([keras.layers.Embedding(V, E, mask_zero=True), keras.layers.Masking(0.0)])
    config = k_model.get_config()
    layers = [{"class_name": s["class_name"], "config": s["config"]} for s in config["layers"]]
    model = rnnkit.Sequential.from_config(dict(config, layers=layers))
    assert isinstance(model[0], rnnkit.Embedding) and model[0].mask_zero
    assert isinstance(model[1], rnnkit.Masking)


@pytest.mark.parametrize("how", ["masking", "embedding", "mask-argument"])
def test_compiled_sequential_carries_the_mask(how):
    """Under torch.compile (fullgraph) the mask travels from layer to layer as in eager calls (the containers'
    question whether a layer takes ``mask`` is answered as dynamo traces it, not from the weak cache)."""
    torch.manual_seed(0)
    if how == "embedding":
        model = rnnkit.Sequential([rnnkit.Embedding(9, 4, mask_zero=True), rnnkit.GRU(3, return_sequences=True),
                                   rnnkit.LSTM(2)])
        x = torch.tensor([[1, 2, 3, 0, 0], [4, 0, 5, 6, 7]])
        kwargs = {}
    else:
        layers = [rnnkit.GRU(3, return_sequences=True), rnnkit.LSTM(2)]
        model = rnnkit.Sequential(([rnnkit.Masking(0.0)] if how == "masking" else []) + layers)
        x = torch.randn(2, 5, 4)
        x[0, 3:] = 0.0
        kwargs = {"mask": torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=torch.bool)} if how != "masking" \
            else {}
    want = model(x, **kwargs)
    got = torch.compile(model, fullgraph=True, backend="eager")(x, **kwargs)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    if how != "embedding":  # (the mask matters: the same recurrent layers without it give other numbers)
        unmasked = rnnkit.Sequential(list(model.layers)[-2:])(x)
        assert float((want - unmasked).detach().abs().max()) > 1e-3
