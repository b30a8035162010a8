"""Property-based tests (hypothesis) over random configurations, shapes, masks and paths.

CI runs ``CHEAP`` examples for each cheap property and ``COSTLY`` for the
ones that compile or export (see the README).
"""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit

CHEAP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COSTLY = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAMILIES = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "simple": rnnkit.SimpleRNN}


@st.composite
def problems(draw, masks=True):
    family = draw(st.sampled_from(sorted(FAMILIES)))
    batch, steps = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    features, units = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["none", "right-padded", "holes"] if masks else ["none"]))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, features, generator=g, dtype=torch.float64)
    mask = None
    if kind == "right-padded":
        lengths = torch.randint(0, steps + 1, (batch, 1), generator=g)
        mask = torch.arange(steps) < lengths
    elif kind == "holes":
        mask = torch.rand(batch, steps, generator=g) > 0.4
    config = {
        "units": units,
        "go_backwards": draw(st.booleans()),
        "return_sequences": draw(st.booleans()),
        "return_state": draw(st.booleans()),
        "zero_output_for_mask": draw(st.booleans()),
    }
    return family, config, x, mask, seed


def build(family, config, x, seed, **extra):
    torch.manual_seed(seed)
    layer = FAMILIES[family](**config, **extra).double()
    layer(x)
    return layer


def flat(out):
    return out if isinstance(out, list) else [out]


def close(a, b, tol=1e-10):
    assert len(flat(a)) == len(flat(b))
    for u, v in zip(flat(a), flat(b)):
        torch.testing.assert_close(u, v, rtol=tol, atol=tol)


@CHEAP
@given(problems())
def test_fused_hoisted_and_generic_agree(problem):
    family, config, x, mask, seed = problem
    auto = build(family, config, x, seed)
    generic = build(family, config, x, seed, use_fused=False)
    generic.load_state_dict(auto.state_dict())
    x = x.requires_grad_()
    out_a, out_g = auto(x, mask=mask), generic(x, mask=mask)
    close(out_a, out_g)
    ga = torch.autograd.grad(sum(o.sum() for o in flat(out_a)), [x, *auto.parameters()])
    gg = torch.autograd.grad(sum(o.sum() for o in flat(out_g)), [x, *generic.parameters()])
    close(list(ga), list(gg), 1e-9)


@CHEAP
@given(problems(masks=False))
def test_go_backwards_equals_the_reversed_input(problem):
    family, config, x, _, seed = problem
    config = dict(config, go_backwards=True, return_state=False)
    backwards = build(family, config, x, seed)
    forwards = build(family, dict(config, go_backwards=False), x, seed)
    forwards.load_state_dict(backwards.state_dict())
    close(backwards(x), forwards(x.flip(1)))


@CHEAP
@given(problems())
def test_config_and_state_dict_round_trips(problem):
    family, config, x, mask, seed = problem
    layer = build(family, config, x, seed)
    copy = type(layer).from_config(layer.get_config())
    copy.double()
    copy.load_state_dict(layer.state_dict())  # a lazily built copy builds from the stored shapes
    close(copy(x, mask=mask), layer(x, mask=mask), 0)


@COSTLY
@given(problems())
def test_compiled_equals_eager(problem):
    family, config, x, mask, seed = problem
    layer = build(family, config, x.float(), seed).float()
    x = x.float()
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True)
    close(compiled(x, mask=mask), layer(x, mask=mask), 1e-5)


@COSTLY
@given(problems())
def test_exported_equals_eager(problem):
    family, config, x, mask, seed = problem
    layer = build(family, config, x, seed)
    kwargs = {} if mask is None else {"mask": mask}
    program = torch.export.export(layer, (x,), kwargs)
    close(program.module()(x, **kwargs), layer(x, **kwargs))
    assert np.isfinite(flat(layer(x, **kwargs))[0].detach().numpy()).all()
