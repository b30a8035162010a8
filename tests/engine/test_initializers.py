"""rnnkit.engine.initializers against keras.initializers (torch backend)."""

import math
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import initializers as I  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (400, 300)
FAN_AVG = (400 + 300) / 2
RANDOM_NAMES = ["random_normal", "random_uniform", "truncated_normal", "glorot_uniform",
                "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"]
# Theoretical bound of each distribution on SHAPE (None: unbounded normal).
BOUNDS = {
    "random_normal": None,
    "random_uniform": 0.05,
    "truncated_normal": 2 * 0.05,
    "glorot_uniform": math.sqrt(3.0 / FAN_AVG),
    "glorot_normal": 2 * math.sqrt(1.0 / FAN_AVG) / 0.87962566103423978,
    "he_uniform": math.sqrt(6.0 / 400),
    "he_normal": 2 * math.sqrt(2.0 / 400) / 0.87962566103423978,
    "lecun_uniform": math.sqrt(3.0 / 400),
    "lecun_normal": 2 * math.sqrt(1.0 / 400) / 0.87962566103423978,
}


def _keras(name, shape=SHAPE, **kwargs):
    init = keras.initializers.get({"class_name": name, "config": kwargs})
    return keras.ops.convert_to_numpy(init(shape, dtype="float32")).astype(np.float64)


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_random_statistics_match_keras(name):
    ours = I.get({"class_name": name, "config": {"seed": 11}})(SHAPE)
    assert ours.shape == SHAPE and ours.dtype == torch.float32
    assert not isinstance(ours, torch.nn.Parameter)
    ours = ours.double().numpy()
    theirs = _keras(name, seed=11)
    std = theirs.std()
    assert abs(ours.mean() - theirs.mean()) < 0.02 * std
    assert abs(ours.std() - std) < 0.02 * std
    bound = BOUNDS[name]
    if bound is not None:
        assert np.abs(ours).max() <= bound * (1 + 1e-6)
        assert np.abs(ours).max() > 0.99 * bound  # the bound is actually reached
        # Keras's torch backend keeps the first of 4 normal draws inside 2 sigma, so
        # about 4e-6 of its samples (all 4 draws outside) escape; ours never do.
        assert np.mean(np.abs(theirs) > bound * (1 + 1e-6)) < 1e-4


def test_custom_arguments_match_keras():
    cases = [
        ("RandomNormal", dict(mean=1.5, stddev=0.3)),
        ("RandomUniform", dict(minval=2.0, maxval=5.0)),
        ("TruncatedNormal", dict(mean=-1.0, stddev=2.0)),
        ("VarianceScaling", dict(scale=3.0, mode="fan_out", distribution="uniform")),
        ("VarianceScaling", dict(scale=0.5, mode="fan_avg", distribution="untruncated_normal")),
        ("VarianceScaling", dict(scale=2.0, mode="fan_in", distribution="normal")),
    ]
    for name, kwargs in cases:
        ours = getattr(I, name)(seed=3, **kwargs)(SHAPE).double().numpy()
        theirs = _keras(name, seed=3, **kwargs)
        std = theirs.std()
        assert abs(ours.mean() - theirs.mean()) < 0.02 * std, (name, kwargs)
        assert abs(ours.std() - std) < 0.02 * std, (name, kwargs)
        assert abs(ours.min() - theirs.min()) < 0.1 * std, (name, kwargs)
    tn = I.TruncatedNormal(mean=-1.0, stddev=2.0, seed=0)(SHAPE)
    assert tn.min() >= -5.0 and tn.max() <= 3.0


def test_conv_kernel_fans_match_keras():
    shape = (3, 3, 16, 32)  # fan_in = 9 * 16, fan_out = 9 * 32
    assert I.compute_fans(shape) == (144, 288)
    assert I.compute_fans((7, 5)) == (7, 5)
    assert I.compute_fans((6,)) == (6, 6)
    assert I.compute_fans(()) == (1, 1)
    limit = math.sqrt(6.0 / (144 + 288))
    ours = I.GlorotUniform(seed=1)(shape)
    theirs = _keras("GlorotUniform", shape=shape, seed=1)
    assert ours.shape == shape
    for values in (ours.abs().max().item(), np.abs(theirs).max()):
        assert 0.98 * limit < values <= limit * (1 + 1e-6)
    he = I.HeNormal(seed=2)((5, 5, 32, 64)).double()
    assert abs(he.std().item() / math.sqrt(2.0 / (25 * 32)) - 1) < 0.02


def test_deterministic_initializers_exact():
    assert torch.equal(I.Zeros()((2, 3)), torch.zeros(2, 3))
    assert torch.equal(I.Ones()((4,)), torch.ones(4))
    assert torch.equal(I.Constant(0.25)((2, 2)), torch.full((2, 2), 0.25))
    assert torch.equal(I.Constant([1.0, 2.0])((3, 2)), torch.tensor([[1.0, 2.0]] * 3))
    assert torch.equal(I.Identity(gain=2.0)((3, 4)), 2.0 * torch.eye(3, 4))
    assert I.Ones()((2,), dtype=torch.float64).dtype == torch.float64
    assert I.Zeros()((2,), dtype="float16").dtype == torch.float16
    for name, shape, kwargs in [("Zeros", (3, 5), {}), ("Ones", (3, 5), {}),
                                ("Constant", (3, 5), {"value": -1.5}),
                                ("Identity", (5, 3), {"gain": 0.5})]:
        expected = _keras(name, shape=shape, **kwargs)
        np.testing.assert_array_equal(getattr(I, name)(**kwargs)(shape).double().numpy(), expected)


def test_identity_rejects_non_2d():
    with pytest.raises(ValueError, match=r"2-D shape.*received shape=\(2, 2, 2\) of rank 3"):
        I.Identity()((2, 2, 2))


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (4, 5, 10), (30, 30)])
@pytest.mark.parametrize("gain", [1.0, 1.7])
def test_orthogonal(shape, gain):
    w = I.Orthogonal(gain=gain, seed=4)(shape, dtype=torch.float64)
    assert w.shape == shape
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    assert torch.allclose(gram, gain**2 * eye, atol=1e-10)
    w32 = I.Orthogonal(gain=gain)(shape)
    flat32 = w32.reshape(-1, shape[-1])
    if flat32.shape[0] >= flat32.shape[1]:
        assert torch.allclose(flat32.T @ flat32, gain**2 * eye.float(), atol=1e-5)


def test_orthogonal_matches_keras_statistics_and_rejects_1d():
    ours = I.Orthogonal(seed=5)((300, 200)).double().numpy()
    theirs = _keras("Orthogonal", shape=(300, 200), seed=5)
    assert abs(ours.std() - theirs.std()) < 0.02 * theirs.std()
    assert abs(ours.mean()) < 0.02 * theirs.std()
    with pytest.raises(ValueError, match="rank >= 2"):
        I.Orthogonal()((5,))


def test_orthogonal_sign_correction_like_keras():
    # Without multiplying Q by sign(diag(R)), LAPACK's Householder QR makes
    # w[0, 0] = -|a00| / ||a0|| negative for every draw; with it w[0, 0] takes
    # the sign of a00, so both signs occur across seeds (in Keras too).
    for shape in [(8, 5), (5, 8)]:
        ours = {bool(I.Orthogonal(seed=s)(shape)[0, 0] > 0) for s in range(12)}
        theirs = {bool(_keras("Orthogonal", shape=shape, seed=s)[0, 0] > 0) for s in range(12)}
        assert ours == theirs == {True, False}


@pytest.mark.parametrize("name", RANDOM_NAMES + ["orthogonal", "variance_scaling"])
def test_seeding(name):
    cls = type(I.get(name))
    a, b = cls(seed=7)((20, 10)), cls(seed=7)((20, 10))
    assert torch.equal(a, b)
    init = cls(seed=7)
    assert torch.equal(init((20, 10)), init((20, 10)))  # same values on every call
    assert not torch.equal(a, cls(seed=8)((20, 10)))
    # A seeded call leaves the global RNG alone...
    torch.manual_seed(0)
    ref = torch.rand(3)
    torch.manual_seed(0)
    init((20, 10))
    assert torch.equal(torch.rand(3), ref)
    # ...and seed=None draws from it, so torch.manual_seed controls it.
    torch.manual_seed(123)
    c = cls()((20, 10))
    torch.manual_seed(123)
    assert torch.equal(c, cls()((20, 10)))
    assert not torch.equal(c, cls()((20, 10)))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"seed to be None or an int; received 'a'"):
        I.RandomNormal(seed="a")
    with pytest.raises(ValueError, match="mode.*received mode='fan_x'"):
        I.VarianceScaling(mode="fan_x")
    with pytest.raises(ValueError, match="distribution.*received distribution='cauchy'"):
        I.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="scale > 0"):
        I.VarianceScaling(scale=0.0)
    with pytest.raises(ValueError, match="floating dtype"):
        I.GlorotUniform()((2, 2), dtype=torch.int64)


ALL_CLASSES = ["Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform",
               "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
               "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal"]


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_get_by_name_and_serialize_like_keras(name):
    cls = getattr(I, name)
    snake = keras.src.utils.naming.to_snake_case(name)
    assert type(I.get(name)) is cls and type(I.get(snake)) is cls
    kwargs = {"value": 0.5} if name == "Constant" else {}
    ours = I.serialize(cls(**kwargs))
    theirs = keras.initializers.serialize(getattr(keras.initializers, name)(**kwargs))
    if name == "Identity":  # Keras forgets to serialize gain; we keep it
        assert ours == {"class_name": "Identity", "config": {"gain": 1.0}}
        assert theirs["config"] == {}
    else:
        assert ours == {"class_name": theirs["class_name"], "config": theirs["config"]}
    # Keras's own dict (with its extra keys) loads too.
    assert I.serialize(I.get(theirs)) == ours


def test_round_trip_with_arguments():
    for init in [I.Constant(3.5), I.RandomNormal(1.0, 2.0, seed=3), I.RandomUniform(-1, 2, seed=4),
                 I.VarianceScaling(2.0, "fan_avg", "uniform", seed=9), I.HeNormal(seed=1),
                 I.Orthogonal(gain=2.0, seed=6), I.Identity(gain=3.0)]:
        config = I.serialize(init)
        clone = I.get(config)
        assert type(clone) is type(init) and clone is not init
        assert I.serialize(clone) == config
        assert torch.equal(clone((6, 4)), init((6, 4)))


def test_get_other_identifiers():
    assert I.get(None) is None
    init = I.GlorotUniform()
    assert I.get(init) is init
    assert isinstance(I.get(I.HeNormal), I.HeNormal)
    const = I.get(0.5)
    assert isinstance(const, I.Constant) and torch.equal(const((2,)), torch.tensor([0.5, 0.5]))
    assert torch.equal(I.get(2)((1,)), torch.tensor([2.0]))

    def fn(shape, dtype):
        return torch.arange(math.prod(shape), dtype=dtype).reshape(shape)

    wrapped = I.get(fn)
    assert isinstance(wrapped, I.Initializer)
    assert torch.equal(wrapped((2, 3)), torch.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="cannot serialize|Cannot serialize"):
        I.serialize(wrapped)


def test_get_unknown_raises():
    with pytest.raises(ValueError, match=r"Unknown initializer 'glorot'; expected one of: .*glorot_uniform"):
        I.get("glorot")
    with pytest.raises(ValueError, match="Unknown initializer 'Nope'"):
        I.get({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        I.get({"config": {}})
    with pytest.raises(ValueError, match=r"Invalid config for initializer Zeros.*bogus"):
        I.get({"class_name": "Zeros", "config": {"bogus": 1}})
    with pytest.raises(ValueError, match=r"Could not interpret initializer identifier \[1\] \(type list\)"):
        I.get([1])
    with pytest.raises(ValueError, match="type bool"):
        I.get(True)
