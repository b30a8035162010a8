"""``Bidirectional(LSTM(...), backward_layer=GRU(...))``: halves of other cell types and state counts.

Keras 3 is the oracle, with copied weights: the whole wrapper for outputs,
``return_state`` (2 LSTM states then 1 GRU state), merge modes and masks; the
two Keras halves called on their own for ``initial_state``, because Keras 3's
wrapper splits ``initial_state`` at ``len // 2`` (1 + 2 here), which its LSTM
rejects. rnnkit splits by each half's own state count (2 + 1).
"""

import itertools

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit
from rnnkit.core.tree import flatten

B, T, F, U = 3, 6, 4, 3
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASKS = {"none": None, "right_padded": MASK_RIGHT_PADDED, "holes": MASK_HOLES}


def random_weights(weights, seed):
    rng = np.random.RandomState(seed)
    return [((1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3) * rng.randn(*w.shape)).astype(w.dtype)
            for w in weights]


def mixed(keras, merge_mode="concat", seed=1, **kwargs):
    """(Keras, rnnkit) Bidirectional with an LSTM forwards and a GRU backwards, same weights."""
    kb = keras.layers.Bidirectional(keras.layers.LSTM(U, **kwargs), merge_mode=merge_mode,
                                    backward_layer=keras.layers.GRU(U, go_backwards=True, **kwargs))
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, **kwargs), merge_mode=merge_mode,
                              backward_layer=rnnkit.GRU(U, go_backwards=True, **kwargs))
    kb.build((B, T, F))
    kb.set_weights(random_weights(kb.get_weights(), seed))
    rb.build((B, T, F))
    rb.set_weights(kb.get_weights())
    return kb, rb


def keras_flat(out):
    return [o.value if hasattr(o, "value") else o for o in flatten([out])]


def compare(k_fn, r_fn, x):
    """Every returned tensor (1e-5) and d(random functional)/dx (1e-4), Keras vs rnnkit."""
    xk, xr = torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    k_out, r_out = keras_flat(k_fn(xk)), flatten([r_fn(xr)])
    assert len(r_out) == len(k_out)
    rng = np.random.RandomState(0)
    coefs = [torch.tensor(rng.randn(*o.shape).astype("float32")) for o in k_out]
    (k_grad,) = torch.autograd.grad(sum((o * c).sum() for o, c in zip(k_out, coefs)), xk)
    (r_grad,) = torch.autograd.grad(sum((o * c).sum() for o, c in zip(r_out, coefs)), xr)
    for i, (a, b) in enumerate(zip(r_out, k_out)):
        assert tuple(a.shape) == tuple(b.shape), (i, a.shape, b.shape)
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5, err_msg=f"output {i}")
    np.testing.assert_allclose(r_grad.numpy(), k_grad.numpy(), rtol=1e-4, atol=1e-4)
    return [to_numpy(o) for o in r_out]


CASES = list(itertools.product(MERGE_MODES, MASKS, [(False, False), (True, False), (False, True), (True, True)]))


@pytest.mark.parametrize("merge_mode, mask_name, flags", CASES)
def test_lstm_forward_gru_backward_matches_keras(keras, merge_mode, mask_name, flags):
    return_sequences, return_state = flags
    kb, rb = mixed(keras, merge_mode, seed=3, return_sequences=return_sequences, return_state=return_state)
    x = np.random.RandomState(2).randn(B, T, F).astype("float32")
    mask = MASKS[mask_name]
    k_kw = {} if mask is None else {"mask": torch.tensor(mask)}
    r_kw = {} if mask is None else {"mask": mask}
    out = compare(lambda t: kb(t, **k_kw), lambda t: rb(t, **r_kw), x)
    n_y = 2 if merge_mode is None else 1
    assert len(out) == n_y + (2 + 1 if return_state else 0)
    if return_state:  # LSTM h, c then GRU h
        assert all(s.shape == (B, U) for s in out[n_y:])


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_initial_state_split_by_each_halfs_state_count(keras, merge_mode, mask_name):
    """initial_state = [h_lstm, c_lstm, h_gru]: the Keras halves called with their own states, then merged."""
    kb, rb = mixed(keras, merge_mode, seed=4, return_sequences=True, return_state=True)
    rng = np.random.RandomState(5)
    x = rng.randn(B, T, F).astype("float32")
    states = [rng.randn(B, U).astype("float32") for _ in range(3)]
    mask = MASKS[mask_name]
    k_kw = {} if mask is None else {"mask": torch.tensor(mask)}

    def keras_bidirectional(t):
        y, *s_f = kb.forward_layer(t, initial_state=[torch.tensor(s) for s in states[:2]], **k_kw)
        y_rev, *s_b = kb.backward_layer(t, initial_state=[torch.tensor(states[2])], **k_kw)
        y_rev = torch.flip(y_rev, [1])
        merged = {"concat": lambda: [torch.cat([y, y_rev], -1)], "sum": lambda: [y + y_rev],
                  "mul": lambda: [y * y_rev], "ave": lambda: [(y + y_rev) / 2], None: lambda: [y, y_rev]}
        return merged[merge_mode]() + s_f + s_b

    r_kw = {"initial_state": states, **({} if mask is None else {"mask": mask})}
    out = compare(keras_bidirectional, lambda t: rb(t, **r_kw), x)
    zero = rb(x, **dict(r_kw, initial_state=[np.zeros_like(s) for s in states]))
    assert np.abs(to_numpy(zero[0]) - out[0]).max() > 1e-3  # the states mattered
    with pytest.raises(ValueError, match="2 forward then 1 backward"):
        rb(x, initial_state=states[:2])
    # With equal counts (and no initial_state) the split agrees with Keras's len // 2.
    k_zero = keras_flat(kb(torch.tensor(x), **k_kw))
    r_zero = flatten(rb(x, **({} if mask is None else {"mask": mask})))
    for a, b in zip(r_zero, k_zero):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("flags", [(False, False), (True, False), (False, True), (True, True)])
def test_compute_mask(keras, merge_mode, flags):
    return_sequences, return_state = flags
    kb, rb = mixed(keras, merge_mode, return_sequences=return_sequences, return_state=return_state)
    m = torch.tensor(MASK_HOLES)
    r = rb.compute_mask(None, m)
    k = kb.compute_mask(None, m)  # Keras: no state masks for a layer that is not stateful
    y_masks = list(r) if isinstance(r, list) else [r]
    n_y = 2 if merge_mode is None else 1
    if return_state:
        assert y_masks[n_y:] == [None, None, None]
    y_masks = y_masks[:n_y]
    k_masks = list(k) if isinstance(k, tuple) else [k]
    assert len(y_masks) == len(k_masks) == n_y
    for a, b in zip(y_masks, k_masks):
        assert (a is None) == (b is None) == (not return_sequences)
        assert a is None or torch.equal(a, b)
    assert rb.supports_masking


def test_sequential_carries_the_mask_through_mixed_halves(keras):
    ids = np.array([[3, 1, 4, 1, 5, 9], [2, 6, 5, 0, 0, 0], [5, 0, 3, 5, 0, 0]], dtype="int64")
    k_model = keras.Sequential([
        keras.layers.Embedding(10, F, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True),
                                   backward_layer=keras.layers.GRU(U, go_backwards=True, return_sequences=True)),
        keras.layers.GRU(U),
    ])
    r_model = rnnkit.Sequential([
        rnnkit.Embedding(10, F, mask_zero=True),
        rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True),
                             backward_layer=rnnkit.GRU(U, go_backwards=True, return_sequences=True)),
        rnnkit.GRU(U),
    ])
    k_model(torch.tensor(ids))
    k_model.set_weights(random_weights(k_model.get_weights(), 6))
    r_model.build(ids.shape)
    r_model.set_weights(k_model.get_weights())
    np.testing.assert_allclose(to_numpy(r_model(ids)), to_numpy(k_model(torch.tensor(ids))), rtol=1e-5, atol=1e-5)


def test_weights_shapes_and_output_shape():
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True, return_state=True),
                              backward_layer=rnnkit.GRU(U, go_backwards=True, return_sequences=True,
                                                        return_state=True))
    rb.build((B, T, F))
    assert [w.shape for w in rb.get_weights()] == [(F, 4 * U), (U, 4 * U), (4 * U,),
                                                   (F, 3 * U), (U, 3 * U), (2, 3 * U)]
    shapes = rb.compute_output_shape((B, T, F))
    assert shapes == [(B, T, 2 * U), (B, U), (B, U), (B, U)]
    out = rb(np.zeros((B, T, F), "float32"))
    assert [tuple(o.shape) for o in out] == shapes


def test_stateful_reset_states_split_by_each_halfs_count():
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, stateful=True),
                              backward_layer=rnnkit.GRU(U, go_backwards=True, stateful=True))
    x = np.random.RandomState(7).randn(B, T, F).astype("float32")
    rb.build((B, T, F))
    states = [np.full((B, U), v, "float32") for v in (0.1, 0.2, 0.3)]
    rb.reset_states(states)
    np.testing.assert_array_equal(to_numpy(rb.forward_layer.states[1]), states[1])
    np.testing.assert_array_equal(to_numpy(rb.backward_layer.states[0]), states[2])
    expected = to_numpy(rnnkit.Bidirectional(rnnkit.LSTM(U), backward_layer=rnnkit.GRU(U, go_backwards=True),
                                             weights=rb.get_weights())(x, initial_state=states))
    np.testing.assert_allclose(to_numpy(rb(x)), expected, rtol=1e-6)


def test_config_round_trip():
    rb = rnnkit.Bidirectional(rnnkit.LSTM(U, return_sequences=True), merge_mode="sum",
                              backward_layer=rnnkit.GRU(U, go_backwards=True, return_sequences=True))
    clone = rnnkit.Bidirectional.from_config(rb.get_config())
    assert type(clone.forward_layer) is rnnkit.LSTM and type(clone.backward_layer) is rnnkit.GRU
    rb.build((B, T, F))
    clone.build((B, T, F))
    clone.set_weights(rb.get_weights())
    x = np.random.RandomState(8).randn(B, T, F).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x, mask=MASK_HOLES)), to_numpy(rb(x, mask=MASK_HOLES)), rtol=1e-6)
