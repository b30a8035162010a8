"""rnnkit.engine.constraints against keras.constraints (torch backend)."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import constraints as C  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _weights(shape, seed=0):
    w = np.random.default_rng(seed).normal(scale=1.2, size=shape).astype(np.float32)
    w[(0,) * (len(shape) - 1)] = 0.0  # an all-zero slice exercises the epsilon handling
    return w


def _keras(constraint, w):
    return keras.ops.convert_to_numpy(constraint(keras.ops.convert_to_tensor(w)))


CASES = [
    ("MaxNorm", {}), ("MaxNorm", {"max_value": 1.5}), ("MaxNorm", {"max_value": 0.5}),
    ("NonNeg", {}), ("UnitNorm", {}),
    ("MinMaxNorm", {}), ("MinMaxNorm", {"min_value": 1.0, "max_value": 2.0}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.5, "rate": 0.3}),
]
AXES = {2: [0, 1, -1, [0, 1]], 3: [0, 2, [0, 1], (1, 2), [0, 1, 2]]}


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_matches_keras(name, kwargs, shape):
    w = _weights(shape)
    for axis in AXES[len(shape)] if name != "NonNeg" else [None]:
        args = dict(kwargs) if axis is None else dict(kwargs, axis=axis)
        ours = getattr(C, name)(**args)(torch.from_numpy(w))
        theirs = _keras(getattr(keras.constraints, name)(**args), w)
        assert ours.shape == w.shape and ours.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-6,
                                   err_msg=f"{name}({args})")


def test_projections_do_what_they_say():
    w = torch.from_numpy(_weights((8, 5), seed=2)).double()
    norms = lambda t: t.norm(dim=0)  # noqa: E731
    assert torch.all(norms(C.MaxNorm(1.0)(w)) <= 1.0 + 1e-9)
    unit = C.UnitNorm()(w)
    assert torch.allclose(norms(unit), torch.ones(5, dtype=torch.float64), atol=1e-6)
    mm = C.MinMaxNorm(0.8, 1.2)(w)
    assert torch.all((norms(mm) >= 0.8 - 1e-6) & (norms(mm) <= 1.2 + 1e-6))
    assert torch.equal(C.NonNeg()(w), w.clamp(min=0))
    # Keras's epsilon: slices under the cap still shrink by n / (n + 1e-7).
    small = torch.tensor([[0.3], [0.4]], dtype=torch.float64)
    assert torch.allclose(C.MaxNorm(2.0)(small), small * 0.5 / (0.5 + 1e-7), rtol=0, atol=1e-15)
    zero = torch.zeros(3, 2)
    for c in (C.MaxNorm(), C.UnitNorm(), C.MinMaxNorm(1.0, 2.0)):
        assert torch.equal(c(zero), zero)  # no NaN for all-zero slices


def test_parameter_projection_in_place():
    p = torch.nn.Parameter(torch.tensor([[3.0, -4.0], [4.0, 3.0]]))
    with torch.no_grad():
        p.copy_(C.MaxNorm(1.0)(p))
    assert torch.allclose(p.norm(dim=0), torch.ones(2), atol=1e-6)


def test_get_names_instances_callables():
    assert C.get(None) is None
    for name, cls in [("max_norm", C.MaxNorm), ("MaxNorm", C.MaxNorm), ("non_neg", C.NonNeg),
                      ("NonNeg", C.NonNeg), ("unit_norm", C.UnitNorm), ("UnitNorm", C.UnitNorm),
                      ("min_max_norm", C.MinMaxNorm), ("MinMaxNorm", C.MinMaxNorm)]:
        assert type(C.get(name)) is cls
    assert C.get("max_norm").get_config() == {"max_value": 2, "axis": 0}
    c = C.UnitNorm(axis=1)
    assert C.get(c) is c

    def clip(w):
        return w.clamp(-1, 1)

    assert C.get(clip) is clip
    assert isinstance(C.get(C.NonNeg), C.NonNeg)


def test_get_unknown_raises():
    with pytest.raises(ValueError, match=r"Unknown constraint 'maxnorm'; expected one of: .*max_norm"):
        C.get("maxnorm")
    with pytest.raises(ValueError, match="Unknown constraint 'Foo'"):
        C.get({"class_name": "Foo", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        C.get({"config": {}})
    with pytest.raises(ValueError, match=r"Invalid config for constraint MaxNorm.*max_val"):
        C.get({"class_name": "MaxNorm", "config": {"max_val": 3}})
    with pytest.raises(ValueError, match=r"Could not interpret constraint identifier 1.5 \(type float\)"):
        C.get(1.5)


@pytest.mark.parametrize("con", [C.MaxNorm(3.0, axis=[0, 1]), C.NonNeg(), C.UnitNorm(axis=1),
                                 C.MinMaxNorm(0.5, 2.0, rate=0.7, axis=-1)])
def test_serialize_round_trip_and_keras_compat(con):
    config = C.serialize(con)
    assert config["class_name"] == type(con).__name__
    clone = C.get(config)
    assert type(clone) is type(con) and clone.get_config() == con.get_config()
    w = _weights((4, 5, 3), seed=5)
    assert torch.equal(clone(torch.from_numpy(w)), con(torch.from_numpy(w)))
    # Keras reads our dict and writes the same config for the same constraint.
    keras_con = keras.constraints.get(config)
    assert keras.constraints.serialize(keras_con)["config"] == config["config"]
    np.testing.assert_allclose(con(torch.from_numpy(w)).numpy(), _keras(keras_con, w), atol=1e-6)
    assert C.serialize(C.get(keras.constraints.serialize(keras_con))) == config


def test_serialize_edge_cases():
    assert C.serialize(None) is None
    assert C.serialize("unit_norm") == {"class_name": "UnitNorm", "config": {"axis": 0}}
    with pytest.raises(ValueError, match="Cannot serialize constraint"):
        C.serialize(lambda w: w)
