"""``torch.func`` over recurrent layers: the fused kernels have no vmap/jvp rule, so built-in cells
take the hoisted loop under transforms (``explain`` says so) and stay exact."""

import copy

import pytest
import torch
from torch.func import functional_call, grad, jvp, stack_module_state, vmap

import rnnkit

MASK = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, return_sequences=True).double()
    layer(torch.zeros(1, 5, 3, dtype=torch.float64))
    return layer


@pytest.mark.parametrize("masked", [False, True])
def test_vmap_over_the_batch(lstm, masked):
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    if masked:
        got = vmap(lambda xi, mi: lstm(xi, mask=mi))(x.unsqueeze(1), MASK.unsqueeze(1)).squeeze(1)
        want = lstm(x, mask=MASK)
    else:
        got, want = vmap(lambda xi: lstm(xi))(x.unsqueeze(1)).squeeze(1), lstm(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_explain_under_a_transform(lstm):
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    assert rnnkit.explain(lstm, x).path == "fused"
    seen = []

    def f(xi):
        seen.append(rnnkit.explain(lstm, xi))
        return lstm(xi)

    vmap(f)(x.unsqueeze(1))
    assert seen[0].path == "hoisted" and "torch.func" in str(seen[0])


def test_jvp_matches_finite_differences(lstm):
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    v = torch.randn_like(x)
    _, tangent = jvp(lambda xi: lstm(xi, mask=MASK[:2]), (x,), (v,))
    eps = 1e-6
    fd = (lstm(x + eps * v, mask=MASK[:2]) - lstm(x - eps * v, mask=MASK[:2])) / (2 * eps)
    torch.testing.assert_close(tangent, fd, rtol=1e-6, atol=1e-8)


def test_grad_through_functional_call_equals_autograd(lstm):
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in lstm.named_parameters()}
    got = grad(lambda p: functional_call(lstm, p, (x,)).square().sum())(params)
    want = torch.autograd.grad(lstm(x).square().sum(), list(lstm.parameters()))
    for (name, g), w in zip(got.items(), want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12, msg=name)


def test_vmap_over_stacked_model_parameters(lstm):
    """An ensemble: one call per set of weights, as torch.func.stack_module_state does it."""
    members = [copy.deepcopy(lstm) for _ in range(3)]
    for i, m in enumerate(members):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.1 * i)
    params, buffers = stack_module_state(members)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    got = vmap(lambda p, b: functional_call(lstm, (p, b), (x,)))(params, buffers)
    for i, m in enumerate(members):
        torch.testing.assert_close(got[i], m(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: rnnkit.SimpleRNN(4), lambda: rnnkit.LSTM(4, return_sequences=True),
                                  lambda: rnnkit.RNN(rnnkit.GRUCell(4))], ids=["simple", "lstm", "rnn-gru"])
def test_grad_and_vmap_with_initial_states_after_planned_calls(make):
    """Given initial states, a plain eager call keeps a plan for the next ones (rnnkit.layers.call_plan); under
    torch.func the weights are wrappers without storage, and neither the plan nor its bookkeeping may read them."""
    torch.manual_seed(1)
    layer = make()
    layer.build((3, 5, 3))
    layer.double()
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    states = [torch.randn(3, 4, dtype=torch.float64) for _ in range(2 if isinstance(layer.cell, rnnkit.LSTMCell)
                                                                         else 1)]
    params = {k: v.detach() for k, v in layer.named_parameters()}
    loss = lambda p: functional_call(layer, p, (x,), {"initial_state": states}).square().sum()  # noqa: E731
    for _ in range(3):  # before any plan, then with one kept from the eager calls in between
        got = grad(loss)(params)
        want = torch.autograd.grad(layer(x, initial_state=states).square().sum(), list(layer.parameters()))
        for (name, g), w in zip(got.items(), want):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12, msg=name)
    members = [copy.deepcopy(layer) for _ in range(2)]
    with torch.no_grad():
        for p in members[1].parameters():
            p.mul_(0.5)
    stacked, buffers = stack_module_state(members)
    got = vmap(lambda p, b: functional_call(layer, (p, b), (x,), {"initial_state": states}))(stacked, buffers)
    for i, m in enumerate(members):
        torch.testing.assert_close(got[i], m(x, initial_state=states), rtol=0, atol=1e-12)
