"""``CallPlan``: plain inference calls run their kernel directly with the decisions of the calls before kept
(one-step calls on the native one-step entry, longer ones on the native ``infer`` op or torch's kernel).

Every result must be the general route's to the bit (outputs, stored states, the return convention), the plan
must run where its docstring says, and anything it was decided on that changes must send the call back to the
general route (which gives what the change asks for).
"""

import copy
import pickle

import pytest
import torch

import rnnkit
from rnnkit.kernels import native
from rnnkit.layers.call_plan import CallPlan, Declined

pytestmark = pytest.mark.skipif(native.unavailable() is not None, reason="the native kernel cannot be built here")

FEATURES, UNITS = 5, 7


def _layer(kind, units=UNITS, **kw):
    make = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "tanh": rnnkit.SimpleRNN,
            "relu": lambda units, **k: rnnkit.SimpleRNN(units, activation="relu", **k)}[kind]
    kw.setdefault("stateful", True)
    return make(units, **kw)


def _twins(kind, batch=2, dtype=torch.float32, carry=False, steps=1, **kw):
    """A layer and a copy with the same weights, both called twice on ``steps`` steps (``carry``: not stateful,
    given the states as ``initial_state``)."""
    torch.manual_seed(0)
    if carry:
        kw.update(stateful=False, return_state=True)
    a, b = _layer(kind, dtype=dtype, **kw), _layer(kind, dtype=dtype, **kw)
    x = torch.randn(batch, steps, FEATURES, dtype=dtype)
    a.build(x.shape)
    b.build(x.shape)
    b.load_state_dict(a.state_dict())
    states = _zeros(a, batch, dtype) if carry else None
    with torch.no_grad():
        for _ in range(2):  # (a plan is made on the second call with the same facts)
            a(x, initial_state=states)
            b.prepare(x, initial_state=states).run()
    return a, b


def _zeros(layer, batch, dtype=torch.float32):
    units = layer.cell.units
    return [torch.zeros(batch, units, dtype=dtype) for _ in range(2 if isinstance(layer, rnnkit.LSTM) else 1)]


class _Count:
    """Counts the calls of a plan's one-step entry."""

    def __init__(self, layer):
        self.n = 0
        plan = _kept(layer)
        assert isinstance(plan, CallPlan), "no plan was made"
        inner = plan.runner

        def runner(*args):
            self.n += 1
            return inner(*args)
        plan.runner = runner
        self.kernel = plan.kernel


def _kept(layer):
    """What the layer keeps for its latest new kind of call (a plan, declined facts, or None)."""
    plans = layer.__dict__.get("_call_plans")
    return list(plans.values())[-1] if plans else None


def _planned(layer):
    """Whether the layer keeps a plan (not none, not a declined call's facts)."""
    return isinstance(_kept(layer), CallPlan)


def _leaves(result):
    return result if isinstance(result, list) else [result]


def _same(a, b):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        assert torch.equal(x, y)


def _stream(a, b, batch, steps=4, dtype=torch.float32, carry=False, per_call=1):
    """Feed both layers the same calls of ``per_call`` steps: ``a`` through its call, ``b`` through the general
    route (a stateful layer's stored states; ``carry``: each call's states given to the next as
    ``initial_state``)."""
    sa = sb = _zeros(a, batch, dtype) if carry else None
    for _ in range(steps):
        x = torch.randn(batch, per_call, FEATURES, dtype=dtype)
        with torch.no_grad():
            ya, yb = a(x, initial_state=sa), b.prepare(x, initial_state=sb).run()
        _same(ya, yb)
        if carry:
            sa, sb = ya[1:], yb[1:]
    if a.stateful:
        for s, t in zip(a.states, b.states, strict=True):
            assert torch.equal(s, t)


@pytest.mark.parametrize("kind", ["lstm", "gru", "tanh", "relu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("conv", [{}, {"return_sequences": True}, {"return_state": True},
                                  {"return_sequences": True, "return_state": True, "use_bias": False}])
@pytest.mark.parametrize("states", ["stored", "given", "zeros"])
def test_plan_equals_the_general_route(kind, dtype, batch, conv, states):
    carry = states == "given"
    a, b = _twins(kind, batch, dtype, carry=carry, **conv) if states != "zeros" else _twins(
        kind, batch, dtype, **dict(conv, stateful=False))
    mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(kind, kind)
    count = _Count(a)
    _stream(a, b, batch, dtype=dtype, carry=carry)
    assert count.n == 4
    # (an LSTM at this batch: torch's kernel)
    assert count.kernel == ("step" if native.preferred(mode, batch, UNITS) else "torch")


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 5, 300])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sequences", [True, False])
def test_step_entry_is_the_infer_op_for_one_step(mode, dtype, batch, bias, sequences):
    gates = {"lstm": 4, "gru": 3}.get(mode, 1)
    d, u = 40, 24  # 300 rows: the rows are split among threads
    x = torch.randn(batch, 1, d, dtype=dtype)
    w_ih_t, whh_t = torch.randn(d, gates * u, dtype=dtype), torch.randn(u, gates * u, dtype=dtype)
    b_ih, b_hh = (torch.randn(gates * u, dtype=dtype), torch.randn(gates * u, dtype=dtype)) if bias else (None, None)
    h0 = torch.randn(batch, u, dtype=dtype)
    c0 = torch.randn(batch, u, dtype=dtype) if mode == "lstm" else None
    want = torch.ops.rnnkit_native.infer(x, w_ih_t, b_ih, whh_t, b_hh, h0, c0, None, native.MODES[mode], False,
                                         False, False)
    got = native._MODULE[0].step(x, w_ih_t, b_ih, whh_t, b_hh, h0, c0, native.MODES[mode], sequences)
    assert torch.equal(got[0], want[0] if sequences else want[0][:, 0])
    for g, w in zip(got[1:], want[1:], strict=True):
        assert torch.equal(g, w)
    assert got[0].data_ptr() != got[1].data_ptr()  # the output is not the stored state


def test_step_entry_checks_its_states():
    x, w_ih_t, whh_t = torch.randn(2, 1, 3), torch.randn(3, 16), torch.randn(4, 16)
    with pytest.raises(RuntimeError, match="states must be contiguous"):
        native._MODULE[0].step(x, w_ih_t, None, whh_t, None, torch.zeros(2, 4), None, native.MODES["lstm"], False)
    with pytest.raises(RuntimeError, match="states must be contiguous"):
        native._MODULE[0].step(x, w_ih_t, None, whh_t, None, torch.zeros(3, 4), torch.zeros(3, 4),
                               native.MODES["lstm"], False)


def _changed(kind, change, **kw):
    """After ``change(a, b)`` (applied to both), the plan's layer still gives the general route's numbers."""
    a, b = _twins(kind, **kw)
    _stream(a, b, 2, steps=2)
    change(a)
    change(b)
    _stream(a, b, 2, steps=2)
    return a, b


def _edit_in_place(layer):
    with torch.no_grad():
        layer.cell.recurrent_kernel.mul_(1.5)
        layer.cell.bias.add_(0.25)


def _replace_kernel(layer):
    layer.cell.kernel = torch.nn.Parameter(layer.cell.kernel.detach() * 2)


def _move(layer):
    layer.double().float()  # new storage for every weight and state


@pytest.mark.parametrize("change", [_edit_in_place, _replace_kernel, _move,
                                    lambda layer: layer.reset_states(),
                                    lambda layer: layer.reset_states([torch.ones(2, UNITS), torch.ones(2, UNITS)]),
                                    lambda layer: layer.load_state_dict({k: v + 1 for k, v in
                                                                         layer.state_dict().items()})])
def test_a_changed_weight_or_state_is_read(change):
    a, b = _changed("lstm", change)
    assert _planned(a)


@pytest.mark.parametrize("which", ["state_0", "state_1"])
def test_stored_states_the_one_step_entry_cannot_read_go_the_general_route(which):
    a, b = _twins("lstm")
    count = _Count(a)
    assert count.kernel == "step"
    for layer in (a, b):  # the same values, column-major
        layer._buffers[which] = layer._buffers[which].t().contiguous().t()
    assert not a._buffers[which].is_contiguous()
    x = torch.randn(2, 1, FEATURES)
    with torch.no_grad():
        _same(a(x), b.prepare(x).run())
    assert count.n == 0


def test_a_changed_configuration_goes_the_general_route():
    def config(layer):
        layer.return_state = True
        layer.cell.activation = rnnkit.activations.get("relu")

    a, b = _changed("tanh", config)
    x = torch.randn(2, 1, FEATURES)
    with torch.no_grad():
        result = a(x)
    assert isinstance(result, list) and len(result) == 2  # [output, state]
    assert (result[1] >= 0).all()  # relu


def test_no_plan_runs_with_gradients_autocast_or_another_batch():
    a, b = _twins("gru")
    count = _Count(a)
    x = torch.randn(2, 1, FEATURES)
    y = a(x)  # gradients on: the general route, a graph
    b.prepare(x).run()
    assert y.requires_grad
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _same(a(x), b.prepare(x).run())  # autocast's dtype rules: torch's kernel
    with torch.no_grad():
        x = torch.randn(2, 3, FEATURES)
        _same(a(x), b.prepare(x).run())  # three steps: the general route
        with pytest.raises(ValueError, match="batch size"):
            a(torch.randn(4, 1, FEATURES))  # another batch: the general route's error
    assert count.n == 0


def test_training_with_dropout_makes_no_plan():
    a = _layer("lstm", dropout=0.5)
    x = torch.randn(2, 1, FEATURES)
    a.train()
    with torch.no_grad():
        for _ in range(3):
            a(x)
        assert not _planned(a)
        a.eval()
        for _ in range(2):
            a(x)
        assert _planned(a)  # no dropout in inference


def test_plans_stay_made_across_calls():
    a, b = _twins("lstm")
    plan = _kept(a)
    count = _Count(a)
    _stream(a, b, 2, steps=5)
    assert _kept(a) is plan and count.n == 5


def test_copies_make_their_own_plan():
    a, b = _twins("gru")
    for c in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert not _planned(c)
        d = copy.deepcopy(b)
        _stream(c, d, 2, steps=2)
        assert _planned(c)
        assert not torch.equal(c.states[0], a.states[0])  # its own states, not the original's


def test_given_states_the_entry_cannot_read_go_the_general_route():
    a, b = _twins("lstm", carry=True)
    x = torch.randn(2, 1, FEATURES)
    h = torch.randn(UNITS, 2)
    count = _Count(a)
    for states in ((h.t().contiguous(), h.t().contiguous()),  # a tuple of fitting tensors: the plan
                   [h.t(), h.t()],  # strided
                   [h.t().double(), h.t().contiguous()],  # another dtype: converted
                   [h.t().numpy(), h.t().contiguous()]):  # arrays
        with torch.no_grad():
            _same(a(x, initial_state=states), b.prepare(x, initial_state=states).run())
    assert count.n == 1
    assert isinstance(_kept(a), Declined)  # (refused more often than run: declined)
    with torch.no_grad(), pytest.raises(ValueError, match="initial_state"):
        a(x, initial_state=[torch.zeros(3, UNITS), torch.zeros(3, UNITS)])  # the general route's error
    with torch.no_grad(), pytest.raises(ValueError, match="initial_state"):
        a(x, initial_state=[torch.zeros(2, UNITS)])


def test_a_stateful_layer_given_states_goes_the_general_route():
    a, b = _twins("gru")
    count = _Count(a)
    x, given = torch.randn(2, 1, FEATURES), [torch.ones(2, UNITS)]
    with torch.no_grad():
        _same(a(x, initial_state=given), b.prepare(x, initial_state=given).run())
    assert count.n == 0 and not _planned(a)
    assert torch.equal(a.states[0], b.states[0])
    _stream(a, b, 2, steps=2)  # the plain calls' plan, kept beside, runs them
    assert count.n == 2


def test_the_thread_count_is_a_fact_of_the_plan():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a, b = _twins("lstm", batch=64)  # 64 x 7 units: the native kernel with two threads, torch's with one
        count = _Count(a)
        torch.set_num_threads(1)
        _stream(a, b, 64, steps=2)
        assert count.n == 0
        torch.set_num_threads(2)
        _stream(a, b, 64, steps=2)
        assert _planned(a)
    finally:
        torch.set_num_threads(threads)


def test_compiled_calls_do_not_recompile_for_bookkeeping():
    """Per-call bookkeeping (dropout masks, a reset's flag) is not a configuration change: a compiled layer
    compiles once (the change counter, read while compiling, made torch.compile recompile at every call)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    gru = rnnkit.GRU(UNITS, dropout=0.3)
    gru.build((2, 6, FEATURES))
    counter = CompileCounter()
    run = torch.compile(lambda t: gru(t, training=True), backend=counter)
    for _ in range(4):
        run(torch.randn(2, 6, FEATURES)).sum().backward()
    assert counter.frame_count == 1
    torch._dynamo.reset()
    stream = _layer("gru")
    stream.build((2, 1, FEATURES))
    counter = CompileCounter()
    run = torch.compile(lambda t: stream(t), backend=counter)
    with torch.no_grad():
        for _ in range(3):
            stream.reset_states()
            for _ in range(2):
                run(torch.randn(2, 1, FEATURES))
    assert counter.frame_count <= 2  # (the first call after a reset, and the rest)


def test_graph_captures_after_eager_calls_never_read_the_plan():
    from torch.fx.experimental.proxy_tensor import make_fx

    a, b = _twins("gru", stateful=False)
    x = torch.randn(2, 1, FEATURES)
    with torch.no_grad():
        assert _planned(a)
        want = b.prepare(x).run()
        torch._dynamo.reset()  # (captured graphs run torch's kernel, as an op: equal to rounding)
        torch.testing.assert_close(torch.compile(a, fullgraph=True, backend="eager")(x), want)
        graph = make_fx(lambda t: a(t))(x)  # a dispatch-level trace records ops (the one-step entry is not one)
        assert any("rnnkit_native" in str(n.target) for n in graph.graph.nodes)
        _same(graph(x), want)
    exported = torch.export.export(a, (x,), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), want)


def test_tensors_whose_memory_is_not_their_value_go_the_general_route():
    a, b = _twins("gru", stateful=False)
    x = torch.randn(2, 1, FEATURES)
    with torch.no_grad():
        _same(a(torch._neg_view(x)), b.prepare(-x).run())  # a negation bit: the memory holds +x
        zeros = torch._efficientzerotensor((2, 1, FEATURES))
        _same(a(zeros), b.prepare(torch.zeros(2, 1, FEATURES)).run())


def test_layer_subclasses_overriding_the_call_get_no_plan():
    class Clipped(rnnkit.GRU):
        def finish_call(self, last, outputs, new_states, mask):
            return super().finish_call(last.clamp(-0.1, 0.1), outputs, new_states, mask)

    layer = Clipped(UNITS, stateful=True)
    x = torch.randn(2, 1, FEATURES) * 3
    with torch.no_grad():
        for _ in range(3):
            assert layer(x).abs().max() <= 0.1
    assert not _planned(layer)


def test_cells_with_their_own_initial_states_start_from_them():
    from rnnkit.cells.gru import GRUCell

    class Ones(GRUCell):
        def get_initial_state(self, batch_size=None):
            return [torch.ones(batch_size, self.units)]

    layer = rnnkit.RNN(Ones(UNITS))
    x = torch.randn(2, 1, FEATURES)
    with torch.no_grad():
        for _ in range(3):
            _same(layer(x), layer.prepare(x).run())
        loop = rnnkit.RNN(Ones(UNITS), use_fused=False)
        loop.build(x.shape)
        loop.load_state_dict(layer.state_dict())
        torch.testing.assert_close(layer(x), loop(x))
    assert not _planned(layer)


def test_step_entry_checks_its_weights():
    x, h = torch.randn(2, 1, 3), torch.zeros(2, 4)
    step, lstm = native._MODULE[0].step, native.MODES["lstm"]
    with pytest.raises(RuntimeError, match="weights must be"):  # a projection narrower than the gates
        step(x, torch.randn(3, 1), None, torch.randn(4, 16), None, h, h, lstm, False)
    with pytest.raises(RuntimeError, match="biases of G"):
        step(x, torch.randn(3, 16), torch.randn(1), torch.randn(4, 16), None, h, h, lstm, False)
    with pytest.raises(RuntimeError, match="dense CPU tensors"):
        step(x, torch.randn(3, 16), None, torch.randn(4, 16), None, h.double(), h, lstm, False)
    with pytest.raises(RuntimeError, match="unknown mode"):
        step(x, torch.randn(3, 16), None, torch.randn(4, 16), None, h, h, 9, False)


def test_declined_calls_are_not_asked_again_for_the_same_facts(monkeypatch):
    from rnnkit.layers import call_plan

    asked = []
    original = call_plan.plan_for
    monkeypatch.setattr(call_plan, "plan_for", lambda *a, **k: asked.append(1) or original(*a, **k))
    layer = _layer("gru", stateful=False)
    x = torch.randn(2, 1, FEATURES)
    for _ in range(3):
        layer(x)  # gradients on: asked on the second call (a plan for calls with gradients)
    assert len(asked) == 1 and _planned(layer) and _kept(layer).grad
    with torch.no_grad():
        layer(x)  # calls without gradients are another kind: seen once, not asked yet
        assert len(asked) == 1 and not _planned(layer)
        for _ in range(3):
            layer(x)  # the second call with the same facts asks, and the plan runs after it
    assert len(asked) == 2 and _planned(layer) and not _kept(layer).grad
    dropout = _layer("gru", stateful=False, dropout=0.5)
    with torch.no_grad():
        for _ in range(4):
            dropout(x, training=True)  # (dropout in training: declined on the second call, not asked again)
    assert len(asked) == 3 and isinstance(_kept(dropout), Declined)
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(2, 3 + _, FEATURES))  # ever-changing shapes: never asked
    assert len(asked) == 3


@pytest.mark.parametrize("kind,units,kernel", [("lstm", UNITS, "infer"), ("lstm", 80, "torch"), ("gru", UNITS, "infer"),
                                               ("gru", 80, "infer"), ("tanh", UNITS, "infer"), ("relu", 80, "infer")])
@pytest.mark.parametrize("conv", [{}, {"return_sequences": True, "go_backwards": True},
                                  {"return_state": True, "go_backwards": True},
                                  {"return_sequences": True, "return_state": True, "use_bias": False}])
@pytest.mark.parametrize("states", ["stored", "given", "zeros"])
def test_plans_of_longer_calls_equal_the_general_route(kind, units, kernel, conv, states):
    """Calls of several steps: the native kernel's infer op, or torch's kernel (an LSTM of more than 64 units)."""
    carry = states == "given"
    kw = dict(conv, units=units, steps=5)
    a, b = _twins(kind, 3, carry=carry, **kw) if states != "zeros" else _twins(kind, 3, **dict(kw, stateful=False))
    count = _Count(a)
    _stream(a, b, 3, steps=3, carry=carry, per_call=5)
    assert count.n == 3 and count.kernel == kernel


def test_a_plan_follows_the_input_length():
    a, b = _twins("gru", 2, steps=4)
    count = _Count(a)
    _stream(a, b, 2, steps=2, per_call=4)
    assert count.n == 2
    _stream(a, b, 2, steps=3, per_call=1)  # another length: the general route twice, then a new plan
    assert _planned(a) and _kept(a).kernel == "step"


def test_calls_a_plan_keeps_refusing_are_declined_not_planned_again(monkeypatch):
    """Weights edited before every call (a moving average), or a masked input with given states: the general
    route each time, and no plan made at every call (that cost more than the call)."""
    from rnnkit.layers import call_plan

    asked = []
    original = call_plan.plan_for
    monkeypatch.setattr(call_plan, "plan_for", lambda *a, **k: asked.append(1) or original(*a, **k))
    a, b = _twins("gru", 2, steps=4, stateful=False)
    for _ in range(6):
        with torch.no_grad():
            for layer in (a, b):
                layer.cell.kernel.mul_(0.99)
        _stream(a, b, 2, steps=1, per_call=4)
    assert len(asked) == 1  # (only the first plan: new weights at every call are new facts, seen once each)
    masked = torch.randn(2, 4, FEATURES)
    masked._keras_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    states = [torch.zeros(2, UNITS)]
    before = len(asked)
    with torch.no_grad():
        for _ in range(4):
            _same(a(masked, initial_state=states), b.prepare(masked, initial_state=states).run())
    assert len(asked) == before


def test_a_reset_flag_sends_stateful_calls_to_the_general_route():
    """A checkpoint taken right after reset_states() holds the flag that lets the next call pick its batch size:
    loaded into a layer with a plan, the next call still gets the general route's rule."""
    a, b = _twins("gru", 2)
    fresh = _layer("gru")
    fresh.build((2, 1, FEATURES))
    with torch.no_grad():
        fresh(torch.randn(2, 1, FEATURES))
    fresh.reset_states()
    flags = {k: v for k, v in fresh.state_dict().items() if "state" in k}
    for layer in (a, b):
        layer.load_state_dict(flags, strict=False)
    assert a._states_zeroed and _planned(a)
    x = torch.randn(2, 1, FEATURES)  # the same batch size: the call holds the layer to it (the flag cleared)
    with torch.no_grad():
        _same(a(x), b.prepare(x).run())
        assert not a._states_zeroed and not b._states_zeroed
        for layer in (a, b):
            with pytest.raises(ValueError, match="batch size 2"):
                layer(torch.randn(4, 1, FEATURES))


def test_a_declined_call_is_planned_once_its_weights_change():
    a = _layer("gru", stateful=False, return_state=True)
    a.build((2, 1, FEATURES))
    x, states = torch.randn(2, 1, FEATURES, dtype=torch.float64), [torch.zeros(2, UNITS, dtype=torch.float64)]
    with torch.no_grad():
        for _ in range(3):
            a(x, initial_state=states)  # float64 calls of a float32 layer: converted, declined
        assert isinstance(_kept(a), Declined)
        a.double()
        for _ in range(3):
            a(x, initial_state=states)
    assert _planned(a)


def test_a_layer_keeps_plans_for_a_few_kinds_of_calls():
    """Calls alternating between input lengths (or given and stored states) each keep their plan, up to
    PLANS_KEPT kinds; more kinds forget the oldest."""
    from rnnkit.layers.call_plan import PLANS_KEPT

    a, b = _twins("gru", 2, stateful=False)
    counts = []
    for steps in (1, 3, 5):
        _stream(a, b, 2, steps=2, per_call=steps)  # (two calls: a plan for this length)
        counts.append(_Count(a))
    for _ in range(2):
        for steps in (1, 3, 5):
            _stream(a, b, 2, steps=1, per_call=steps)
    assert [c.n for c in counts] == [2, 2, 2]
    assert len(a.__dict__["_call_plans"]) == 3
    for steps in range(6, 6 + PLANS_KEPT):
        _stream(a, b, 2, steps=1, per_call=steps)
    assert len(a.__dict__["_call_plans"]) == PLANS_KEPT


@pytest.mark.parametrize("where", ["pre", "forward", "global"])
def test_hooks_run_around_a_planned_call_and_the_plan_resumes_after_them(where):
    """A plan runs before the module call's machinery only where that has nothing to do: with a hook (the
    layer's or a global one) the call goes through it, the plan inside; without, straight to the plan."""
    a, b = _twins("gru")
    count = _Count(a)
    x = torch.randn(2, 1, FEATURES)
    seen = []
    if where == "pre":
        handle = a.register_forward_pre_hook(lambda module, args: seen.append(module) or None)
    elif where == "forward":
        handle = a.register_forward_hook(lambda module, args, out: seen.append(module) or out * 2)
    else:
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda module, args, out: seen.append(module) or out * 2)
    try:
        with torch.no_grad():
            y, want = a(x), b.prepare(x).run()
    finally:
        handle.remove()
    assert seen == [a] and torch.equal(y, want if where == "pre" else want * 2)
    assert count.n == 1  # the plan ran inside the module call
    with torch.no_grad():
        _same(a(x), b.prepare(x).run())
    assert count.n == 2 and seen == [a]


def test_compiled_module_calls_and_activity_regularizers_go_the_module_call(monkeypatch):
    a, _ = _twins("tanh", activity_regularizer="l2")
    assert _planned(a)
    x = torch.randn(2, 1, FEATURES)
    for _ in range(2):  # (stateful: each call's output differs)
        with torch.no_grad():
            y = a(x)
        assert len(a.losses) == 1 and torch.equal(a.losses[0], 0.01 * (y ** 2).sum())  # this call's
    calls = []

    def compile(fn, **kwargs):
        return lambda *args, **kw: calls.append(1) or fn(*args, **kw)
    monkeypatch.setattr(torch, "compile", compile)
    c, d = _twins("tanh")
    c.compile()  # (an attribute set: the plan is made anew after two calls)
    for _ in range(4):
        with torch.no_grad():
            _same(c(x), d.prepare(x).run())
    assert calls == [1] * 4 and _planned(c)  # the module's compiled call ran every time


@pytest.mark.parametrize("states", ["stored", "given"])
def test_a_planned_call_skips_the_module_call(monkeypatch, states):
    """``layer(x)`` and ``layer(x, initial_state=...)`` run a kept plan without ``Layer.__call__`` and
    ``nn.Module.__call__`` (1.2-1.3 us of a one-step call)."""
    from rnnkit.engine.layer import Layer

    carry = states == "given"
    a, b = _twins("gru", carry=carry)
    count = _Count(a)
    calls = []
    module_call = Layer.__call__
    monkeypatch.setattr(Layer, "__call__", lambda self, *args, **kw: calls.append(1) or module_call(self, *args, **kw))
    _stream(a, b, 2, carry=carry)
    assert count.n == 4 and calls == []
    with torch.no_grad():
        a(torch.randn(2, 3, FEATURES), initial_state=_zeros(a, 2) if carry else None)  # no plan for these facts
    assert calls == [1]
