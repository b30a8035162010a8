"""``compile=True`` (``rnnkit.layers.compiled_loop``): the compiled loop in chunks gives the one loop's numbers.

The chunking is checked with ``torch.compile`` replaced by the function itself (what is compiled is the
layer's own loop, so the chunks' arithmetic is the loop's): outputs and states equal the plain layer's
exactly over whole steps (to rounding over split ones) and gradients to rounding (the chunks add some of
them in another order), for every mask kind, direction and return convention. One test compiles for real.
"""

import itertools

import pytest
import torch

import rnnkit
from rnnkit.core.tree import flatten
from rnnkit.layers import compiled_loop
from rnnkit.tools.bench_custom import MinimalTanhCell  # h_t = tanh(x_t W + h_{t-1} R): a custom cell


def _mask(kind, batch=4, steps=11):
    gen = torch.Generator().manual_seed(1)
    if kind == "none":
        return None
    if kind == "right":
        return torch.arange(steps) < torch.tensor([steps, 5, 1, 8])[:, None]
    mask = torch.rand(batch, steps, generator=gen) > 0.5
    mask[0, :7] = False  # a row whose first chunks are all masked
    if kind == "fully_masked_row":
        mask[1] = False
    return mask


def _pair(**config):
    torch.manual_seed(0)
    plain = rnnkit.RNN(MinimalTanhCell(3), **config)
    compiled = rnnkit.RNN(MinimalTanhCell(3), compile=True, **config)
    plain.build((4, 11, 2))
    compiled.build((4, 11, 2))
    compiled.load_state_dict(plain.state_dict())
    return plain, compiled


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("mask_kind", ["none", "right", "holes", "fully_masked_row"])
@pytest.mark.parametrize("go_backwards,return_sequences,zero_output",
                         list(itertools.product([False, True], [False, True], [False, True])))
def test_chunks_give_the_one_loop_exactly(monkeypatch, split, mask_kind, go_backwards, return_sequences,
                                          zero_output):
    """Chunks over the split step (its input part over all steps first) and over the whole step."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    monkeypatch.setattr(compiled_loop, "CHUNK", 3)  # 11 steps: chunks of 3, 3, 3, 2
    if not split:
        monkeypatch.setattr(compiled_loop, "split_for", lambda *args: None)
    plain, compiled = _pair(go_backwards=go_backwards, return_sequences=return_sequences, return_state=True,
                            zero_output_for_mask=zero_output)
    real_loop = compiled.loop

    def loop(hoisted, x, states, mask, training, constants, split_step, weights):
        assert (split_step is not None) == split
        calls.append(flatten(x)[0].shape[1])
        return real_loop(hoisted, x, states, mask, training, constants, split_step, weights)

    monkeypatch.setattr(compiled, "loop", loop)
    x = torch.randn(4, 11, 2, dtype=torch.float32)
    mask = _mask(mask_kind)
    results = []
    for layer in (plain, compiled):
        xg = x.clone().requires_grad_()
        out, state = layer(xg, mask=mask)
        probes = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)), torch.ones_like(state)
        grads = torch.autograd.grad([out, state], [xg, *layer.parameters()], probes)
        results.append([out, state, *grads])
    assert calls == ([2, 3, 3, 3] if go_backwards else [3, 3, 3, 2])  # processing order
    # whole steps: outputs and states to the bit (gradients summed in another order); split ones: the products
    # over all steps at once and the small recurrent products as sums may round differently in the last bit
    exact = not split
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(b, a, rtol=0 if i < 2 and exact else 1e-5, atol=0 if i < 2 and exact else 1e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "holes"])
def test_many_lengths_compile_a_bounded_number_of_chunk_lengths(monkeypatch, go_backwards, mask_kind):
    """Sequences of nine lengths (chunks of 8): the first EXACT_LENGTHS remainders compile as they are, the
    others run in chunks of powers of two (a short sequence too), with the one loop's numbers (masks with holes,
    go_backwards)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    monkeypatch.setattr(compiled_loop, "CHUNK", 8)
    plain, compiled = _pair(go_backwards=go_backwards, return_sequences=True, return_state=True)
    real_loop = compiled.loop
    calls = []
    monkeypatch.setattr(compiled, "loop", lambda hoisted, x, *rest: calls.append(flatten(x)[0].shape[1])
                        or real_loop(hoisted, x, *rest))
    for steps in (10, 5, 6, 7, 13, 11, 20, 9, 3):
        x = torch.randn(4, steps, 2)
        gen = torch.Generator().manual_seed(steps)
        mask = None if mask_kind == "none" else torch.rand(4, steps, generator=gen) > 0.3
        calls.clear()
        results = []
        for layer in (plain, compiled):
            xg = x.clone().requires_grad_()
            out, state = layer(xg, mask=mask)
            grads = torch.autograd.grad([out, state], [xg, *layer.parameters()],
                                        [torch.ones_like(out) * 0.5, torch.ones_like(state)])
            results.append([out, state, *grads])
        for a, b in zip(*results):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        if steps == 13:  # 2, 5, 6, 7 compiled as they came; 13 = 8 + 5 (compiled)
            assert sorted(calls) == [5, 8]
        if steps == 11:  # 8 + 3, in powers of two: 8 + 2 + 1
            assert calls == ([1, 2, 8] if go_backwards else [8, 2, 1])
        if steps == 3:
            assert calls == ([1, 2] if go_backwards else [2, 1])
    lengths = {key[-1] for key in compiled._compiled_loops}
    assert lengths == {8, 2, 5, 6, 7, 1, 4}  # (20 = 8 + 8 + 4; 9 = 8 + 1)


def test_the_step_is_split_up_to_a_batch_size(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    monkeypatch.setattr(compiled_loop, "SPLIT_BATCH_UP_TO", 3)
    _, layer = _pair(return_sequences=True)
    x = torch.randn(4, 11, 2)
    assert compiled_loop.split_for(layer, x[:3], layer.get_initial_state(3), False, None) is not None
    assert compiled_loop.split_for(layer, x, layer.get_initial_state(4), False, None) is None
    assert compiled_loop.split_for(layer, x[:3], layer.get_initial_state(3), False, [x[:3, 0]]) is None  # constants
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compiled_loop.split_for(layer, x[:3], layer.get_initial_state(3), False, None) is None


def test_short_sequences_run_in_one_compiled_call(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: seen.append(kwargs) or fn)
    _, layer = _pair(return_sequences=True)
    layer(torch.randn(4, compiled_loop.CHUNK, 2))
    assert len(seen) == 1 and seen[0]["dynamic"] is False
    # on the CPU the wrapper is C++ too; the split step (batch 4) runs inductor's kernels on one thread
    assert seen[0]["options"] == {"cpp_wrapper": True, "cpp.threads": compiled_loop.SPLIT_STEP_THREADS}
    # above SPLIT_ONE_THREAD_UP_TO the split step's kernels keep torch's threads
    layer(torch.randn(compiled_loop.SPLIT_ONE_THREAD_UP_TO + 1, compiled_loop.CHUNK, 2))
    assert len(seen) == 2 and seen[1]["options"] == {"cpp_wrapper": True}
    assert list(layer._compiled_loops)[1][:3] == ("cpu", True, False)
    layer(torch.randn(compiled_loop.SPLIT_BATCH_UP_TO + 1, compiled_loop.CHUNK, 2))  # the whole step
    assert len(seen) == 3 and seen[2]["options"] == {"cpp_wrapper": True}
    assert list(layer._compiled_loops)[2][:3] == ("cpu", False, False)
    layer(torch.randn(4, compiled_loop.CHUNK, 2))  # each kind of step keeps its compiled loop
    assert len(seen) == 3


def test_each_layer_and_kind_of_chunk_compiles_on_its_own_code(monkeypatch):
    """Dynamo keeps a code object's graphs together up to ``recompile_limit`` and runs the code uncompiled
    past it: set to 1 here, three layers, each in training and inference over chunks of two lengths (12
    graphs), compile every one (one compiled code per layer and kind of chunk, not the one ``RNN.loop``)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, backend=backend, dynamic=False))
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    monkeypatch.setattr(compiled_loop, "CHUNK", 4)
    torch._dynamo.reset()
    x = torch.randn(5, 6, 2)  # chunks of 4 and 2 steps
    layers = [_pair(return_sequences=True) for _ in range(3)]
    for training in (True, False):
        for plain, compiled in layers:
            torch.testing.assert_close(compiled(x, training=training), plain(x, training=training))
    assert len(graphs) == 12
    torch._dynamo.reset()


@pytest.mark.parametrize("split,one_thread", [(True, True), (True, False), (False, False)])
def test_compiled_chunks_for_real_equal_the_plain_loop(monkeypatch, split, one_thread):
    """torch.compile itself (inductor, C++ wrapper) over chunks of 2 steps: 3 steps compile twice; the split
    step's kernels on one thread (at small batches) or on torch's threads, the whole step's on torch's."""
    monkeypatch.setattr(compiled_loop, "CHUNK", 2)
    if not split:
        monkeypatch.setattr(compiled_loop, "SPLIT_BATCH_UP_TO", 3)
    if not one_thread:
        monkeypatch.setattr(compiled_loop, "SPLIT_ONE_THREAD_UP_TO", 3)
    plain, compiled = _pair(return_sequences=True)
    x = torch.randn(4, 3, 2)
    mask = torch.tensor([[True, True, True], [True, False, False], [False, True, True], [False, False, True]])
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = [plain(xs[0], mask=mask), compiled(xs[1], mask=mask)]
    # (device, split, on one thread, training, grad mode, steps)
    assert list(compiled._compiled_loops) == [("cpu", split, one_thread, True, True, steps) for steps in (2, 1)]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for o in outs:
        (o * o).sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-5, atol=1e-6)
    for a, b in zip(plain.parameters(), compiled.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)


def test_dropout_masks_are_drawn_once_per_sequence_across_chunks(monkeypatch):
    """Keras draws a cell's dropout masks once per call: the chunks share them (the same draws as one loop)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    monkeypatch.setattr(compiled_loop, "CHUNK", 4)
    layers = []
    for compile_loop in (False, True):
        torch.manual_seed(0)
        layer = rnnkit.SimpleRNN(3, dropout=0.5, recurrent_dropout=0.3, use_fused=False, compile=compile_loop,
                                 return_sequences=True)
        layer.build((2, 9, 2))
        layers.append(layer)
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.randn(2, 9, 2)
    outs = []
    for layer in layers:
        torch.manual_seed(5)
        outs.append(layer(x, training=True))
    assert torch.equal(outs[0], outs[1])


def test_explain_reports_what_was_compiled_and_how_long_it_took(monkeypatch):
    """``rnnkit.explain`` of a compile=True layer: nothing compiled before the first call; then one compilation
    per chunk length (3 steps in chunks of 2: two), none more for the same call, two more for a new batch size
    (dynamo's guards on the shapes), each with the seconds its call took; past dynamo's recompile limit, the
    compilations it gave up (those calls run uncompiled, with the same numbers); a copy starts afresh."""
    import copy

    monkeypatch.setattr(compiled_loop, "CHUNK", 2)
    plain, compiled = _pair(return_sequences=True)
    x = torch.randn(4, 3, 2)
    assert plain.compiled_report() is None
    assert "torch.compile" not in str(rnnkit.explain(plain, x))
    plan = rnnkit.explain(compiled, x)
    assert plan.path == "generic"
    assert plan.detail == "torch.compile in chunks of up to 2 steps; nothing compiled yet: the first call compiles"
    with torch.no_grad():
        compiled(x)
        log = compiled._compile_log
        assert [key[-1] for key, _ in log] == [2, 1] and all(seconds > 0 for _, seconds in log)
        compiled(x)
        assert len(log) == 2
        compiled(torch.randn(3, 3, 2))
        assert len(log) == 4
        seconds = sum(s for _, s in log)
        assert rnnkit.explain(compiled, x).detail == (
            f"torch.compile in chunks of up to 2 steps; 4 compilations so far, {seconds:.1f} s")
        monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)  # (each chunk length has compiled twice)
        x5 = torch.randn(5, 3, 2)
        torch.testing.assert_close(compiled(x5), plain(x5), rtol=1e-5, atol=1e-6)
    assert [s for _, s in log[4:]] == [None, None]
    assert rnnkit.explain(compiled, x).detail == (
        f"torch.compile in chunks of up to 2 steps; 4 compilations so far, {seconds:.1f} s; 2 not compiled, run "
        "uncompiled (dynamo's limit of 2 compilations per kind of chunk, or a failure)")
    assert "nothing compiled yet" in copy.deepcopy(compiled).compiled_report()
    torch._dynamo.reset()


def test_a_compile_true_layer_inside_another_capture_logs_nothing():
    """Inside another graph's capture (here ``torch.compile`` of the layer, eager backend) what compiles is that
    graph, not the layer's loop: nothing is logged (dynamo's own frames there are not the layer's), the numbers
    are the plain layer's."""
    plain, compiled = _pair(return_sequences=True)
    x = torch.randn(4, 3, 2)
    torch.testing.assert_close(torch.compile(compiled, backend="eager")(x), plain(x))
    assert "_compile_log" not in compiled.__dict__
    assert "nothing compiled yet" in compiled.compiled_report()
    torch._dynamo.reset()
