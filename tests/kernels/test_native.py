"""rnnkit's native CPU kernel (``rnnkit.kernels.native``): the twin of the generic loop.

Every test compares against an independent computation: torch's own cell
equations step by step (``ops._masked_steps``), the layers' generic loop
(``use_fused=False``), or float64 math; gradients included.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.kernels import native, ops

pytestmark = pytest.mark.skipif(native.unavailable() is not None,
                                reason=f"native kernel not built here: {native.unavailable()}")

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "gru_keras": 3}  # (gru_keras: z r h order)
MASKS = ["none", "right", "holes", "fully_masked_row"]


def _mask(kind, batch, steps, gen):
    if kind == "none":
        return None
    if kind == "right":
        lengths = torch.tensor([steps, 1, 0, steps - 2][:batch])
        return torch.arange(steps) < lengths[:, None]
    mask = torch.rand(batch, steps, generator=gen) > 0.4
    if kind == "fully_masked_row":
        mask[1] = False
    return mask


def _case(mode, batch=4, steps=7, features=3, units=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = GATES[mode]
    x = torch.randn(batch, steps, features, generator=gen, dtype=dtype)
    weights = [torch.randn(g * units, features, generator=gen, dtype=dtype) * 0.5,
               torch.randn(g * units, units, generator=gen, dtype=dtype) * 0.5,
               torch.randn(g * units, generator=gen, dtype=dtype) * 0.1,
               torch.randn(g * units, generator=gen, dtype=dtype) * 0.1]
    hx = [torch.randn(batch, units, generator=gen, dtype=dtype) for _ in range(2 if mode == "lstm" else 1)]
    return x, weights, hx, gen


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("blas", [False, True])
def test_native_equals_torch_cell_equations_step_by_step(mode, mask_kind, go_backwards, zero_output, blas,
                                                         monkeypatch):
    """Outputs, final states and the gradients of x, every weight and the initial states, float64."""
    monkeypatch.setattr(native, "BLAS_ABOVE", -1 if blas else 1 << 40)
    x, weights, hx, gen = _case(mode)
    mask = _mask(mask_kind, x.shape[0], x.shape[1], gen)
    inputs = [x, *weights, *hx]
    for t in inputs:
        t.requires_grad_()
    got = native.native_call(x, mask, hx, weights, mode, True, go_backwards, zero_output)
    full = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool)
    want = ops._masked_steps(x, full, hx, weights, mode, True, go_backwards, zero_output)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
    probes = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in got]
    grads_got = torch.autograd.grad(got, inputs, probes)
    grads_want = torch.autograd.grad(want, inputs, probes)
    for g, w in zip(grads_got, grads_want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("size", ["small", "big"])  # the input projection on the register loop / on BLAS
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_op_equals_the_training_path_to_the_bit(mode, mask_kind, go_backwards, size, dtype):
    """Without gradients one ``infer`` op runs (projection and loop, two state slots); with them the
    ``project`` op and the forward op: the same numbers exactly, and the step equations' within rounding."""
    shape = dict(batch=4, steps=7, features=3, units=5) if size == "small" else dict(
        batch=4, steps=40, features=32, units=32)
    x, weights, hx, gen = _case(mode, dtype=dtype, **shape)
    mask = _mask(mask_kind, x.shape[0], x.shape[1], gen)
    with torch.no_grad():
        inferred = native.native_call(x, mask, hx, weights, mode, True, go_backwards, mask_kind == "holes")
    trained = native.native_call(x.requires_grad_(), mask, hx, weights, mode, True, go_backwards,
                                 mask_kind == "holes")
    assert trained[0].requires_grad and not inferred[0].requires_grad
    for a, b in zip(inferred, trained):
        assert torch.equal(a, b.detach())
    full = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool)
    want = ops._masked_steps(x.detach().double(), full, [h.double() for h in hx], [w.double() for w in weights],
                             mode, True, go_backwards, mask_kind == "holes")
    for a, w in zip(inferred, want):
        tol = 1e-10 if dtype == torch.float64 else 1e-3  # (relative too: relu's outputs grow)
        torch.testing.assert_close(a.double(), w, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("mask_kind", MASKS)
def test_rows_split_among_threads_give_the_one_thread_numbers(mode, mask_kind):
    """Each thread runs the whole time loop for its block of rows: outputs, states and every gradient are
    the single thread's to the bit, with an even (2 threads) and an uneven (3 threads: 4+4+2 rows) split."""
    x, weights, hx, gen = _case(mode, batch=10, steps=40, features=6, units=32, dtype=torch.float32)
    mask = _mask(mask_kind, 4, 40, gen)
    mask = None if mask is None else mask.repeat(3, 1)[:10]
    inputs = [x, *weights, *hx]
    for t in inputs:
        t.requires_grad_()
    probes = None
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            got = native.native_call(x, mask, hx, weights, mode, True, False, mask_kind == "holes")
            probes = probes or [torch.randn(t.shape, generator=gen) for t in got]
            results.append([t.detach() for t in got] + list(torch.autograd.grad(got, inputs, probes)))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["GRU", "SimpleRNN", "LSTM"])
def test_stateful_streaming_one_step_per_call_equals_one_call(name):
    """Online inference: a stateful layer fed one step per call gives the outputs and states of the whole
    sequence in one call."""
    torch.manual_seed(3)
    layer = getattr(rnnkit, name)(8, stateful=True, return_sequences=True)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        whole = layer(x)
        states = [s.clone() for s in layer.states]
        layer.reset_states()
        steps = torch.cat([layer(x[:, t:t + 1]) for t in range(x.shape[1])], dim=1)
    torch.testing.assert_close(steps, whole, rtol=1e-6, atol=1e-7)
    for a, b in zip(layer.states, states):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_projection_op_equals_linear(bias):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64) if bias else None
    torch.testing.assert_close(native._ops()[3](x, native._transposed(w), b), torch.nn.functional.linear(x, w, b))


@pytest.mark.parametrize("mode", ["rnn_tanh", "gru_keras"])
def test_native_gradcheck_and_gradgradcheck_with_bias(mode):
    """The one autograd node (projection and loop): gradients of the input, both weights, both biases and the
    states, first order (the native backward, then the projection's products) and second order."""
    x, weights, hx, _ = _case(mode, batch=2, steps=3, features=2, units=2)
    mask = torch.tensor([[True, False, True], [True, True, False]])

    def run(x, *rest):
        return tuple(native.native_call(x, mask, list(rest[4:]), list(rest[:4]), mode, True, False, False))

    args = [t.requires_grad_() for t in [x, *weights, *hx]]
    assert torch.autograd.gradcheck(run, args)
    assert torch.autograd.gradgradcheck(run, args)


@pytest.mark.parametrize("mode", list(GATES))
def test_native_gradcheck_without_bias(mode):
    x, weights, hx, gen = _case(mode, batch=2, steps=4, features=2, units=3)
    mask = torch.tensor([[True, False, True, True], [True, True, False, False]])

    def run(x, w_ih, w_hh, *hx):
        return tuple(native.native_call(x, mask, list(hx), [w_ih, w_hh], mode, False, True, False))

    args = [t.requires_grad_() for t in [x, *weights[:2], *hx]]
    assert torch.autograd.gradcheck(run, args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("units", [5, 16])
def test_gru_in_keras_order_is_the_gru_with_its_gates_swapped(dtype, mask_kind, units):
    """Mode gru_keras reads its gate blocks as z r h: the numbers of torch's order (r z n) on the weights with the
    first two blocks swapped, outputs, states and gradients (swapped back), to rounding (the products add the
    gate columns in another order)."""
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1.3e-6, "atol": 1e-5}
    x, weights, hx, gen = _case("gru", units=units, dtype=dtype)
    mask = _mask(mask_kind, x.shape[0], x.shape[1], gen)
    swap = [torch.cat([w.chunk(3)[1], w.chunk(3)[0], w.chunk(3)[2]]) for w in weights]
    results = []
    for mode, ws in (("gru", weights), ("gru_keras", swap)):
        inputs = [t.detach().clone().requires_grad_() for t in [x, *ws, *hx]]
        out = native.native_call(inputs[0], mask, inputs[5:], inputs[1:5], mode, True, False, False)
        grads = torch.autograd.grad(out, inputs, [torch.ones_like(o) for o in out])
        results.append((out, grads))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b, **tol)
    (gx, *gw, gh), (kx, *kw, kh) = results[0][1], results[1][1]
    torch.testing.assert_close(gx, kx, **tol)
    torch.testing.assert_close(gh, kh, **tol)
    for g, k in zip(gw, kw):
        torch.testing.assert_close(g, torch.cat([k.chunk(3)[1], k.chunk(3)[0], k.chunk(3)[2]]), **tol)


def test_float32_activations_are_accurate():
    """float32 uses a polynomial exp/tanh: an LSTM step with no recurrence against float64 math."""
    units = 4096
    pre = torch.linspace(-30, 30, 4 * units, dtype=torch.float64)
    pre[::7] = torch.linspace(-1e-3, 1e-3, pre[::7].numel(), dtype=torch.float64)  # tanh near 0
    x = pre.view(1, 1, 4 * units).float()
    eye = torch.eye(4 * units)
    weights = [eye, torch.zeros(4 * units, units)]
    zeros = [torch.zeros(1, units), torch.zeros(1, units)]
    out, h, c = native.native_call(x, None, zeros, weights, "lstm", False, False, False)
    i, _, g, o = torch.sigmoid(pre).chunk(4)[0], None, torch.tanh(pre.chunk(4)[2]), torch.sigmoid(pre.chunk(4)[3])
    c_want = i * g
    torch.testing.assert_close(c[0].double(), c_want, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(h[0].double(), o * torch.tanh(c_want), rtol=2e-6, atol=1e-7)


# ------------------------------------------------------------------ layers
def _layers(make, seed=3):
    torch.manual_seed(seed)
    fast = make(use_fused="auto")
    loop = make(use_fused=False)
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    fast.build(x.shape)
    loop.build(x.shape)
    loop.load_state_dict(fast.state_dict())
    return fast, loop, x


LAYERS = {
    "gru": lambda **k: rnnkit.GRU(5, return_sequences=True, return_state=True, dtype="float64", **k),
    "simple": lambda **k: rnnkit.SimpleRNN(5, return_sequences=True, return_state=True, dtype="float64", **k),
    "simple_relu_back": lambda **k: rnnkit.SimpleRNN(5, activation="relu", go_backwards=True, return_sequences=True,
                                                     return_state=True, dtype="float64", **k),
    "lstm": lambda **k: rnnkit.LSTM(5, return_sequences=True, return_state=True, dtype="float64", **k),
    "lstm_back_zero": lambda **k: rnnkit.LSTM(5, go_backwards=True, zero_output_for_mask=True,
                                              return_sequences=True, return_state=True, dtype="float64", **k),
}


@pytest.fixture
def native_calls(monkeypatch):
    calls = []
    real = native.native_call
    monkeypatch.setattr(native, "native_call", lambda *a, **k: (calls.append(a[4]), real(*a, **k))[1])
    return calls


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("mask_kind", MASKS)
def test_layer_on_native_equals_generic_loop_in_training(name, mask_kind, native_calls):
    fast, loop, x = _layers(LAYERS[name])
    mask = _mask(mask_kind, 3, 6, torch.Generator().manual_seed(1))
    results = []
    for layer in (fast, loop):
        xg = x.clone().requires_grad_()
        out = layer(xg, mask=mask, training=True)
        probe = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum() for o in out)
        grads = torch.autograd.grad(probe, [xg, *layer.parameters()])
        results.append((out, grads))
    for a, b in zip(results[0][0] + list(results[0][1]), results[1][0] + list(results[1][1])):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    lstm = name.startswith("lstm")
    # where the note says: GRU/SimpleRNN always; LSTM for masks with holes and small batch*units
    assert bool(native_calls) == (not lstm or mask_kind in ("holes", "fully_masked_row")
                                  or native.preferred("lstm", 3, 5))


def test_bidirectional_halves_on_native_equal_generic(native_calls):
    torch.manual_seed(4)
    fast = rnnkit.Bidirectional(rnnkit.GRU(4, return_sequences=True, dtype="float64"))
    loop = rnnkit.Bidirectional(rnnkit.GRU(4, return_sequences=True, dtype="float64", use_fused=False))
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    fast.build(x.shape)
    loop.build(x.shape)
    loop.load_state_dict(fast.state_dict())
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    a, b = fast(x, mask=mask, training=True), loop(x, mask=mask, training=True)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    ga = torch.autograd.grad(a.square().sum(), list(fast.parameters()))
    gb = torch.autograd.grad(b.square().sum(), list(loop.parameters()))
    for p, q in zip(ga, gb):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)
    assert native_calls == ["gru_keras", "gru_keras"]  # (a GRU runs in Keras's gate order)
    assert "native kernel runs each half" in str(rnnkit.explain(fast, x, mask=mask, training=True))


def test_the_choice_follows_the_documented_rule(native_calls, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    x = torch.randn(1, 9, 3)
    big = torch.randn(64, 3, 3)
    with torch.no_grad():
        rnnkit.GRU(8)(x)  # GRU and SimpleRNN: always
        rnnkit.SimpleRNN(32)(big)
        assert native_calls == ["gru_keras", "rnn_tanh"]
        lstm = rnnkit.LSTM(64)
        lstm(big)  # LSTM: torch's (oneDNN) kernel above 512 batch*units with 2 threads
        assert native_calls == ["gru_keras", "rnn_tanh"]
        assert rnnkit.explain(lstm, big).detail == "torch.lstm"
        small = rnnkit.LSTM(64)
        small(torch.randn(8, 3, 3))  # 512: native
        assert native_calls[-1] == "lstm" and len(native_calls) == 3
        wide = rnnkit.LSTM(128)  # above 64 units: torch's kernel, even at batch 1
        assert rnnkit.explain(wide, x).detail == "torch.lstm"
        assert rnnkit.explain(rnnkit.LSTM(64), torch.randn(4, 3, 3)).detail == "native kernel"
        monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
        assert rnnkit.explain(small, torch.randn(8, 3, 3)).detail == "torch.lstm"  # one thread: up to 64
        assert rnnkit.explain(small, x).detail == "native kernel"
        holes = torch.ones(64, 3, dtype=torch.bool)
        holes[0, 1] = False
        lstm(big, mask=holes)  # any mask with holes: native
        assert native_calls[-1] == "lstm" and len(native_calls) == 4
        assert rnnkit.explain(lstm, big, mask=holes).detail.startswith("torch.lstm; mask: right-padded rows in one")
        assert rnnkit.explain(lstm, big, mask=holes).detail.endswith("other masks on the native kernel")


def test_without_the_native_kernel_the_torch_paths_run_and_explain_says_why(monkeypatch, native_calls):
    monkeypatch.setattr(native, "_STATUS", ["no C++ compiler ('c++' not found) to build it"])
    layer = rnnkit.GRU(4, return_sequences=True)
    x = torch.randn(2, 5, 3)
    holes = torch.tensor([[True, False, True, True, True], [True] * 5])
    with torch.no_grad():
        out = layer(x, mask=holes)
    assert native_calls == []
    loop = rnnkit.GRU(4, return_sequences=True, use_fused=False)
    loop.build(x.shape)
    loop.load_state_dict(layer.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(out, loop(x, mask=holes))
    detail = rnnkit.explain(layer, x).detail
    assert detail == "torch.gru (native kernel unavailable: no C++ compiler ('c++' not found) to build it)"
    assert "a hoisted step loop (native kernel unavailable" in rnnkit.explain(layer, x, mask=holes).detail


def test_a_compiler_without_openmp_builds_the_serial_kernel_and_a_failed_build_says_why(monkeypatch):
    from torch.utils import cpp_extension

    calls = []

    def fake_load(**kwargs):
        calls.append(kwargs["extra_cflags"])
        if "-fopenmp" in kwargs["extra_cflags"] or fail_always:
            raise RuntimeError("c++: error: unsupported option '-fopenmp'\nmore lines")

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    monkeypatch.setattr(native.shutil, "which", lambda name: "/usr/bin/c++")
    monkeypatch.delenv("RNNKIT_NATIVE", raising=False)
    fail_always = False
    assert native._build() is None
    assert calls == [["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"]]
    fail_always = True
    assert native._build() == "building it failed: c++: error: unsupported option '-fopenmp'"


def test_rnnkit_native_0_turns_it_off():
    code = "from rnnkit.kernels import native; print(native.unavailable())"
    env = dict(os.environ, RNNKIT_NATIVE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "RNNKIT_NATIVE=0 turns it off"


def test_float32_layer_on_native_matches_keras_numbers_of_the_generic_loop():
    torch.manual_seed(5)
    fast, loop, _ = _layers(lambda **k: rnnkit.GRU(16, return_sequences=True, **k))
    x = torch.randn(1, 200, 4)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), loop(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", list(GATES))
def test_second_order_gradients_match_the_step_loop(mode):
    """create_graph=True (gradient penalties, Hessian-vector products): differentiable gradients, the same
    second derivatives as torch's step-by-step equations."""
    x, weights, hx, gen = _case(mode, batch=2, steps=4)
    mask = torch.tensor([[True, True, False, True], [True, True, True, False]])
    inputs = [x, *weights, *hx]
    for t in inputs:
        t.requires_grad_()
    results = []
    for run in (lambda: native.native_call(x, mask, hx, weights, mode, True, False, False),
                lambda: ops._masked_steps(x, mask, hx, weights, mode, True, False, False)):
        out = run()
        first = torch.autograd.grad(sum((o * o).sum() for o in out), inputs, create_graph=True)
        penalty = sum((g * g).sum() for g in first)
        results.append([*first, *torch.autograd.grad(penalty, inputs)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_native_rejects_non_cpu_or_half_inputs_by_reason():
    x = torch.zeros(1, 2, 3, dtype=torch.bfloat16)
    assert "float32/float64" in native.blocker(x, [x])
    assert native.blocker(torch.zeros(1, 2, 3), [torch.zeros(1, dtype=torch.float64)]) is not None
    assert native.blocker(torch.zeros(1, 2, 3), [torch.zeros(1)]) is None
    assert np.isfinite(native.BLAS_ABOVE)


@pytest.mark.parametrize("make", [lambda: rnnkit.GRU(6, return_sequences=True),
                                  lambda: rnnkit.SimpleRNN(6, return_sequences=True),
                                  lambda: rnnkit.LSTM(6, return_sequences=True),
                                  lambda: rnnkit.LSTM(64, return_sequences=True)])  # (torch's kernel at batch 16)
def test_layers_run_under_inference_mode_and_after_it(make):
    torch.manual_seed(9)
    layer = make()
    x = torch.randn(16, 5, 3)
    layer(x)
    loop = make()
    loop.use_fused = False
    loop.build(x.shape)
    loop.load_state_dict(layer.state_dict())
    with torch.no_grad():
        want = loop(x)
    with torch.inference_mode():
        for _ in range(2):  # the second call reuses what the first converted
            torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-6)
    xg = x.clone().requires_grad_()
    layer(xg).sum().backward()  # and training afterwards
    assert xg.grad is not None and bool(torch.isfinite(xg.grad).all())
