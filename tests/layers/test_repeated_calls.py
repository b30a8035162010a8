"""Fast paths over repeated calls, against the generic loop.

A layer's later calls can run other code than its first: call plans (kept decisions of two calls in a row,
:mod:`rnnkit.layers.call_plan`), converted weights kept while the parameters are unchanged, the native kernel or
torch's. Each case here builds a layer (``use_fused="auto"``) and its ``use_fused=False`` twin with the same
weights, then makes two to four calls on both with new inputs each time, in inference, training or evaluation
with gradients, and after every call with gradients takes the same SGD step on both (in place, as optimizers
do); a case with gradients also makes two inference calls before its first call and one after its last.
Outputs and the gradients of a fixed linear functional of everything returned (w.r.t. the input and every
weight) must agree at every call. The cases are drawn from a seeded generator over the cell kinds, their
options, ``Bidirectional`` with every merge mode, masks (right-padded, with holes, a fully masked row, all
true), batch sizes around the native kernel's and call plans' thresholds and stateful layers;
``test_drawn_cases_cover_the_options`` checks that the draw visits them.
"""

import random

import numpy as np
import pytest
import torch

import rnnkit

N_CASES = 128
KINDS = ("lstm", "gru", "gru_reset_before", "tanh", "relu")
MASKS = ("none", "right_padded", "holes", "masked_row", "all_true")
MODES = ("infer", "train", "eval_with_grad", "mixed")
MIXED = ("infer", "train", "infer", "eval_with_grad")  # (an inference call after weights changed in place)


def draw(seed: int) -> dict:
    rng = random.Random(seed)
    case = dict(kind=rng.choice(KINDS), use_bias=rng.random() < 0.7, go_backwards=rng.random() < 0.4,
                return_sequences=rng.random() < 0.6, return_state=rng.random() < 0.4,
                zero_output_for_mask=rng.random() < 0.3, dtype=rng.choice(["float32", "float64"]),
                batch=rng.choice([1, 2, 3, 9, 33]), steps=rng.choice([1, 2, 5, 11]), features=rng.choice([1, 3, 8]),
                units=rng.choice([1, 2, 7, 16]), mask=rng.choice(MASKS), stateful=rng.random() < 0.2,
                bidirectional=rng.random() < 0.3, merge_mode=rng.choice(["concat", "sum", "ave", "mul", None]),
                calls=rng.choice([2, 3, 4]), mode=rng.choice(MODES))
    if case["bidirectional"]:
        case["stateful"] = False
    return case


CASES = [draw(seed) for seed in range(N_CASES)]


def _id(case: dict) -> str:
    flags = [k for k in ("use_bias", "go_backwards", "return_sequences", "return_state", "zero_output_for_mask",
                         "stateful") if case[k]]
    wrap = [f"bidi-{case['merge_mode']}"] if case["bidirectional"] else []
    return "-".join([case["kind"], case["dtype"], case["mask"], case["mode"],
                     "x".join(str(case[k]) for k in ("batch", "steps", "features", "units"))] + wrap + flags)


def build(case: dict, fused: bool):
    options = dict(use_bias=case["use_bias"], go_backwards=case["go_backwards"],
                   return_sequences=case["return_sequences"], return_state=case["return_state"],
                   zero_output_for_mask=case["zero_output_for_mask"], stateful=case["stateful"], dtype=case["dtype"])
    if not fused:
        options["use_fused"] = False
    kind, units = case["kind"], case["units"]
    if kind == "lstm":
        layer = rnnkit.LSTM(units, **options)
    elif kind.startswith("gru"):
        layer = rnnkit.GRU(units, reset_after=kind == "gru", **options)
    else:
        layer = rnnkit.SimpleRNN(units, activation=kind, **options)
    if case["bidirectional"]:
        layer = rnnkit.Bidirectional(layer, merge_mode=case["merge_mode"])
    layer.build((case["batch"], case["steps"], case["features"]))
    return layer


def make_mask(kind: str, rng: np.random.RandomState, batch: int, steps: int):
    if kind == "none":
        return None
    if kind == "right_padded":
        lengths = rng.randint(0, steps + 1, size=batch)
        lengths[0] = steps
        return torch.arange(steps)[None] < torch.tensor(lengths)[:, None]
    if kind == "holes":
        return torch.tensor(rng.rand(batch, steps) < 0.6)
    mask = torch.ones(batch, steps, dtype=torch.bool)
    if kind == "masked_row":
        mask[-1] = False
    return mask


def run_call(layer, x: torch.Tensor, mask, mode: str):
    """(outputs, gradients or None) of one call; with gradients, the layer then takes an SGD step."""
    kwargs = {} if mask is None else {"mask": mask}
    if mode == "infer":
        with torch.no_grad():
            out = layer(x, training=False, **kwargs)
        return [out] if isinstance(out, torch.Tensor) else list(out), None
    x = x.clone().requires_grad_()
    out = layer(x, training=mode == "train", **kwargs)
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum() for o in outs)
    params = list(layer.parameters())
    grads = torch.autograd.grad(loss, [x, *params], allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, grads[1:]):
            if g is not None:
                p.sub_(0.05 * g)
    return [o.detach() for o in outs], grads


@pytest.mark.parametrize("seed", range(N_CASES), ids=lambda seed: _id(CASES[seed]))
def test_repeated_calls_equal_the_generic_loop(seed):
    case = CASES[seed]
    fast, ref = build(case, fused=True), build(case, fused=False)
    rng = np.random.RandomState(seed)
    weights = [(rng.uniform(-1, 1, w.shape) / np.sqrt(w.shape[0] if w.ndim == 2 else 3)).astype(w.dtype)
               for w in fast.get_weights()]
    fast.set_weights(weights)
    ref.set_weights(weights)
    assert rnnkit.explain(ref, torch.zeros(case["batch"], case["steps"], case["features"])).path == "generic"
    tol = dict(rtol=1e-4, atol=1e-5) if case["dtype"] == "float32" else dict(rtol=1e-9, atol=1e-10)
    shape = (case["batch"], case["steps"], case["features"])
    modes = [case["mode"] if case["mode"] != "mixed" else MIXED[call] for call in range(case["calls"])]
    if case["mode"] != "infer":  # (inference before and after the weights change in place: nothing kept from the
        modes = ["infer", "infer", *modes, "infer"]  # first two, a call plan included, may serve the last)
    for call, mode in enumerate(modes):
        x = torch.tensor(rng.randn(*shape).astype(case["dtype"]))
        mask = make_mask(case["mask"], rng, case["batch"], case["steps"])
        (got, got_grads), (want, want_grads) = run_call(fast, x, mask, mode), run_call(ref, x, mask, mode)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, **tol, msg=lambda m: f"call {call} ({mode}), output: {m}")
        if want_grads is None:
            continue
        for i, (g, w) in enumerate(zip(got_grads, want_grads)):
            g = torch.zeros_like(w) if g is None and w is not None else g
            w = torch.zeros_like(g) if w is None and g is not None else w
            if g is not None:
                torch.testing.assert_close(g, w, rtol=10 * tol["rtol"], atol=10 * tol["atol"],
                                           msg=lambda m: f"call {call} ({mode}), gradient {i}: {m}")


def test_drawn_cases_cover_the_options():
    """The seeded draw visits every kind, mask, mode and merge mode, and batches on both sides of the
    native kernel's and call plans' thresholds."""
    assert {c["kind"] for c in CASES} == set(KINDS)
    assert {c["mask"] for c in CASES} == set(MASKS)
    assert {c["mode"] for c in CASES} == set(MODES)
    assert {c["merge_mode"] for c in CASES if c["bidirectional"]} == {"concat", "sum", "ave", "mul", None}
    assert {c["batch"] for c in CASES} == {1, 2, 3, 9, 33}
    for flag in ("use_bias", "go_backwards", "return_sequences", "return_state", "stateful", "bidirectional"):
        assert {c[flag] for c in CASES} == {True, False}, flag
    assert any(c["stateful"] and c["mask"] != "none" and c["mode"] != "infer" for c in CASES)
    assert sum(c["mode"] == "mixed" and c["calls"] >= 3 for c in CASES) >= 5
    assert any(c["bidirectional"] and c["mask"] == "right_padded" and c["mode"] == "train" for c in CASES)
