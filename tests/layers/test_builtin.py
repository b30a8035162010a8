"""``SimpleRNN``, ``GRU`` and ``LSTM``: Keras 3 (torch backend) as the oracle,
then dropout, config round trips and error messages.

Every oracle test copies the Keras layer's weights into rnnkit with
``keras_layer.get_weights()`` -> ``rnnkit_layer.set_weights()`` and compares
outputs (1e-5) and the gradients of the sum of the first output with respect
to the input and to every weight (1e-4). Each rnnkit layer is
run twice, with ``use_fused="auto"`` (fused kernel or hoisted loop, whichever
the call allows) and with ``use_fused=False`` (the generic loop): the numbers
must not depend on the path.
"""

import inspect
import itertools
import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, keras_output_and_grad, to_numpy

import rnnkit

B, T, F, U = 3, 6, 4, 5

# name -> (rnnkit class, Keras class name, extra constructor arguments)
KINDS = {
    "simple_rnn": (rnnkit.SimpleRNN, "SimpleRNN", {}),
    "gru": (rnnkit.GRU, "GRU", {}),
    "gru_reset_before": (rnnkit.GRU, "GRU", {"reset_after": False}),
    "lstm": (rnnkit.LSTM, "LSTM", {}),
}
N_STATES = {"simple_rnn": 1, "gru": 1, "gru_reset_before": 1, "lstm": 2}
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}
PATHS = ("auto", False)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matmuls on 2 busy cores: torch's 2-thread kernels stall waiting for a
    descheduled worker (40 ms for a (3, 5) @ (5, 20) product); one thread runs
    this module 3x faster. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _x(seed=0, shape=(B, T, F), dtype="float32"):
    return np.random.RandomState(seed).randn(*shape).astype(dtype)


def _random_weights(shapes, dtype, seed=1):
    """Weights scaled so that every gate sees O(1) pre-activations (not saturated)."""
    rng = np.random.RandomState(seed)
    out = []
    for i, shape in enumerate(shapes):
        if i == 0:  # kernel
            w = rng.randn(*shape) / np.sqrt(shape[0])
        elif i == 1:  # recurrent kernel
            w = 0.6 * rng.randn(*shape) / np.sqrt(shape[0])
        else:  # bias
            w = 0.3 * rng.randn(*shape)
        out.append(w.astype(dtype))
    return out


def _make(keras, kind, build_shape=(B, T, F), dtype="float32", weights="random", **kwargs):
    """A built Keras layer and rnnkit layers (one per path) with the Keras weights."""
    cls, kname, extra = KINDS[kind]
    kw = dict(extra, **kwargs)
    if dtype != "float32":
        kw["dtype"] = dtype
    klayer = getattr(keras.layers, kname)(U, **kw)
    klayer.build(build_shape)
    if weights == "random":
        klayer.set_weights(_random_weights([w.shape for w in klayer.get_weights()], dtype))
    rlayers = []
    for path in PATHS:
        r = cls(U, use_fused=path, **kw)
        r.build(build_shape)
        r.set_weights(klayer.get_weights())
        rlayers.append(r)
    return klayer, rlayers


def _kmask(mask):
    return {} if mask is None else {"mask": torch.tensor(mask)}


def _rmask(mask):
    return {} if mask is None else {"mask": mask}


def _outputs_and_grads(layer, x, weights, **call_kwargs):
    """Outputs (numpy list) and d(sum of first output)/d(input, *weights)."""
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt, **call_kwargs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    grads = torch.autograd.grad(outs[0].sum(), [xt] + list(weights))
    return [to_numpy(o) for o in outs], [g.numpy() for g in grads]


def _assert_same(klayer, rlayers, x, mask=None, atol=1e-5, gatol=1e-4, **call_kwargs):
    """Outputs within ``atol``; gradients w.r.t. the input and every weight within ``gatol``."""
    k_outs, k_grads = _outputs_and_grads(klayer, x, [w.value for w in klayer.weights], **_kmask(mask),
                                         **call_kwargs)
    assert np.abs(k_outs[0]).max() > 0.05  # the oracle computed real numbers
    for r in rlayers:
        r_outs, r_grads = _outputs_and_grads(r, x, r.weights, **_rmask(mask), **call_kwargs)
        assert len(r_outs) == len(k_outs)
        for a, b in zip(r_outs, k_outs):
            assert a.shape == b.shape
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, atol=atol, rtol=atol, err_msg=f"use_fused={r.use_fused}")
        assert len(r_grads) == len(k_grads)
        for i, (a, b) in enumerate(zip(r_grads, k_grads)):
            what = "input" if i == 0 else f"weight {i - 1}"
            np.testing.assert_allclose(a, b, atol=gatol, rtol=gatol, err_msg=f"{what}, use_fused={r.use_fused}")
    return k_outs


# ------------------------------------------------------------------ the sweep
GRID = [
    g
    for g in itertools.product(
        sorted(KINDS),
        [False, True],  # return_sequences
        [False, True],  # return_state
        [False, True],  # go_backwards
        sorted(MASKS),
        [False, True],  # zero_output_for_mask
    )
    if not (g[4] == "none" and g[5])  # zero_output_for_mask only matters with a mask
]


@pytest.mark.parametrize("kind,return_sequences,return_state,go_backwards,mask_name,zero_output", GRID)
def test_matches_keras(keras, kind, return_sequences, return_state, go_backwards, mask_name, zero_output):
    klayer, rlayers = _make(
        keras,
        kind,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
    )
    k_outs = _assert_same(klayer, rlayers, _x(), MASKS[mask_name])
    assert len(k_outs) == (1 + N_STATES[kind] if return_state else 1)
    assert k_outs[0].shape == ((B, T, U) if return_sequences else (B, U))


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_initial_state_matches_keras(keras, kind, mask_name):
    klayer, rlayers = _make(keras, kind, return_sequences=True, return_state=True)
    rng = np.random.RandomState(7)
    states = [rng.randn(B, U).astype("float32") for _ in range(N_STATES[kind])]
    k_outs = _assert_same(klayer, rlayers, _x(), MASKS[mask_name], initial_state=states)
    # the given states matter: the oracle's final states differ from a zero-state run
    k_zero, _ = keras_output_and_grad(klayer, _x(), **_kmask(MASKS[mask_name]))
    assert not np.allclose(k_outs[1], k_zero[1], atol=1e-3)


# row 0 fully masked, row 1 right-padded, row 2 left-padded (leading padding)
MASK_EDGES = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=bool)


@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_edge_masks_match_keras(keras, kind, go_backwards, zero_output):
    klayer, rlayers = _make(keras, kind, return_sequences=True, return_state=True, go_backwards=go_backwards,
                            zero_output_for_mask=zero_output)
    rng = np.random.RandomState(8)
    states = [rng.randn(B, U).astype("float32") for _ in range(N_STATES[kind])]
    k_outs = _assert_same(klayer, rlayers, _x(), MASK_EDGES, initial_state=states)
    # the fully masked row keeps its initial states and outputs zeros
    for k_state, s in zip(k_outs[1:], states):
        np.testing.assert_allclose(k_state[0], s[0], atol=1e-6)
    np.testing.assert_array_equal(k_outs[0][0], np.zeros((T, U), "float32"))


@pytest.mark.parametrize("mask_name", ["none", "holes"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unroll_matches_keras(keras, kind, mask_name):
    klayer, rlayers = _make(keras, kind, unroll=True, return_sequences=True, return_state=True)
    _assert_same(klayer, rlayers, _x(), MASKS[mask_name])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful_go_backwards_matches_keras(keras, kind):
    klayer, rlayers = _make(keras, kind, stateful=True, go_backwards=True, return_sequences=True)
    k = [to_numpy(klayer(torch.tensor(_x(i)))) for i in (1, 2)]
    for r in rlayers:
        for i, expected in zip((1, 2), k):
            np.testing.assert_allclose(to_numpy(r(_x(i))), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float64_matches_keras(keras, monkeypatch, kind, mask_name, go_backwards):
    # Keras 3 on torch demotes float64 results of its ops (ops.matmul, ...) to
    # float32, "aligned with JAX's default" (dtypes.BIT64_TO_BIT32_DTYPE): its
    # float64 step-by-step loop is only float32-accurate (~1e-7). Lift that
    # for this test so that the oracle really computes in float64.
    from keras.src.backend.common import dtypes as keras_dtypes

    monkeypatch.setitem(keras_dtypes.BIT64_TO_BIT32_DTYPE, "float64", "float64")
    klayer, rlayers = _make(
        keras, kind, dtype="float64", return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    assert all(r.dtype == torch.float64 for r in rlayers)
    assert all(w.dtype == np.float64 for w in rlayers[0].get_weights())
    _assert_same(klayer, rlayers, _x(dtype="float64"), MASKS[mask_name], atol=1e-10, gatol=1e-10)


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_use_bias_false_matches_keras(keras, kind, mask_name):
    klayer, rlayers = _make(keras, kind, use_bias=False, return_sequences=True, return_state=True)
    assert len(rlayers[0].get_weights()) == 2
    assert rlayers[0].cell.bias is None
    _assert_same(klayer, rlayers, _x(), MASKS[mask_name])


ACTIVATIONS = [
    ("simple_rnn", {"activation": "relu"}),  # fused rnn_relu kernel
    ("simple_rnn", {"activation": "sigmoid"}),
    ("gru", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("gru", {"activation": "softsign", "recurrent_activation": "sigmoid"}),
    ("gru_reset_before", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", {"activation": "tanh", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", {"activation": "elu", "recurrent_activation": "sigmoid"}),
]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("kind,acts", ACTIVATIONS, ids=[f"{k}-{'-'.join(a.values())}" for k, a in ACTIVATIONS])
def test_activations_match_keras(keras, kind, acts, mask_name, go_backwards):
    klayer, rlayers = _make(
        keras, kind, return_sequences=True, return_state=True, go_backwards=go_backwards, **acts
    )
    _assert_same(klayer, rlayers, 2.0 * _x(), MASKS[mask_name])


@pytest.mark.parametrize("bias_initializer", ["zeros", "ones"])
@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_lstm_unit_forget_bias_matches_keras(keras, unit_forget_bias, bias_initializer):
    """rnnkit's own bias initialisation equals Keras's; outputs then agree with only the kernels copied."""
    klayer = keras.layers.LSTM(U, unit_forget_bias=unit_forget_bias, bias_initializer=bias_initializer,
                               return_sequences=True)
    klayer.build((B, T, F))
    rlayer = rnnkit.LSTM(U, unit_forget_bias=unit_forget_bias, bias_initializer=bias_initializer,
                         return_sequences=True, input_shape=(T, F))
    k_bias = klayer.get_weights()[2]
    r_bias = rlayer.get_weights()[2]
    np.testing.assert_array_equal(r_bias, k_bias)
    expected = np.full(4 * U, 0.0 if bias_initializer == "zeros" else 1.0, dtype="float32")
    if unit_forget_bias:
        expected[U : 2 * U] = 1.0
    np.testing.assert_array_equal(r_bias, expected)
    kernels = _random_weights([w.shape for w in klayer.get_weights()[:2]], "float32")
    klayer.set_weights(kernels + [k_bias])
    rlayer.set_weights(kernels + [r_bias])
    _assert_same(klayer, [rlayer], _x(), MASK_HOLES)


@pytest.mark.parametrize("mask_name", ["none", "holes"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful_matches_keras(keras, kind, mask_name):
    klayer, rlayers = _make(keras, kind, stateful=True, return_sequences=True, return_state=True)
    mask = MASKS[mask_name]
    x1, x2 = _x(1), _x(2)

    def run(layer, x, is_keras):
        out = layer(torch.tensor(x), **(_kmask(mask) if is_keras else _rmask(mask)))
        return [to_numpy(o) for o in out]

    k1, k2, k_more = run(klayer, x1, True), run(klayer, x2, True), run(klayer, x1, True)
    assert not np.allclose(k_more[0], k1[0], atol=1e-3)  # the oracle really carries states
    klayer.reset_states()
    k3 = run(klayer, x1, True)
    np.testing.assert_allclose(k3[0], k1[0], atol=1e-6)  # ... and really reset them
    for r in rlayers:
        r1, r2, r_more = run(r, x1, False), run(r, x2, False), run(r, x1, False)
        for a, b in zip(r1 + r2 + r_more, k1 + k2 + k_more):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
        # the stored states are the returned final states, detached
        assert len(r.states) == N_STATES[kind]
        for stored, returned in zip(r.states, r_more[1:]):
            assert not stored.requires_grad
            np.testing.assert_array_equal(to_numpy(stored), returned)
        r.reset_states()
        assert all(float(s.abs().max()) == 0.0 for s in r.states)
        r3 = run(r, x1, False)
        for a, b in zip(r3, k3):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful_reset_states_to_values_equals_initial_state(keras, kind):
    """``reset_states(arrays)`` then a call == Keras called with ``initial_state=arrays``."""
    klayer, (rlayer, _) = _make(keras, kind, return_sequences=True, return_state=True)
    stateful = KINDS[kind][0](U, stateful=True, return_sequences=True, return_state=True, **KINDS[kind][2])
    stateful.build((B, T, F))
    stateful.set_weights(klayer.get_weights())
    rng = np.random.RandomState(3)
    states = [rng.randn(B, U).astype("float32") for _ in range(N_STATES[kind])]
    stateful.reset_states(states)
    k = klayer(torch.tensor(_x()), initial_state=states)
    r = stateful(_x())
    for a, b in zip(r, k):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layer_from_keras_config(keras, kind):
    """A Keras layer's get_config() builds the same rnnkit layer."""
    cls, kname, extra = KINDS[kind]
    kw = dict(extra, return_sequences=True, go_backwards=True, dropout=0.1)
    if kind != "simple_rnn":
        kw["recurrent_activation"] = "hard_sigmoid"
    klayer = getattr(keras.layers, kname)(U, **kw)
    klayer.build((B, T, F))
    klayer.set_weights(_random_weights([w.shape for w in klayer.get_weights()], "float32"))
    rlayer = cls.from_config(klayer.get_config())
    rlayer.build((B, T, F))
    rlayer.set_weights(klayer.get_weights())
    rlayer.eval()
    assert rlayer.go_backwards and rlayer.dropout == 0.1
    _assert_same(klayer, [rlayer], _x(), MASK_HOLES, training=False)


# -------------------------------------------------------------------- dropout
def _dropout_layer(kind, use_fused="auto", seed=11, **kwargs):
    cls, _, extra = KINDS[kind]
    layer = cls(U, return_sequences=True, use_fused=use_fused, seed=seed, **dict(extra, **kwargs))
    layer.build((8, T, 6))
    return layer


def _dropped_features(layer, x, **call_kwargs):
    """Boolean (batch, time, features): True where d(outputs)/d(x) is exactly zero.

    A non-zero initial state makes every gate matter at every step (from a zero
    state the LSTM forget gate, or a reset_after=False GRU's reset gate, has no
    effect on step 0), so a feature has zero gradient exactly where the input
    dropout dropped it (from every gate, with per-gate masks).
    """
    xt = torch.tensor(x, requires_grad=True)
    rng = np.random.RandomState(99)
    states = [rng.randn(x.shape[0], U).astype("float32") for _ in layer.state_size]
    out = layer(xt, initial_state=states, **call_kwargs)
    (g,) = torch.autograd.grad(out.sum(), xt)
    return (g == 0).numpy()


@pytest.mark.parametrize("use_fused", PATHS)
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_dropout_identity_kernel_drops_same_features_every_step(activation, use_fused):
    """Identity kernel, zero recurrence, no bias: outputs are x * mask / keep."""
    layer = rnnkit.SimpleRNN(
        6, activation=activation, use_bias=False, kernel_initializer="identity", recurrent_initializer="zeros",
        dropout=0.5, return_sequences=True, seed=5, use_fused=use_fused,
    )
    x = np.ones((8, T, 6), dtype="float32")
    out = layer(x, training=True).detach().numpy()
    assert set(np.unique(out)) == {0.0, 2.0}  # inverted dropout: kept features scaled by 1 / 0.5
    for t in range(T):
        np.testing.assert_array_equal(out[:, t], out[:, 0])
    assert 0.25 < (out[:, 0] == 0).mean() < 0.75
    # a new mask on the next call
    out2 = layer(x, training=True).detach().numpy()
    assert (out2[:, 0] != out[:, 0]).any()
    for t in range(T):
        np.testing.assert_array_equal(out2[:, t], out2[:, 0])


@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
@pytest.mark.parametrize("use_fused", PATHS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_same_input_mask_every_step(kind, use_fused, recurrent_dropout):
    layer = _dropout_layer(kind, use_fused, dropout=0.5, recurrent_dropout=recurrent_dropout)
    x = _x(shape=(8, T, 6))
    dropped = _dropped_features(layer, x, training=True)
    for t in range(T):
        np.testing.assert_array_equal(dropped[:, t], dropped[:, 0])
    assert dropped[:, 0].any() and not dropped[:, 0].all()
    dropped2 = _dropped_features(layer, x, training=True)
    assert (dropped2[:, 0] != dropped[:, 0]).any()  # a new mask on the next call
    for t in range(T):
        np.testing.assert_array_equal(dropped2[:, t], dropped2[:, 0])
    assert not _dropped_features(layer, x, training=False).any()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_dropout_outside_training(kind):
    ref = _dropout_layer(kind)
    layer = _dropout_layer(kind, dropout=0.5, recurrent_dropout=0.5)
    layer.set_weights(ref.get_weights())
    x = _x(shape=(8, T, 6))
    expected = ref(x).detach().numpy()
    np.testing.assert_allclose(layer(x, training=False).detach().numpy(), expected, atol=1e-6)
    layer.eval()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-6)
    layer.train()  # training=None follows the module's mode
    assert not np.allclose(layer(x).detach().numpy(), expected, atol=1e-3)
    assert not np.allclose(layer(x, training=True).detach().numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("use_fused", PATHS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_dropout_only_in_training(kind, use_fused):
    ref = _dropout_layer(kind, use_fused)
    layer = _dropout_layer(kind, use_fused, recurrent_dropout=0.5)
    layer.set_weights(ref.get_weights())
    x = _x(shape=(8, T, 6))
    expected = ref(x).detach().numpy()
    np.testing.assert_allclose(layer(x, training=False).detach().numpy(), expected, atol=1e-6)
    out = layer(x, training=True).detach().numpy()
    # the zero initial state is unaffected by a mask: step 0 is exact, later steps are not
    np.testing.assert_allclose(out[:, 0], expected[:, 0], atol=1e-6)
    assert not np.allclose(out[:, 1:], expected[:, 1:], atol=1e-3)


def test_recurrent_dropout_mask_same_every_step():
    """Zero kernel, identity recurrence, linear: h_t = h_{t-1} * m / keep = m * 2**t from h_0 = 1."""
    layer = rnnkit.SimpleRNN(
        6, activation="linear", use_bias=False, kernel_initializer="zeros", recurrent_initializer="identity",
        recurrent_dropout=0.5, return_sequences=True, seed=2,
    )
    x = np.zeros((8, 4, 3), dtype="float32")
    out = layer(x, initial_state=np.ones((8, 6), "float32"), training=True).detach().numpy()
    m = out[:, 0] / 2.0
    assert set(np.unique(m)) == {0.0, 1.0}
    for t in range(4):
        np.testing.assert_array_equal(out[:, t], m * 2.0 ** (t + 1))


@pytest.mark.parametrize("use_fused", PATHS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_seed_reproducible(kind, use_fused):
    x = _x(shape=(8, T, 6))
    a = _dropout_layer(kind, use_fused, seed=123, dropout=0.5, recurrent_dropout=0.25)
    b = _dropout_layer(kind, use_fused, seed=123, dropout=0.5, recurrent_dropout=0.25)
    c = _dropout_layer(kind, use_fused, seed=124, dropout=0.5, recurrent_dropout=0.25)
    b.set_weights(a.get_weights())
    c.set_weights(a.get_weights())
    a1, a2 = (a(x, training=True).detach().numpy() for _ in range(2))
    b1, b2 = (b(x, training=True).detach().numpy() for _ in range(2))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.allclose(a1, a2, atol=1e-3)
    assert not np.allclose(c(x, training=True).detach().numpy(), a1, atol=1e-3)


@pytest.mark.parametrize("mask_name", ["none", "right_padded", "holes"])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_numbers_do_not_depend_on_path(kind, recurrent_dropout, mask_name):
    """Same seed, same weights: the fused / hoisted path and the generic loop draw the same masks."""
    x = _x(shape=(B, T, 6))
    fast = _dropout_layer(kind, "auto", seed=21, dropout=0.5, recurrent_dropout=recurrent_dropout)
    slow = _dropout_layer(kind, False, seed=21, dropout=0.5, recurrent_dropout=recurrent_dropout)
    slow.set_weights(fast.get_weights())
    ref = _dropout_layer(kind, False)
    ref.set_weights(fast.get_weights())
    mask = MASKS[mask_name]
    for _ in range(2):
        a = fast(x, mask=mask, training=True).detach().numpy()
        b = slow(x, mask=mask, training=True).detach().numpy()
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
        assert not np.allclose(a, ref(x, mask=mask).detach().numpy(), atol=1e-3)  # dropout did act


@pytest.mark.parametrize("arg", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_out_of_range(kind, arg, value):
    cls, _, extra = KINDS[kind]
    with pytest.raises(ValueError, match=rf"{arg} must be in \[0, 1\), got {value}"):
        cls(U, **{arg: value}, **extra)


# --------------------------------------------------------------------- config
def _rich_kwargs(kind):
    kw = dict(
        KINDS[kind][2],
        activation="softsign",
        use_bias=True,
        kernel_initializer=rnnkit.engine.initializers.RandomNormal(stddev=0.3, seed=1),
        recurrent_initializer=rnnkit.engine.initializers.Orthogonal(gain=0.5, seed=2),
        bias_initializer=rnnkit.engine.initializers.Constant(0.1),
        kernel_regularizer="l2",
        recurrent_regularizer=rnnkit.engine.regularizers.L1(0.02),
        bias_constraint="non_neg",
        dropout=0.25,
        recurrent_dropout=0.125,
        seed=9,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        zero_output_for_mask=True,
        name=f"my_{kind}",
    )
    if kind != "simple_rnn":
        kw["recurrent_activation"] = "hard_sigmoid"
    if kind == "lstm":
        kw["unit_forget_bias"] = False
    return kw


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_config_round_trip(kind):
    cls = KINDS[kind][0]
    layer = cls(U, **_rich_kwargs(kind))
    layer.build((B, T, F))
    config = layer.get_config()
    text = json.dumps(config)  # JSON-able
    clone = cls.from_config(json.loads(text))
    assert type(clone) is cls
    assert clone.get_config() == config
    clone.build((B, T, F))
    clone.set_weights(layer.get_weights())
    x = _x()
    for training in (False, True):  # same seed: the same dropout masks too
        a = layer(x, mask=MASK_HOLES, training=training)
        b = clone(x, mask=MASK_HOLES, training=training)
        assert len(a) == len(b) == 1 + N_STATES[kind]
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u.detach().numpy(), v.detach().numpy())
    assert [float(p.detach()) for p in clone.losses] == pytest.approx([float(p.detach()) for p in layer.losses])
    assert len(layer.losses) == 2


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_config_keys_match_keras(keras, kind):
    cls, kname, extra = KINDS[kind]
    kw = {k: v for k, v in _rich_kwargs(kind).items() if not k.endswith(("initializer", "regularizer", "constraint"))}
    kcfg = getattr(keras.layers, kname)(U, **kw).get_config()
    rcfg = cls(U, **kw).get_config()
    cell_args = set(inspect.signature(getattr(keras.layers, kname + "Cell").__init__).parameters) - {"self", "kwargs"}
    rnn_args = {"return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask"}
    # every cell argument Keras serializes, rnnkit serializes; and rnnkit serializes all of them
    # (Keras 3's SimpleRNN forgets `seed`)
    assert set(kcfg) & cell_args <= set(rcfg)
    assert cell_args <= set(rcfg)
    assert rnn_args <= set(kcfg) and rnn_args <= set(rcfg)
    for key in sorted(set(kcfg) & (cell_args | rnn_args | {"name", "trainable"})):
        if key.endswith(("initializer", "regularizer", "constraint")):
            continue
        assert rcfg[key] == kcfg[key], key
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
        assert rcfg[key]["class_name"] == kcfg[key]["class_name"]
        assert rcfg[key]["config"] == kcfg[key]["config"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_config_regularizers_and_initializers_like_keras(keras, kind):
    cls, kname, extra = KINDS[kind]
    kw = dict(extra, kernel_initializer="he_normal", recurrent_initializer="identity",
              bias_initializer="ones", kernel_regularizer="l2", recurrent_regularizer="l1",
              bias_constraint="non_neg")
    kcfg = getattr(keras.layers, kname)(U, **kw).get_config()
    rcfg = cls(U, **kw).get_config()
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                "kernel_regularizer", "recurrent_regularizer", "bias_constraint"):
        assert rcfg[key]["class_name"] == kcfg[key]["class_name"], key
        # Keras 3's Identity initializer forgets its `gain` in get_config: rnnkit may say more
        assert set(kcfg[key]["config"]) <= set(rcfg[key]["config"]), key
        for name, value in kcfg[key]["config"].items():
            assert rcfg[key]["config"][name] == pytest.approx(value), (key, name)
    assert rcfg["recurrent_initializer"]["config"] == {"gain": 1.0}


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("cls", [rnnkit.SimpleRNN, rnnkit.GRU, rnnkit.LSTM, rnnkit.SimpleRNNCell,
                                 rnnkit.GRUCell, rnnkit.LSTMCell])
def test_unknown_constructor_argument(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: unexpected keyword argument\(s\) \['bogus_arg'\]"):
        cls(U, bogus_arg=1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wrong_input_rank(kind):
    layer = KINDS[kind][0](U)
    with pytest.raises(ValueError, match=r"rank 3 or more .*\(4, 6\)"):
        layer(np.zeros((4, 6), "float32"))
    layer(_x())  # built now
    with pytest.raises(ValueError, match=r"rank 3 or more .*got shape \(3, 4\)"):
        layer(np.zeros((3, 4), "float32"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_feature_size_changed_after_build(kind):
    layer = KINDS[kind][0](U)
    layer(_x())
    with pytest.raises(ValueError, match=r"expected features of shape \(4,\).*features \(7,\)"):
        layer(_x(shape=(B, T, 7)))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mask_errors(kind):
    layer = KINDS[kind][0](U)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, timesteps\) = \(3, 6\), got \(3, 5\)"):
        layer(_x(), mask=np.ones((B, T - 1), bool))
    with pytest.raises(ValueError, match=r"mask must have shape .* got \(3, 6, 1\)"):
        layer(_x(), mask=np.ones((B, T, 1), bool))
    with pytest.raises(TypeError, match=r"mask must be boolean .*float32"):
        layer(_x(), mask=torch.ones(B, T))
    with pytest.raises(TypeError, match=r"mask must be boolean .*float64"):
        layer(_x(), mask=np.ones((B, T)))
    # integer 0/1 masks are accepted, as booleans
    a = layer(_x(), mask=MASK_HOLES.astype("int64"))
    b = layer(_x(), mask=MASK_HOLES)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_initial_state_errors(kind):
    layer = KINDS[kind][0](U)
    n = N_STATES[kind]
    good = [np.zeros((B, U), "float32")] * n
    layer(_x(), initial_state=good)
    with pytest.raises(ValueError, match=rf"initial_state must hold {n} state tensor\(s\).*got {n + 1}"):
        layer(_x(), initial_state=good + [np.zeros((B, U), "float32")])
    if n == 2:
        with pytest.raises(ValueError, match=r"initial_state must hold 2 state tensor\(s\).*got 1"):
            layer(_x(), initial_state=[np.zeros((B, U), "float32")])
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape \(3, 5\), got \(3, 4\)"):
        layer(_x(), initial_state=[np.zeros((B, U - 1), "float32")] + good[1:])
    with pytest.raises(ValueError, match=rf"initial_state\[{n - 1}\] must have shape \(3, 5\), got \(2, 5\)"):
        layer(_x(), initial_state=good[:-1] + [np.zeros((B - 1, U), "float32")])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful_other_batch_size(kind):
    layer = KINDS[kind][0](U, stateful=True, **KINDS[kind][2])
    layer(_x())
    with pytest.raises(ValueError, match=r"states for batch size 3, got inputs with batch size 2"):
        layer(_x(shape=(2, T, F)))
    with pytest.raises(ValueError, match=r"states for batch size 3, got inputs with batch size 5"):
        layer(_x(shape=(5, T, F)))
    layer(_x())  # the right batch size still works


def test_stateful_reset_states_then_other_batch_size():
    """The batch-size error says "call reset_states() to start over with another
    batch size"; that advice must work, and give a fresh layer's numbers."""
    layer = rnnkit.LSTM(U, stateful=True, return_sequences=True)
    layer(_x())
    with pytest.raises(ValueError, match=r"call reset_states\(\) to start over with another batch size"):
        layer(_x(shape=(2, T, F)))
    layer.reset_states()
    out = layer(_x(shape=(2, T, F)))
    fresh = rnnkit.LSTM(U, stateful=True, return_sequences=True)
    fresh.build((2, T, F))
    fresh.set_weights(layer.get_weights())
    np.testing.assert_array_equal(out.detach().numpy(), fresh(_x(shape=(2, T, F))).detach().numpy())


@pytest.mark.parametrize(
    "use_fused",
    ["auto", False],
)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_zero_timesteps_clear_error(kind, use_fused):
    layer = KINDS[kind][0](U, use_fused=use_fused, **KINDS[kind][2])
    with pytest.raises(ValueError, match=r"0 timesteps"):
        layer(np.zeros((B, 0, F), "float32"))


@pytest.mark.parametrize("arg", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unknown_activation(kind, arg):
    if kind == "simple_rnn" and arg == "recurrent_activation":
        with pytest.raises(TypeError, match=r"SimpleRNN: unexpected keyword argument\(s\) \['recurrent_activation'\]"):
            rnnkit.SimpleRNN(U, recurrent_activation="sigmoid")
        return
    with pytest.raises(ValueError, match=r"Unknown activation 'tanhh'"):
        KINDS[kind][0](U, **{arg: "tanhh"})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_set_weights_wrong_shapes(kind):
    layer = KINDS[kind][0](U, **KINDS[kind][2])
    layer.build((B, T, F))
    weights = layer.get_weights()
    with pytest.raises(ValueError, match=rf"set_weights array 0 has shape \(5, {weights[0].shape[1]}\), "
                                         rf"expected \(4, {weights[0].shape[1]}\)"):
        layer.set_weights([np.zeros((F + 1, weights[0].shape[1]), "float32")] + weights[1:])
    bad_bias = np.zeros(weights[2].shape[-1] + 1, "float32")
    with pytest.raises(ValueError, match=r"set_weights array 2 has shape"):
        layer.set_weights(weights[:2] + [bad_bias])
    with pytest.raises(ValueError, match=r"set_weights expected 3 arrays .* got 2"):
        layer.set_weights(weights[:2])
    # nothing was half-written
    for a, b in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
