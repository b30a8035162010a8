"""``CallPlan`` for calls with gradients on (training steps): plain calls of a fusable layer run their kernel with
the decisions of the calls before kept, the weights converted anew at each call (differentiable; an optimizer
step between calls changes their versions, not the plan).

Outputs, stored states, the return convention and every gradient (input, weights, given states) must be the
general route's to the bit, and the plan must run where the module docstring says.
"""

import pytest
import torch

import rnnkit
from rnnkit.kernels import native
from rnnkit.layers.call_plan import CallPlan

pytestmark = pytest.mark.skipif(native.unavailable() is not None, reason="the native kernel cannot be built here")

FEATURES = 5


def _pair(kind, units, **kw):
    """A layer and a copy with the same weights."""
    make = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "tanh": rnnkit.SimpleRNN}[kind]
    torch.manual_seed(0)
    a, b = make(units, **kw), make(units, **kw)
    a.build((3, 1, FEATURES))
    b.build((3, 1, FEATURES))
    b.load_state_dict(a.state_dict())
    return a, b


def _plans(layer):
    return [p for p in layer.__dict__.get("_call_plans", {}).values() if isinstance(p, CallPlan)]


def _count(layer):
    """Counts the runs of the layer's (one) training plan."""
    (plan,) = [p for p in _plans(layer) if p.grad]
    runs = []
    inner = plan.runner
    plan.runner = lambda *args: runs.append(1) or inner(*args)
    return runs


def _leaves(result):
    return result if isinstance(result, list) else [result]


def _train_step(layer, x, states, planned: bool):
    """One training step: the call (``planned``: the layer's call, else the general route), a loss on every
    output, its gradients; then an optimizer-like update of the weights in place."""
    for t in [x, *layer.parameters(), *(states or [])]:
        t.grad = None
    out = layer(x, initial_state=states) if planned else layer.prepare(x, initial_state=states).run()
    loss = sum((o * torch.linspace(0.5, 1.5, o.shape[-1])).sum() for o in _leaves(out))
    loss.backward()
    grads = [t.grad for t in [x, *layer.parameters(), *(states or [])]]
    with torch.no_grad():
        for p in layer.parameters():
            p -= 0.01 * p.grad
    return [o.detach() for o in _leaves(out)], grads


# LSTM at 7 units runs the native kernel, at 80 units (batch 3) torch's; GRU and SimpleRNN the native one
@pytest.mark.parametrize("kind,units", [("lstm", 7), ("lstm", 80), ("gru", 7), ("tanh", 7)])
@pytest.mark.parametrize("conv", [{}, {"return_sequences": True, "go_backwards": True}, {"return_state": True},
                                  {"return_sequences": True, "return_state": True, "use_bias": False}])
@pytest.mark.parametrize("states", ["stored", "given", "zeros"])
def test_training_plan_equals_the_general_route(kind, units, conv, states):
    a, b = _pair(kind, units, stateful=states == "stored", **conv)
    runs = None
    for step in range(4):
        x = torch.randn(3, 4, FEATURES, requires_grad=True)
        given = ([torch.randn(3, units, requires_grad=True) for _ in range(2 if kind == "lstm" else 1)]
                 if states == "given" else None)
        out_a, grads_a = _train_step(a, x, given, planned=True)
        xb = x.detach().clone().requires_grad_()
        given_b = [s.detach().clone().requires_grad_() for s in given] if given else None
        out_b, grads_b = _train_step(b, xb, given_b, planned=False)
        for u, v in zip(out_a + grads_a, out_b + grads_b, strict=True):
            assert torch.equal(u, v)
        if states == "stored":
            for s, t in zip(a.states, b.states, strict=True):
                assert torch.equal(s, t) and not s.requires_grad
        if step == 1:  # (a plan is made on the second call with the same facts)
            runs = _count(a)
    assert runs == [1, 1]  # the third and fourth steps, after optimizer updates of the weights


def test_calls_with_and_without_gradients_keep_a_plan_each():
    a, _ = _pair("gru", 7)
    x = torch.randn(2, 3, FEATURES)
    for _ in range(3):
        a(x)
        with torch.no_grad():
            a(x)
    assert sorted(p.grad for p in _plans(a)) == [False, True]
    assert all(p.uses == 1 for p in _plans(a))  # (each made on its second call, ran the third)


def test_training_with_dropout_makes_no_plan_with_gradients_either():
    a, _ = _pair("lstm", 7, dropout=0.5)
    a.train()
    x = torch.randn(2, 3, FEATURES)
    for _ in range(3):
        a(x).sum().backward()
    assert not _plans(a)


def test_a_replaced_weight_sends_the_call_to_the_general_route():
    a, b = _pair("lstm", 80)
    x = torch.randn(3, 2, FEATURES)
    for _ in range(3):
        a(x)
    runs = _count(a)
    a.cell.kernel = torch.nn.Parameter(a.cell.kernel.detach() * 2)
    b.cell.kernel = torch.nn.Parameter(b.cell.kernel.detach() * 2)
    assert torch.equal(a(x), b.prepare(x).run())
    assert runs == []


@pytest.mark.parametrize("where", ["layer", "global"])
def test_backward_hooks_run_with_a_training_plan(where):
    """A full backward hook, the layer's or a global one, runs on a layer that keeps a training plan (the
    module call wraps the outputs: the plan runs inside it, or a layer's hook, whose registration changes the
    layer's attributes, sends it back to the general route), with the general route's gradients; plans resume
    after its removal."""
    a, b = _pair("gru", 7)
    for _ in range(3):
        x = torch.randn(2, 3, FEATURES, requires_grad=True)
        a(x).sum().backward()
    seen = []
    hook = (a.register_full_backward_hook(lambda module, g_in, g_out: seen.append(g_in[0].clone()))
            if where == "layer" else
            torch.nn.modules.module.register_module_full_backward_hook(
                lambda module, g_in, g_out: seen.append(g_in[0].clone()) if module is a else None))
    try:
        out, grads = _train_step(a, x, None, planned=True)
    finally:
        hook.remove()
    xb = x.detach().clone().requires_grad_()
    out_b, grads_b = _train_step(b, xb, None, planned=False)
    assert len(seen) == 1 and torch.equal(seen[0], grads_b[0])  # (the hook saw the input's gradient)
    for u, v in zip(out + grads, out_b + grads_b, strict=True):
        assert torch.equal(u, v)
    for _ in range(3):
        a(x).sum().backward()
    assert any(p.grad and p.uses for p in _plans(a))


def test_weights_moved_to_another_dtype_send_the_call_to_the_general_route():
    """``.double()`` keeps the parameter objects and gives them new storage: the general route then answers
    (here its conversion of the input), as for a layer that never had a plan."""
    a, b = _pair("lstm", 80)
    x = torch.randn(3, 2, FEATURES)
    for _ in range(3):
        a(x)
    a.double()
    b.double()
    ya, yb = a(x), b.prepare(x).run()
    assert ya.dtype == yb.dtype == torch.float64 and torch.equal(ya, yb)
