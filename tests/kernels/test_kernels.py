"""``fused_rnn`` (and the hoisted loop) against the generic loop.

Every case builds two identically weighted layers, one with ``use_fused="auto"``
(fused kernel or hoisted loop, whichever the call allows) and one with
``use_fused=False`` (the generic :func:`rnnkit.core.loop.rnn` loop calling the cell),
runs both on the same inputs and compares outputs, final states and the
gradients of a random linear functional of everything returned, w.r.t. the
inputs and every weight. A spy on the dispatch records which path actually ran,
and :func:`rnnkit.explain` must have predicted it.
"""

import zlib

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.layers.rnn as rnn_module
from rnnkit.core.sequences import reverse_valid
from rnnkit.kernels import native
from rnnkit.kernels.fused import fused_rnn
from rnnkit.kernels.spec import kernel_for

B, T, F, U = 4, 6, 3, 5

KINDS = {
    "lstm": (rnnkit.LSTM, {}),
    "gru": (rnnkit.GRU, {}),
    "rnn_tanh": (rnnkit.SimpleRNN, {}),
    "rnn_relu": (rnnkit.SimpleRNN, {"activation": "relu"}),
}
N_STATES = {"lstm": 2, "gru": 1, "rnn_tanh": 1, "rnn_relu": 1}
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10)}


# ------------------------------------------------------------------ helpers
def right_padded_mask(rng, batch=B, steps=T):
    """Right-padded rows: one full-length row, one fully masked row, the rest random."""
    lengths = list(rng.randint(1, steps, size=batch))
    lengths[0], lengths[1] = steps, 0
    rng.shuffle(lengths)
    return np.arange(steps)[None, :] < np.array(lengths)[:, None]


def holes_mask(rng, batch=B, steps=T):
    mask = right_padded_mask(rng, batch, steps)
    full = int(np.argmax(mask.sum(1)))
    mask[full, steps // 2] = False  # a hole in the full-length row
    return mask


def make_mask(kind, rng, batch=B, steps=T):
    if kind == "none":
        return None
    if kind == "all_true":
        return np.ones((batch, steps), dtype=bool)
    if kind == "right_padded":
        return right_padded_mask(rng, batch, steps)
    return holes_mask(rng, batch, steps)


def random_weights(layer, rng):
    """Weights giving O(1) pre-activations, so that no gate saturates."""
    out = []
    for w in layer.get_weights():
        scale = 1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3
        out.append((scale * rng.randn(*w.shape)).astype(w.dtype))
    return out


def twin_layers(cls, dtype, weight_seed=0, build_shape=(B, T, F), **kwargs):
    """A ``use_fused="auto"`` layer and a ``use_fused=False`` twin with the same weights."""
    fast = cls(U, dtype=dtype, **kwargs)
    ref = cls(U, dtype=dtype, use_fused=False, **kwargs)
    fast.build(build_shape)
    ref.build(build_shape)
    weights = random_weights(fast, np.random.RandomState(weight_seed))
    fast.set_weights(weights)
    ref.set_weights(weights)
    return fast, ref


class PathSpy:
    """Records which path each ``RNN.call`` took (fused kernel, hoisted loop, generic loop)."""

    def __init__(self, monkeypatch):
        self.calls = []
        real_fused, real_hoisted, real_step = rnn_module.fused_rnn, rnn_module.RNN.hoisted_step, \
            rnn_module.RNN.step_function
        spy = self

        def fused(*args, **kwargs):
            spy.calls.append("fused")
            return real_fused(*args, **kwargs)

        def hoisted(self, *args, **kwargs):
            spy.calls.append("hoisted")
            return real_hoisted(self, *args, **kwargs)

        def generic(self, *args, **kwargs):
            spy.calls.append("generic")
            return real_step(self, *args, **kwargs)

        monkeypatch.setattr(rnn_module, "fused_rnn", fused)
        monkeypatch.setattr(rnn_module.RNN, "hoisted_step", hoisted)
        monkeypatch.setattr(rnn_module.RNN, "step_function", generic)

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def run(layer, x, coefs, calls, params_too=True):
    """Outputs of every call (flattened) and grads of sum(coef * output) w.r.t. x, initial states, weights."""
    xt = torch.tensor(x, requires_grad=True)
    outs, state_leaves = [], []
    for kwargs in calls:
        kwargs = dict(kwargs)
        if "initial_state" in kwargs:  # differentiate w.r.t. the initial states too
            kwargs["initial_state"] = [torch.tensor(s, requires_grad=True) for s in kwargs["initial_state"]]
            state_leaves += kwargs["initial_state"]
        outs += as_list(layer(xt, **kwargs))
    loss = sum((o * torch.as_tensor(c, dtype=o.dtype)).sum() for o, c in zip(outs, coefs))
    wrt = [xt] + state_leaves + (list(layer.parameters()) if params_too else [])
    grads = torch.autograd.grad(loss, wrt)
    return [o.detach().numpy() for o in outs], [g.numpy() for g in grads]


def assert_same(a, b, dtype, what):
    assert len(a) == len(b), what
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.shape == v.shape, f"{what}[{i}]: {u.shape} vs {v.shape}"
        np.testing.assert_allclose(u, v, err_msg=f"{what}[{i}]", **TOL[dtype])


def coefs_for(outs_shapes, rng, dtype):
    return [rng.randn(*s).astype(dtype) for s in outs_shapes]


def compare(fast, ref, x, calls, dtype, rng, every_weight_learns=True):
    """Run both layers; compare everything; returns the fast layer's outputs."""
    with torch.no_grad():
        shapes = [o.shape for kw in calls for o in as_list(ref(torch.tensor(x), **kw))]
    if ref.stateful:  # the probe above advanced the stored states: start over
        for layer in (fast, ref):
            layer.reset_states()
    coefs = coefs_for(shapes, rng, dtype)
    # Dropout masks are drawn from the layer's seeded generator: draw the probe's
    # masks in the fast layer too, so both generators are at the same point.
    with torch.no_grad():
        for kw in calls:
            fast(torch.tensor(x), **kw)
    if fast.stateful:
        fast.reset_states()
    out_f, grad_f = run(fast, x, coefs, calls)
    out_r, grad_r = run(ref, x, coefs, calls)
    assert_same(out_f, out_r, dtype, "outputs/states")
    assert_same(grad_f, grad_r, dtype, "grads (input, initial states, weights)")
    # the numbers must be meaningful: some gradient reaches every weight
    weight_grads = grad_r[-len(list(ref.parameters())):]
    assert not every_weight_learns or all(np.abs(g).max() > 0 for g in weight_grads), "a weight got no gradient"
    return out_f


# --------------------------------------------------------------- the sweep
def sweep_config(seed):
    rng = np.random.RandomState(1000 + seed)
    kind = list(KINDS)[seed % 4]
    dtype = "float64" if (seed // 4) % 3 == 2 else "float32"
    mask = ["none", "all_true", "right_padded", "right_padded", "holes"][rng.randint(5)]
    cfg = dict(
        kind=kind,
        dtype=dtype,
        mask=mask,
        use_bias=bool(rng.rand() < 0.75),
        go_backwards=bool(rng.rand() < 0.5),
        return_sequences=bool(rng.rand() < 0.5),
        return_state=bool(rng.rand() < 0.5),
        stateful=bool(rng.rand() < 0.3),
        initial_state=bool(rng.rand() < 0.4),
        zero_output_for_mask=bool(rng.rand() < 0.5),
        time_major=bool(rng.rand() < 0.25),
        dropout=0.3 if rng.rand() < 0.3 else 0.0,
        training=bool(rng.rand() < 0.5),
    )
    if cfg["dropout"]:
        cfg["training"] = True
    return cfg


SWEEP = [sweep_config(s) for s in range(48)]


def _id(cfg):
    flags = [k for k in ("use_bias", "go_backwards", "return_sequences", "return_state", "stateful",
                         "initial_state", "zero_output_for_mask", "time_major", "training") if cfg[k]]
    drop = ["dropout"] if cfg["dropout"] else []
    return "-".join([cfg["kind"], cfg["dtype"], cfg["mask"]] + flags + drop)


def test_sweep_covers_everything():
    """The seeded sweep really visits every kind, mask, dtype and flag (both values)."""
    for key, values in [("kind", set(KINDS)), ("mask", {"none", "all_true", "right_padded", "holes"}),
                        ("dtype", {"float32", "float64"})]:
        assert {c[key] for c in SWEEP} == values, key
    for flag in ("use_bias", "go_backwards", "return_sequences", "return_state", "stateful", "initial_state",
                 "zero_output_for_mask", "time_major", "training"):
        assert {c[flag] for c in SWEEP} == {True, False}, flag
    assert any(c["dropout"] for c in SWEEP)
    assert any(c["dropout"] and c["mask"] == "right_padded" for c in SWEEP)
    assert any(c["stateful"] and c["mask"] == "right_padded" for c in SWEEP)
    for kind in KINDS:
        assert any(c["kind"] == kind and c["mask"] == "right_padded" and c["go_backwards"] for c in SWEEP), kind
        assert any(c["kind"] == kind and c["dtype"] == "float64" for c in SWEEP), kind


@pytest.mark.parametrize("cfg", SWEEP, ids=_id)
def test_fast_path_equals_generic_loop(cfg, monkeypatch):
    rng = np.random.RandomState(zlib.crc32(_id(cfg).encode()))
    cls, extra = KINDS[cfg["kind"]]
    dtype = cfg["dtype"]
    kwargs = dict(extra, use_bias=cfg["use_bias"], go_backwards=cfg["go_backwards"],
                  return_sequences=cfg["return_sequences"], return_state=cfg["return_state"],
                  stateful=cfg["stateful"], zero_output_for_mask=cfg["zero_output_for_mask"],
                  time_major=cfg["time_major"])
    if cfg["dropout"]:
        kwargs.update(dropout=cfg["dropout"], seed=7)
    build_shape = (T, B, F) if cfg["time_major"] else (B, T, F)
    fast, ref = twin_layers(cls, dtype, weight_seed=int(rng.randint(1000)), build_shape=build_shape, **kwargs)
    x = rng.randn(*build_shape).astype(dtype)
    mask = make_mask(cfg["mask"], rng)
    call = {"training": cfg["training"]}
    if mask is not None:
        call["mask"] = mask
    first = dict(call)
    if cfg["initial_state"]:
        first["initial_state"] = [rng.randn(B, U).astype(dtype) for _ in range(N_STATES[cfg["kind"]])]
    calls = [first, call] if cfg["stateful"] else [first]

    expected = "fused"  # a mask never decides the path: the fused path is exact for holes too
    plan = rnnkit.explain(fast, x, mask=mask, training=cfg["training"])
    assert plan.path == expected, str(plan)
    assert rnnkit.explain(ref, x, mask=mask, training=cfg["training"]).path == "generic"

    spy = PathSpy(monkeypatch)
    out = compare(fast, ref, x, calls, dtype, rng)
    taken = spy.take()
    n = len(calls)
    # probe (ref), probe (fast), then fast, then ref; eagerly the fused path runs a mask with holes
    # on the layer's hoisted loop
    # (or on the native kernel, when it is built)
    fast_calls = ["fused", "hoisted"] if cfg["mask"] == "holes" and native.unavailable() is not None else [expected]
    assert taken == ["generic"] * n + fast_calls * n + fast_calls * n + ["generic"] * n

    # shapes follow the layout conventions
    y = out[0]
    if cfg["return_sequences"]:
        assert y.shape == ((T, B, U) if cfg["time_major"] else (B, T, U))
    else:
        assert y.shape == (B, U)
    per_call = 1 + (N_STATES[cfg["kind"]] if cfg["return_state"] else 0)
    assert len(out) == per_call * n


@pytest.mark.parametrize("batch, steps", [(1, 1), (1, 4), (2, 1), (5, 3)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_edge_shapes_equal_generic_loop(kind, batch, steps):
    """Single step, single row, and every possible right-padded length (0..steps)."""
    cls, extra = KINDS[kind]
    rng = np.random.RandomState(batch * 10 + steps)
    for go_backwards, zero_output in [(False, False), (True, True)]:
        fast, ref = twin_layers(cls, "float64", build_shape=(batch, steps, F), return_sequences=True,
                                return_state=True, go_backwards=go_backwards, zero_output_for_mask=zero_output,
                                **extra)
        x = rng.randn(batch, steps, F)
        lengths = (steps - np.arange(batch)) % (steps + 1)
        mask = np.arange(steps)[None] < lengths[:, None]
        assert rnnkit.explain(fast, x, mask=mask).path == "fused"
        # one step from a zero state: the recurrent kernel gets no gradient, legitimately
        compare(fast, ref, x, [{"mask": mask}], "float64", rng, every_weight_learns=steps > 1)


# ------------------------------------------------ the hoisted path is exact too
HOISTED = {
    "lstm_hard_sigmoid": (rnnkit.LSTM, {"recurrent_activation": "hard_sigmoid"}, False, "recurrent_activation"),
    "lstm_relu": (rnnkit.LSTM, {"activation": "relu"}, False, "activation 'relu'"),
    "gru_reset_before": (rnnkit.GRU, {"reset_after": False}, False, "reset_after=False"),
    "gru_hard_sigmoid": (rnnkit.GRU, {"recurrent_activation": "hard_sigmoid"}, False, "hard_sigmoid"),
    "simple_sigmoid": (rnnkit.SimpleRNN, {"activation": "sigmoid"}, False, "neither 'tanh' nor 'relu'"),
    "lstm_recurrent_dropout": (rnnkit.LSTM, {"recurrent_dropout": 0.3, "seed": 3}, True, "recurrent_dropout"),
    "gru_recurrent_dropout": (rnnkit.GRU, {"recurrent_dropout": 0.3, "dropout": 0.2, "seed": 3}, True,
                              "recurrent_dropout"),
    "simple_recurrent_dropout": (rnnkit.SimpleRNN, {"recurrent_dropout": 0.4, "seed": 3}, True,
                                 "recurrent_dropout"),
    "lstm_impl1_dropout": (rnnkit.LSTM, {"implementation": 1, "dropout": 0.3, "seed": 3}, True,
                           "implementation=1"),
    "gru_unroll": (rnnkit.GRU, {"unroll": True}, False, "unroll"),
}


@pytest.mark.parametrize("mask_kind", ["none", "right_padded", "holes"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(HOISTED))
def test_hoisted_path_equals_generic_loop(name, dtype, mask_kind, monkeypatch):
    cls, extra, training, reason = HOISTED[name]
    rng = np.random.RandomState(len(name) + (dtype == "float64") * 100 + len(mask_kind))
    fast, ref = twin_layers(cls, dtype, weight_seed=3, return_sequences=True, return_state=True,
                            go_backwards=mask_kind == "holes", **extra)
    x = rng.randn(B, T, F).astype(dtype)
    mask = make_mask(mask_kind, rng)
    call = {"training": training} if mask is None else {"training": training, "mask": mask}
    plan = rnnkit.explain(fast, x, mask=mask, training=training)
    assert plan.path == "hoisted"
    assert reason in str(plan)
    spy = PathSpy(monkeypatch)
    compare(fast, ref, x, [call], dtype, rng)
    assert spy.take() == ["generic", "hoisted", "hoisted", "generic"]


def test_recurrent_dropout_outside_training_fuses():
    fast, _ = twin_layers(rnnkit.LSTM, "float32", recurrent_dropout=0.5)
    x = np.zeros((B, T, F), "float32")
    assert rnnkit.explain(fast, x, training=False).path == "fused"
    assert rnnkit.explain(fast, x, training=True).path == "hoisted"


# ------------------------------------------------ dropout outside the kernel
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_dropout_same_numbers_as_generic_and_actually_drops(kind):
    """Same seed -> same input mask on both paths; and the mask changes the result."""
    cls, extra = KINDS[kind]
    fast, ref = twin_layers(cls, "float64", return_sequences=True, dropout=0.5, seed=11, **extra)
    plain, _ = twin_layers(cls, "float64", return_sequences=True, **extra)
    x = np.random.RandomState(0).randn(B, T, F)
    y_fast = fast(x, training=True).detach().numpy()
    y_ref = ref(x, training=True).detach().numpy()
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-10, atol=1e-10)
    y_plain = plain(x, training=True).detach().numpy()
    assert np.abs(y_fast - y_plain).max() > 1e-3  # dropout did something
    # outside training dropout is off: the plain numbers come back
    np.testing.assert_allclose(fast(x, training=False).detach().numpy(), y_plain, rtol=1e-10, atol=1e-10)


def test_fused_dropout_drops_whole_features_for_every_step():
    """Variational dropout on the fused path: a feature dropped for a row is dropped at every step."""
    layer = rnnkit.SimpleRNN(F, dropout=0.5, seed=2, return_sequences=True, activation="relu", use_bias=False,
                             dtype="float64")
    layer.build((B, T, F))
    layer.set_weights([np.eye(F), np.zeros((F, F))])
    x = np.abs(np.random.RandomState(1).randn(B, T, F)) + 0.5
    y = layer(x, training=True).detach().numpy()
    dropped = y == 0
    assert dropped.any() and (~dropped).any()
    assert (dropped == dropped[:, :1]).all()  # same pattern at every step
    kept = ~dropped
    np.testing.assert_allclose(y[kept], (2.0 * x)[kept])  # scaled by 1/keep


# ---------------------------------------------------- fused_rnn unit checks
def test_kernel_for_picks_torch_kernels():
    assert kernel_for(rnnkit.LSTMCell(2)) is torch.lstm
    assert kernel_for(rnnkit.GRUCell(2)) is torch.gru
    assert kernel_for(rnnkit.SimpleRNNCell(2)) is torch.rnn_tanh
    assert kernel_for(rnnkit.SimpleRNNCell(2, activation="relu")) is torch.rnn_relu


def test_reverse_valid():
    x = torch.arange(12.0).reshape(2, 6, 1)
    out = reverse_valid(x, torch.tensor([4, 0]))
    assert out[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert out[1, :, 0].tolist() == [6, 7, 8, 9, 10, 11]
    out = reverse_valid(x, torch.tensor([6, 1]))
    assert out[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [6, 7, 8, 9, 10, 11]


def test_masked_semantics_by_hand():
    """Keras's masking rules on the fused path, spelled out on a right-padded batch."""
    layer = rnnkit.LSTM(U, return_sequences=True, return_state=True, dtype="float64")
    layer.build((B, T, F))
    layer.set_weights(random_weights(layer, np.random.RandomState(4)))
    rng = np.random.RandomState(5)
    x = rng.randn(B, T, F)
    lengths = [T, 3, 0, 1]
    mask = np.arange(T)[None] < np.array(lengths)[:, None]
    h0, c0 = rng.randn(B, U), rng.randn(B, U)
    y, h, c = (t.detach().numpy() for t in layer(x, mask=mask, initial_state=[h0, c0]))
    for b, n in enumerate(lengths):
        if n == 0:  # fully masked row: states stay initial, outputs are zeros
            np.testing.assert_allclose(h[b], h0[b])
            np.testing.assert_allclose(c[b], c0[b])
            np.testing.assert_allclose(y[b], 0.0)
            continue
        yb, hb, cb = (t.detach().numpy() for t in
                      layer(x[b:b + 1, :n], initial_state=[h0[b:b + 1], c0[b:b + 1]]))
        np.testing.assert_allclose(y[b, :n], yb[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(y[b, n:], np.broadcast_to(yb[0, -1], (T - n, U)), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h[b], hb[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c[b], cb[0], rtol=1e-10, atol=1e-12)


def test_masked_go_backwards_by_hand():
    """go_backwards + right padding: padding comes first (zeros, state initial), then the reversed valid part."""
    layer = rnnkit.GRU(U, return_sequences=True, return_state=True, go_backwards=True, dtype="float64")
    layer.build((B, T, F))
    layer.set_weights(random_weights(layer, np.random.RandomState(6)))
    x = np.random.RandomState(7).randn(B, T, F)
    lengths = [T, 2, 0, 5]
    mask = np.arange(T)[None] < np.array(lengths)[:, None]
    y, h = (t.detach().numpy() for t in layer(x, mask=mask))
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(y[b, : T - n], 0.0)
        if n == 0:
            np.testing.assert_allclose(h[b], 0.0)
            continue
        yb, hb = (t.detach().numpy() for t in layer(x[b:b + 1, :n]))
        np.testing.assert_allclose(y[b, T - n:], yb[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h[b], hb[0], rtol=1e-10, atol=1e-12)


def test_fused_rnn_direct_call_matches_layer():
    layer = rnnkit.SimpleRNN(U, return_sequences=True, dtype="float64")
    layer.build((B, T, F))
    x = torch.tensor(np.random.RandomState(8).randn(B, T, F))
    last, outputs, states = fused_rnn(layer, x, [torch.zeros(B, U, dtype=torch.float64)], None, False)
    np.testing.assert_allclose(outputs.detach().numpy(), layer(x).detach().numpy())
    np.testing.assert_allclose(last.detach().numpy(), outputs[:, -1].detach().numpy())
    np.testing.assert_allclose(states[0].detach().numpy(), last.detach().numpy())


def test_all_true_mask_same_as_no_mask():
    layer = rnnkit.LSTM(U, return_sequences=True, return_state=True)
    x = np.random.RandomState(9).randn(B, T, F).astype("float32")
    a = [t.detach().numpy() for t in layer(x)]
    b = [t.detach().numpy() for t in layer(x, mask=np.ones((B, T), bool))]
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(native.unavailable() is not None, reason="the native kernel cannot be built here")
@pytest.mark.parametrize("make,checks", [(lambda: rnnkit.GRU(U), False), (lambda: rnnkit.SimpleRNN(U), False),
                                         (lambda: rnnkit.LSTM(80), True)])  # (LSTM at batch 4 x 80 units: torch's)
def test_masks_are_checked_for_right_padding_only_for_torch_kernels(make, checks, monkeypatch):
    """The native kernel takes any mask as it is: where it is the preferred kernel, a masked call does not look
    for right padding (a reduction and a host sync, 8 us of a 26 us call); torch's kernels do."""
    from rnnkit.kernels import fused

    seen = []
    real = fused.right_padded_lengths
    monkeypatch.setattr(fused, "right_padded_lengths", lambda mask: seen.append(1) or real(mask))
    layer = make()
    x = torch.randn(B, T, F)
    mask = torch.arange(T) < torch.tensor([T, 3, 1, 5])[:, None]
    reference = type(layer)(layer.cell.units, use_fused=False)
    reference.build(x.shape)
    layer.build(x.shape)
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x, mask=mask), reference(x, mask=mask), rtol=1e-5, atol=1e-6)
    assert bool(seen) == checks


def test_fully_masked_batch():
    """Every row fully masked is still 'right-padded': states initial, outputs zero, on both paths."""
    for use_fused in ("auto", False):
        layer = rnnkit.LSTM(U, return_sequences=True, return_state=True, use_fused=use_fused)
        x = np.random.RandomState(10).randn(B, T, F).astype("float32")
        h0 = np.ones((B, U), "float32")
        assert rnnkit.explain(layer, x, mask=np.zeros((B, T), bool)).path == (
            "fused" if use_fused == "auto" else "generic")
        y, h, c = (t.detach().numpy() for t in layer(x, mask=np.zeros((B, T), bool), initial_state=[h0, 2 * h0]))
        np.testing.assert_allclose(y, 0.0)
        np.testing.assert_allclose(h, 1.0)
        np.testing.assert_allclose(c, 2.0)


def test_stateful_fused_carries_states():
    """Two stateful calls on halves equal one call on the whole sequence (fused path)."""
    layer = rnnkit.GRU(U, stateful=True, return_sequences=True, dtype="float64")
    whole = rnnkit.GRU(U, return_sequences=True, dtype="float64")
    layer.build((B, T, F))
    whole.build((B, T, F))
    whole.set_weights(layer.get_weights())
    x = np.random.RandomState(11).randn(B, T, F)
    y = np.concatenate([layer(x[:, :3]).detach().numpy(), layer(x[:, 3:]).detach().numpy()], axis=1)
    np.testing.assert_allclose(y, whole(x).detach().numpy(), rtol=1e-10, atol=1e-12)
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, :3]).detach().numpy(), y[:, :3], rtol=1e-10, atol=1e-12)
