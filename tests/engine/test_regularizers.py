"""rnnkit.engine.regularizers against keras.regularizers (torch backend)."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import regularizers as R  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _keras_penalty(reg, x):
    # Keras gets a backend tensor: its NumPy path of normalize() mishandles axis 0.
    return float(keras.ops.convert_to_numpy(reg(keras.ops.convert_to_tensor(np.asarray(x)))))


def _weights(shape, seed):
    return np.random.default_rng(seed).normal(scale=0.7, size=shape).astype(np.float32)


CASES = [
    ("L1", {"l1": 0.3}), ("L1", {}), ("L2", {"l2": 0.05}), ("L2", {}),
    ("L1L2", {"l1": 0.01, "l2": 0.2}), ("L1L2", {"l2": 0.1}), ("L1L2", {}),
    ("OrthogonalRegularizer", {"factor": 0.2, "mode": "rows"}),
    ("OrthogonalRegularizer", {"factor": 0.05, "mode": "columns"}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("shape", [(7, 5), (4, 9), (16, 16)])
def test_matches_keras(name, kwargs, shape):
    x = _weights(shape, seed=sum(shape))
    ours = getattr(R, name)(**kwargs)(torch.from_numpy(x))
    theirs = _keras_penalty(getattr(keras.regularizers, name)(**kwargs), x)
    assert ours.shape == () and ours.dtype == torch.float32
    assert ours.item() == pytest.approx(theirs, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("shape", [(3, 4, 5), (10,)])
def test_norm_penalties_any_rank_match_keras(shape):
    x = _weights(shape, seed=3)
    for name, kwargs in CASES[:7]:
        ours = getattr(R, name)(**kwargs)(torch.from_numpy(x)).item()
        theirs = _keras_penalty(getattr(keras.regularizers, name)(**kwargs), x)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)


def test_exact_formulas_and_gradients():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float64, requires_grad=True)
    assert R.L1(0.1)(x).item() == pytest.approx(0.1 * 6.5)
    assert R.L2(0.1)(x).item() == pytest.approx(0.1 * 14.25)  # no 1/2 factor
    pen = R.L1L2(l1=0.1, l2=0.2)(x)
    assert pen.dtype == torch.float64
    assert pen.item() == pytest.approx(0.65 + 0.2 * 14.25)
    pen.backward()
    expected = 0.1 * torch.sign(x.detach()) + 0.4 * x.detach()
    assert torch.allclose(x.grad, expected)
    zero = R.L1L2()(x)
    assert zero.item() == 0.0 and zero.shape == ()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"l1: expected a non-negative finite float; received l1=-0.1"):
        R.L1(-0.1)
    with pytest.raises(ValueError, match="received l2=inf"):
        R.L2(float("inf"))
    with pytest.raises(ValueError, match="received l1='a'"):
        R.L1L2(l1="a")
    with pytest.raises(ValueError, match="received mode='diag'"):
        R.OrthogonalRegularizer(mode="diag")
    with pytest.raises(ValueError, match=r"rank-2 weight; received shape \(2, 2, 2\)"):
        R.OrthogonalRegularizer()(torch.ones(2, 2, 2))


def test_get_names():
    assert R.get(None) is None
    for name, cls in [("l1", R.L1), ("L1", R.L1), ("l2", R.L2), ("L2", R.L2), ("L1L2", R.L1L2),
                      ("l1l2", R.L1L2), ("l1_l2", R.L1L2),
                      ("orthogonal_regularizer", R.OrthogonalRegularizer)]:
        assert type(R.get(name)) is cls
    assert R.get("l1").l1 == 0.01 and R.get("l2").l2 == 0.01
    both = R.get("l1_l2")  # the string shortcut uses 0.01 for both, as Keras documents
    assert (both.l1, both.l2) == (0.01, 0.01)
    assert (R.get("L1L2").l1, R.get("L1L2").l2) == (0.0, 0.0)


def test_get_instances_callables_classes():
    reg = R.L2(0.3)
    assert R.get(reg) is reg

    def fn(w):
        return w.sum()

    assert R.get(fn) is fn
    assert isinstance(R.get(R.L1), R.L1)


def test_get_unknown_raises():
    with pytest.raises(ValueError, match=r"Unknown regularizer 'l3'; expected one of: .*l1_l2"):
        R.get("l3")
    with pytest.raises(ValueError, match="Unknown regularizer 'Foo'"):
        R.get({"class_name": "Foo", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        R.get({"config": {}})
    with pytest.raises(ValueError, match=r"Invalid config for regularizer 'L1'.*l9"):
        R.get({"class_name": "L1", "config": {"l9": 1.0}})
    with pytest.raises(ValueError, match=r"Could not interpret regularizer identifier 5 \(type int\)"):
        R.get(5)


@pytest.mark.parametrize("reg", [R.L1(0.25), R.L2(0.125), R.L1L2(0.5, 0.75),
                                 R.OrthogonalRegularizer(0.5, "columns")])
def test_serialize_round_trip(reg):
    config = R.serialize(reg)
    assert config["class_name"] == type(reg).__name__
    clone = R.get(config)
    assert type(clone) is type(reg) and clone.get_config() == reg.get_config()
    x = torch.from_numpy(_weights((5, 6), seed=1))
    assert torch.equal(clone(x), reg(x))
    # Keras reads our dict and computes the same penalty.
    keras_reg = keras.regularizers.get(config)
    assert _keras_penalty(keras_reg, x.numpy()) == pytest.approx(reg(x).item(), rel=1e-5)


def test_reads_keras_dicts_and_serialize_errors():
    keras_cfg = keras.regularizers.serialize(keras.regularizers.L1L2(l1=0.125, l2=0.5))
    reg = R.get(keras_cfg)
    assert isinstance(reg, R.L1L2) and (reg.l1, reg.l2) == (0.125, 0.5)
    assert R.serialize(None) is None
    assert R.serialize("l2") == {"class_name": "L2", "config": {"l2": 0.01}}
    with pytest.raises(ValueError, match="Cannot serialize regularizer"):
        R.serialize(lambda w: w.sum())
