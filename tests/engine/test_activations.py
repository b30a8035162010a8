"""rnnkit.engine.activations against keras.activations (torch backend)."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import activations  # noqa: E402

# Keras's own convert_to_numpy trips a NumPy 2 deprecation notice; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NAMES = [
    "linear", "tanh", "sigmoid", "hard_sigmoid", "relu", "elu", "selu", "softplus", "softsign",
    "swish", "silu", "gelu", "exponential", "softmax", "relu6", "leaky_relu", "mish",
    "log_softmax", "hard_silu", "hard_swish", "celu", "hard_tanh", "log_sigmoid", "tanh_shrink",
]


def _input():
    # Covers negatives, the kinks at -3/0/3/6 and large magnitudes.
    rng = np.random.default_rng(0)
    grid = np.linspace(-8.0, 8.0, 36)
    noise = rng.normal(scale=3.0, size=36)
    return np.concatenate([grid, noise]).reshape(8, 9).astype(np.float32)


def _keras(fn, x, **kwargs):
    return keras.ops.convert_to_numpy(fn(x, **kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras(name):
    x = _input()
    ours = activations.get(name)(torch.from_numpy(x))
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
    expected = _keras(keras.activations.get(name), x)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_module_functions_are_the_named_ones():
    x = torch.from_numpy(_input())
    assert torch.equal(activations.hard_sigmoid(x), torch.clamp(x + 3, 0, 6) / 6)
    assert torch.equal(activations.swish(x), activations.silu(x))
    assert torch.allclose(activations.hard_swish(x), x * activations.hard_sigmoid(x), atol=1e-6)
    assert torch.allclose(activations.softmax(x).sum(-1), torch.ones(8))
    assert activations.linear(x) is x


@pytest.mark.parametrize("kwargs", [
    dict(negative_slope=0.1), dict(max_value=6.0), dict(max_value=2.5),
    dict(threshold=1.0), dict(negative_slope=0.3, max_value=4.0, threshold=-1.0),
])
def test_relu_options_match_keras(kwargs):
    x = _input()
    ours = activations.relu(torch.from_numpy(x), **kwargs).numpy()
    np.testing.assert_allclose(ours, _keras(keras.activations.relu, x, **kwargs), atol=1e-6)


def test_parametrised_variants_match_keras():
    x = _input()
    t = torch.from_numpy(x)
    pairs = [
        (activations.gelu(t, approximate=True), _keras(keras.activations.gelu, x, approximate=True)),
        (activations.elu(t, alpha=0.5), _keras(keras.activations.elu, x, alpha=0.5)),
        (activations.leaky_relu(t, negative_slope=0.05),
         _keras(keras.activations.leaky_relu, x, negative_slope=0.05)),
        (activations.softmax(t, axis=0), _keras(keras.activations.softmax, x, axis=0)),
        (activations.log_softmax(t, axis=0), _keras(keras.activations.log_softmax, x, axis=0)),
    ]
    for ours, expected in pairs:
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_gelu_default_is_exact_erf_form():
    x = torch.tensor([-1.5, 0.3, 2.0])
    exact = 0.5 * x * (1 + torch.erf(x / np.sqrt(2.0)))
    assert torch.allclose(activations.gelu(x), exact, atol=1e-7)
    assert not torch.allclose(activations.gelu(x, approximate=True), exact, atol=1e-5)


def test_accepts_numpy_and_lists():
    out = activations.tanh([0.0, 1.0])
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([0.0, np.tanh(1.0)], dtype=torch.float32))
    assert activations.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


def test_get_none_names_callables_dicts():
    assert activations.get(None) is activations.linear
    assert activations.get("tanh") is activations.tanh
    assert activations.get("swish") is activations.silu
    assert activations.get("hard_swish") is activations.hard_silu

    def custom(x):
        return 2 * x

    assert activations.get(custom) is custom
    assert activations.get(torch.relu) is torch.relu
    assert activations.get({"class_name": "function", "config": "sigmoid"}) is activations.sigmoid
    assert activations.get({"class_name": "relu", "config": {}}) is activations.relu
    # What Keras's own serializer writes for a function.
    keras_cfg = keras.saving.serialize_keras_object(keras.activations.tanh)
    assert activations.get(keras_cfg) is activations.tanh


def test_get_unknown_raises_with_names():
    with pytest.raises(ValueError, match=r"Unknown activation 'tanhh'; expected one of: .*sigmoid"):
        activations.get("tanhh")
    with pytest.raises(ValueError, match="class_name"):
        activations.get({"config": "tanh"})
    with pytest.raises(ValueError, match=r"Could not interpret activation identifier 3 \(type int\)"):
        activations.get(3)


def test_serialize():
    for name in NAMES:
        fn = activations.get(name)
        out = activations.serialize(fn)
        assert activations.get(out) is fn
    assert activations.serialize(activations.tanh) == "tanh"
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    assert activations.serialize(None) == "linear"
    assert activations.serialize("swish") == "silu"
    # Same names as Keras's serializer for built-ins.
    for name in ("tanh", "sigmoid", "relu", "hard_sigmoid", "linear", "softmax"):
        assert activations.serialize(activations.get(name)) == keras.activations.serialize(
            keras.activations.get(name))

    def my_act(x):
        return x

    assert activations.serialize(my_act) == "my_act"
    with pytest.raises(ValueError, match="Cannot serialize activation"):
        activations.serialize(object.__new__(type("NoName", (), {"__call__": lambda s, x: x})))
