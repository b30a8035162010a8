"""``Bidirectional`` with Keras 3's ``keras.layers.Bidirectional`` (torch backend) as the oracle.

Each case builds the Keras wrapper, gives it random weights, copies them with
``keras_layer.get_weights()`` -> ``rnnkit_layer.set_weights()`` (rnnkit built
with ``layer.build(x.shape)``) and compares every returned tensor (1e-5) and the
input gradient of a random linear functional of all of them (1e-4).
"""

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit
from rnnkit.core.tree import flatten

B, T, F, U = 3, 6, 4, 3
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}
KINDS = ["lstm", "gru", "simple_rnn", "stacked"]
N_STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1, "stacked": 3}


def make_pair(keras, kind, **kwargs):
    """(Keras inner layer, rnnkit inner layer) of the same kind and arguments."""
    if kind == "stacked":
        k = keras.layers.RNN([keras.layers.LSTMCell(U), keras.layers.GRUCell(U)], **kwargs)
        r = rnnkit.RNN([rnnkit.LSTMCell(U), rnnkit.GRUCell(U)], **kwargs)
        return k, r
    kname, cls = {"lstm": ("LSTM", rnnkit.LSTM), "gru": ("GRU", rnnkit.GRU),
                  "simple_rnn": ("SimpleRNN", rnnkit.SimpleRNN)}[kind]
    return getattr(keras.layers, kname)(U, **kwargs), cls(U, **kwargs)


def random_weights(weights, seed):
    rng = np.random.RandomState(seed)
    return [((1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3) * rng.randn(*w.shape)).astype(w.dtype)
            for w in weights]


def wrap(keras, kind, merge_mode="concat", seed=1, shape=(B, T, F), k_backward=None, r_backward=None, **kwargs):
    k_inner, r_inner = make_pair(keras, kind, **kwargs)
    kb = keras.layers.Bidirectional(k_inner, merge_mode=merge_mode, backward_layer=k_backward)
    rb = rnnkit.Bidirectional(r_inner, merge_mode=merge_mode, backward_layer=r_backward)
    kb.build(shape)
    kb.set_weights(random_weights(kb.get_weights(), seed))
    rb.build(shape)
    rb.set_weights(kb.get_weights())
    return kb, rb


def keras_flat(out):
    import keras

    leaves = keras.tree.flatten(out)
    return [leaf.value if hasattr(leaf, "value") else leaf for leaf in leaves]


def outputs_and_grad(fn, x, flat_fn, coefs=None, seed=0):
    xt = torch.tensor(x, requires_grad=True)
    outs = flat_fn(fn(xt))
    if coefs is None:
        rng = np.random.RandomState(seed)
        coefs = [torch.tensor(rng.randn(*o.shape).astype(x.dtype)) for o in outs]
    loss = sum((o * c).sum() for o, c in zip(outs, coefs))
    (grad,) = torch.autograd.grad(loss, xt)
    return [to_numpy(o) for o in outs], grad.numpy(), coefs


def compare(kb, rb, x, k_kwargs=None, r_kwargs=None):
    k_kwargs, r_kwargs = k_kwargs or {}, r_kwargs or {}
    k_out, k_grad, coefs = outputs_and_grad(lambda t: kb(t, **k_kwargs), x, keras_flat)
    r_out, r_grad, _ = outputs_and_grad(lambda t: rb(t, **r_kwargs), x, flatten, coefs)
    assert len(r_out) == len(k_out)
    for i, (a, b) in enumerate(zip(r_out, k_out)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"output {i}")
    np.testing.assert_allclose(r_grad, k_grad, rtol=1e-4, atol=1e-4)
    assert np.abs(r_grad).max() > 0
    return r_out


def _mask_kwargs(mask):
    if mask is None:
        return {}, {}
    return {"mask": torch.tensor(mask)}, {"mask": mask}


# -------------------------------------------------------------- the oracle
FLAGS = [(False, False), (True, False), (False, True), (True, True)]
CASES = [(kind, merge, mask, *FLAGS[i % 4])
         for i, (kind, merge, mask) in enumerate(itertools.product(KINDS, MERGE_MODES, MASKS))]


def test_cases_cover_flag_combinations():
    """Every (return_sequences, return_state) pair meets every kind, merge mode and mask."""
    for i, key in ((0, KINDS), (1, MERGE_MODES), (2, MASKS)):
        for value in key:
            assert {(c[3], c[4]) for c in CASES if c[i] == value} == set(FLAGS), value


@pytest.mark.parametrize("kind, merge_mode, mask_name, return_sequences, return_state", CASES)
def test_matches_keras(keras, kind, merge_mode, mask_name, return_sequences, return_state):
    kb, rb = wrap(keras, kind, merge_mode, seed=10 + KINDS.index(kind),
                  return_sequences=return_sequences, return_state=return_state)
    x = np.random.RandomState(2).randn(B, T, F).astype("float32")
    k_kw, r_kw = _mask_kwargs(MASKS[mask_name])
    out = compare(kb, rb, x, k_kw, r_kw)
    n_y = 2 if merge_mode is None else 1
    assert len(out) == n_y + (2 * N_STATES[kind] if return_state else 0)
    width = 2 * U if merge_mode == "concat" else U
    assert out[0].shape == ((B, T, width) if return_sequences else (B, width))


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_explicit_backward_layer_matches_keras(keras, kind, mask_name):
    k_bw, r_bw = make_pair(keras, kind, go_backwards=True, return_sequences=True)
    kb, rb = wrap(keras, kind, "concat", seed=5, k_backward=k_bw, r_backward=r_bw, return_sequences=True)
    assert rb.backward_layer is r_bw
    x = np.random.RandomState(3).randn(B, T, F).astype("float32")
    compare(kb, rb, x, *_mask_kwargs(MASKS[mask_name]))


def test_backward_layer_of_another_kind_matches_keras(keras):
    """Forward GRU, backward SimpleRNN (same number of states)."""
    k_bw = keras.layers.SimpleRNN(U, go_backwards=True, return_sequences=True, return_state=True)
    r_bw = rnnkit.SimpleRNN(U, go_backwards=True, return_sequences=True, return_state=True)
    kb, rb = wrap(keras, "gru", "sum", seed=6, k_backward=k_bw, r_backward=r_bw, return_sequences=True,
                  return_state=True)
    x = np.random.RandomState(4).randn(B, T, F).astype("float32")
    compare(kb, rb, x, *_mask_kwargs(MASK_RIGHT_PADDED))


@pytest.mark.parametrize("mask_name", ["none", "right_padded"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_initial_state_matches_keras(keras, kind, mask_name):
    kb, rb = wrap(keras, kind, "concat", seed=7, return_sequences=True, return_state=True)
    rng = np.random.RandomState(5)
    x = rng.randn(B, T, F).astype("float32")
    states = [rng.randn(B, U).astype("float32") for _ in range(2 * N_STATES[kind])]  # forward then backward
    k_kw, r_kw = _mask_kwargs(MASKS[mask_name])
    k_kw["initial_state"] = [torch.tensor(s) for s in states]
    r_kw["initial_state"] = states
    out = compare(kb, rb, x, k_kw, r_kw)
    # the states matter: zeros give other numbers
    zero = rb(x, **dict(r_kw, initial_state=[np.zeros_like(s) for s in states]))
    assert np.abs(to_numpy(zero[0]) - out[0]).max() > 1e-3


@pytest.mark.parametrize("nested", [True, False])
def test_stacked_initial_state_matches_keras(keras, nested):
    """Stacked [LSTMCell, GRUCell]: Keras takes [[h, c], h] per direction; rnnkit also takes the flat list."""
    kb, rb = wrap(keras, "stacked", "concat", seed=8, return_sequences=True, return_state=True)
    rng = np.random.RandomState(12)
    x = rng.randn(B, T, F).astype("float32")
    s = [rng.randn(B, U).astype("float32") for _ in range(6)]
    k_init = [[torch.tensor(s[0]), torch.tensor(s[1])], torch.tensor(s[2]),
              [torch.tensor(s[3]), torch.tensor(s[4])], torch.tensor(s[5])]
    r_init = [[s[0], s[1]], s[2], [s[3], s[4]], s[5]] if nested else s
    out = compare(kb, rb, x, {"initial_state": k_init}, {"initial_state": r_init})
    assert len(out) == 1 + 6


def test_initial_state_halves_go_to_the_right_direction():
    layer = rnnkit.GRU(U, return_sequences=True, return_state=True)
    bi = rnnkit.Bidirectional(layer, merge_mode=None)
    x = np.random.RandomState(6).randn(B, T, F).astype("float32")
    bi.build(x.shape)
    h_f, h_b = np.ones((B, U), "float32"), -np.ones((B, U), "float32")
    y_f, y_b, s_f, s_b = (to_numpy(t) for t in bi(x, initial_state=[h_f, h_b]))
    np.testing.assert_allclose(y_f, to_numpy(bi.forward_layer(x, initial_state=[h_f])[0]), rtol=1e-6)
    np.testing.assert_allclose(y_b, to_numpy(bi.backward_layer(x, initial_state=[h_b])[0]).copy()[:, ::-1],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="initial_state"):
        bi(x, initial_state=[h_f])


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_time_major(keras, mask_name):
    """time_major=True takes and returns (T, B, ...); same numbers as the batch-major Keras wrapper."""
    kb, _ = wrap(keras, "lstm", "concat", seed=8, return_sequences=True, return_state=True)
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, return_state=True, time_major=True))
    x = np.random.RandomState(7).randn(B, T, F).astype("float32")
    rb.build((T, B, F))
    rb.set_weights(kb.get_weights())
    k_kw, r_kw = _mask_kwargs(MASKS[mask_name])
    k_out = [to_numpy(o) for o in keras_flat(kb(torch.tensor(x), **k_kw))]
    r_out = [to_numpy(o) for o in rb(x.transpose(1, 0, 2), **r_kw)]
    np.testing.assert_allclose(r_out[0], k_out[0].transpose(1, 0, 2), rtol=1e-5, atol=1e-5)
    for a, b in zip(r_out[1:], k_out[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_paths_do_not_change_numbers(keras):
    """Bidirectional over use_fused=False layers: the same numbers as over fused ones."""
    kb, rb = wrap(keras, "lstm", "concat", seed=9, return_sequences=True)
    rb_generic = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, use_fused=False))
    rb_generic.build((B, T, F))
    rb_generic.set_weights(kb.get_weights())
    x = np.random.RandomState(8).randn(B, T, F).astype("float32")
    assert rnnkit.explain(rb, x, mask=MASK_RIGHT_PADDED).path == "fused"
    for mask in (None, MASK_RIGHT_PADDED):
        np.testing.assert_allclose(to_numpy(rb(x, mask=mask)), to_numpy(rb_generic(x, mask=mask)), rtol=1e-5,
                                   atol=1e-6)


def test_output_mask_is_carried():
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True), merge_mode=None)
    y_f, y_b = rb(np.zeros((B, T, F), "float32"), mask=MASK_RIGHT_PADDED)
    for y in (y_f, y_b):
        np.testing.assert_array_equal(to_numpy(y._keras_mask), MASK_RIGHT_PADDED)


# ----------------------------------------------------------------- weights
@pytest.mark.parametrize("kind", KINDS)
def test_get_weights_forward_then_backward(kind):
    inner = {"lstm": lambda: rnnkit.LSTM(U), "gru": lambda: rnnkit.GRU(U), "simple_rnn": lambda: rnnkit.SimpleRNN(U),
             "stacked": lambda: rnnkit.RNN([rnnkit.LSTMCell(U), rnnkit.GRUCell(U)])}[kind]()
    bi = rnnkit.Bidirectional(inner)
    bi.build((B, T, F))
    fw, bw = bi.forward_layer.get_weights(), bi.backward_layer.get_weights()
    weights = bi.get_weights()
    assert len(weights) == 2 * len(fw) == {"lstm": 6, "gru": 6, "simple_rnn": 6, "stacked": 12}[kind]
    for a, b in zip(weights, fw + bw):
        np.testing.assert_array_equal(a, b)
    new = random_weights(weights, 3)
    bi.set_weights(new)
    for a, b in zip(bi.forward_layer.get_weights(), new[: len(fw)]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(bi.backward_layer.get_weights(), new[len(fw):]):
        np.testing.assert_array_equal(a, b)


def test_weights_argument_sets_weights_on_build():
    ref = rnnkit.Bidirectional(rnnkit.GRU(U))
    ref.build((B, T, F))
    weights = random_weights(ref.get_weights(), 4)
    bi = rnnkit.Bidirectional(rnnkit.GRU(U), weights=weights)
    bi.build((B, T, F))
    for a, b in zip(bi.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_forward_layer_is_a_fresh_copy():
    inner = rnnkit.LSTM(U, return_sequences=True)
    bi = rnnkit.Bidirectional(inner)
    assert bi.forward_layer is not inner and bi.backward_layer is not inner
    assert bi.forward_layer.go_backwards is False and bi.backward_layer.go_backwards is True
    assert bi.forward_layer.name == "forward_" + inner.name
    assert bi.backward_layer.name == "backward_" + inner.name


@pytest.mark.parametrize("name", ["lstm_x", "forward_lstm_x", "backward_lstm_x", "forward_backward_x"])
def test_copies_are_named_as_keras_names_them(keras, name):
    """Each copy drops only its own prefix: "forward_x" gives "forward_x" and "backward_forward_x"."""
    kb = keras.layers.Bidirectional(keras.layers.LSTM(U, name=name))
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, name=name))
    assert (rb.forward_layer.name, rb.backward_layer.name) == (kb.forward_layer.name, kb.backward_layer.name)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad", [torch.nn.Linear(3, 3), rnnkit.Layer(), rnnkit.LSTMCell(3), "lstm"])
def test_non_recurrent_layer_is_a_type_error(bad):
    with pytest.raises(TypeError, match="recurrent"):
        rnnkit.Bidirectional(bad)


def test_non_recurrent_backward_layer_is_a_type_error():
    with pytest.raises(TypeError, match="backward_layer"):
        rnnkit.Bidirectional(rnnkit.LSTM(U), backward_layer=torch.nn.LSTM(3, 3))


@pytest.mark.parametrize("mode", ["max", "Concat", "", "avg", 0])
def test_unknown_merge_mode(mode):
    with pytest.raises(ValueError, match="merge_mode"):
        rnnkit.Bidirectional(rnnkit.LSTM(U), merge_mode=mode)


@pytest.mark.parametrize("backward_kwargs, word", [
    ({"go_backwards": True, "return_sequences": True}, "return_sequences"),
    ({"go_backwards": True, "return_state": True}, "return_state"),
    ({"go_backwards": False}, "go_backwards"),
    ({"go_backwards": True, "stateful": True}, "stateful"),
])
def test_backward_layer_mismatch(backward_kwargs, word):
    with pytest.raises(ValueError, match=word):
        rnnkit.Bidirectional(rnnkit.LSTM(U), backward_layer=rnnkit.LSTM(U, **backward_kwargs))


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
def test_backward_layer_of_another_width_is_refused_by_elementwise_merges(merge_mode):
    with pytest.raises(ValueError, match=rf"merge_mode='{merge_mode}'.*output size 4.*backward_layer has 3"):
        rnnkit.Bidirectional(rnnkit.LSTM(4), merge_mode=merge_mode, backward_layer=rnnkit.GRU(3, go_backwards=True))


@pytest.mark.parametrize("merge_mode", ["concat", None])
@pytest.mark.parametrize("mask_name", ["none", "holes"])
def test_backward_layer_of_another_width_matches_keras(keras, merge_mode, mask_name):
    """As Keras 3: LSTM(4) forwards, GRU(3) backwards; concat gives 4 + 3 features."""
    kwargs = {"return_sequences": True, "return_state": True}
    kb = keras.layers.Bidirectional(keras.layers.LSTM(4, **kwargs), merge_mode=merge_mode,
                                    backward_layer=keras.layers.GRU(3, go_backwards=True, **kwargs))
    rb = rnnkit.Bidirectional(rnnkit.LSTM(4, **kwargs), merge_mode=merge_mode,
                              backward_layer=rnnkit.GRU(3, go_backwards=True, **kwargs))
    kb.build((B, T, F))
    kb.set_weights(random_weights(kb.get_weights(), 9))
    rb.build((B, T, F))
    rb.set_weights(kb.get_weights())
    x = np.random.RandomState(10).randn(B, T, F).astype("float32")
    out = compare(kb, rb, x, *_mask_kwargs(MASKS[mask_name]))
    widths = [7] if merge_mode == "concat" else [4, 3]
    assert [o.shape for o in out] == [(B, T, w) for w in widths] + [(B, 4), (B, 4), (B, 3)]
    shapes = rb.compute_output_shape((B, T, F))
    assert [tuple(s) for s in shapes] == [o.shape for o in out]


def test_backward_layer_with_other_state_count_is_accepted():
    """As Keras: an LSTM forwards and a GRU backwards (see test_bidirectional_mixed.py for the numbers)."""
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U), backward_layer=rnnkit.GRU(U, go_backwards=True))
    assert type(bi.backward_layer) is rnnkit.GRU


def test_forward_go_backwards_layer_flips_roles():
    """A layer with go_backwards=True as forward: Keras semantics say the copy has go_backwards=False."""
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U, go_backwards=True))
    assert bi.forward_layer.go_backwards is True and bi.backward_layer.go_backwards is False


# ---------------------------------------------------------------- stateful
def test_stateful_carries_and_resets_states():
    rng = np.random.RandomState(9)
    x1, x2 = rng.randn(B, T, F).astype("float32"), rng.randn(B, T, F).astype("float32")
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U, stateful=True, return_sequences=True, return_state=True))
    plain = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, return_state=True))
    bi.build((B, T, F))
    plain.build((B, T, F))
    plain.set_weights(bi.get_weights())
    first = [to_numpy(t) for t in bi(x1)]
    p_first = [to_numpy(t) for t in plain(x1)]
    for a, b in zip(first, p_first):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the second call starts from the first call's final states (forward then backward)
    second = [to_numpy(t) for t in bi(x2)]
    expected = [to_numpy(t) for t in plain(x2, initial_state=p_first[1:])]
    for a, b in zip(second, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(second[0] - to_numpy(plain(x2)[0])).max() > 1e-4
    # reset_states() zeroes both directions
    bi.reset_states()
    for a, b in zip([to_numpy(t) for t in bi(x2)], [to_numpy(t) for t in plain(x2)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # reset_states(states): forward states then backward states
    states = [rng.randn(B, U).astype("float32") for _ in range(4)]
    bi.reset_states(states)
    for a, b in zip([to_numpy(t) for t in bi(x1)], [to_numpy(t) for t in plain(x1, initial_state=states)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    bi.reset_state()
    np.testing.assert_allclose(to_numpy(bi(x1)[0]), p_first[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_matches_keras(keras, kind):
    kb, rb = wrap(keras, kind, "concat", seed=13, return_sequences=True, stateful=True)
    rng = np.random.RandomState(13)
    for i in range(3):
        x = rng.randn(B, T, F).astype("float32")
        if i == 2:
            kb.reset_states()
            rb.reset_states()
        np.testing.assert_allclose(to_numpy(rb(x, mask=MASK_RIGHT_PADDED)),
                                   to_numpy(kb(torch.tensor(x), mask=torch.tensor(MASK_RIGHT_PADDED))),
                                   rtol=1e-5, atol=1e-5)


def test_stateful_other_batch_size_is_an_error():
    bi = rnnkit.Bidirectional(rnnkit.GRU(U, stateful=True))
    bi(np.zeros((B, T, F), "float32"))
    with pytest.raises(ValueError, match="batch size"):
        bi(np.zeros((B + 1, T, F), "float32"))


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_config_round_trip_numbers(merge_mode):
    bi = rnnkit.Bidirectional(rnnkit.GRU(U, return_sequences=True, dropout=0.0), merge_mode=merge_mode)
    bi.build((B, T, F))
    config = bi.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["merge_mode"] == merge_mode
    assert "backward_layer" not in config
    clone = rnnkit.Bidirectional.from_config(config)
    clone.build((B, T, F))
    clone.set_weights(bi.get_weights())
    assert clone.merge_mode == merge_mode and clone.return_sequences
    assert type(clone.forward_layer) is rnnkit.GRU and clone.forward_layer.units == U
    x = np.random.RandomState(10).randn(B, T, F).astype("float32")
    for a, b in zip(flatten(clone(x, mask=MASK_RIGHT_PADDED)), flatten(bi(x, mask=MASK_RIGHT_PADDED))):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-7)


def test_config_round_trip_explicit_backward_and_stacked():
    bw = rnnkit.RNN([rnnkit.LSTMCell(U), rnnkit.GRUCell(U)], go_backwards=True, name="bw")
    bi = rnnkit.Bidirectional(rnnkit.RNN([rnnkit.LSTMCell(U), rnnkit.GRUCell(U)]), backward_layer=bw,
                              merge_mode="ave")
    config = bi.get_config()
    assert config["backward_layer"]["config"]["name"] == "bw"
    clone = rnnkit.Bidirectional.from_config(config)
    assert clone.backward_layer.name == "bw" and clone.backward_layer.go_backwards
    bi.build((B, T, F))
    clone.build((B, T, F))
    clone.set_weights(bi.get_weights())
    x = np.random.RandomState(11).randn(B, T, F).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(bi(x)), rtol=1e-6, atol=1e-7)


def test_config_round_trip_is_stable():
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True), merge_mode="sum")
    config = bi.get_config()
    assert rnnkit.Bidirectional.from_config(config).get_config() == config


def test_compute_output_shape():
    bi = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, return_state=True))
    shapes = bi.compute_output_shape((B, T, F))
    assert shapes[0] == (B, T, 2 * U)
    assert [tuple(s) for s in shapes[1:]] == [(B, U)] * 4
    bi = rnnkit.Bidirectional(rnnkit.GRU(U), merge_mode="mul")
    assert tuple(bi.compute_output_shape((B, T, F))) == (B, U)
