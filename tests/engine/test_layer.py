"""``rnnkit.Layer``: the Keras layer protocol on a ``torch.nn.Module``."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import constraints, initializers, regularizers


# ------------------------------------------------------------------ test layers
class Dense(rnnkit.Layer):
    """Keras 3 style: super().__init__ first; records every build."""

    def __init__(self, units, kernel_regularizer=None, kernel_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint
        self.build_shapes = []

    def build(self, input_shape):
        self.build_shapes.append(tuple(input_shape))
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="ones",
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return x @ self.kernel + self.bias

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class DenseTF2(rnnkit.Layer):
    """TF 2.0 style: attributes before super().__init__, built = True in build."""

    def __init__(self, units, **kwargs):
        self.units = units
        self.build_shapes = []
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.build_shapes.append(tuple(input_shape))
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")
        self.built = True

    def call(self, x):
        return x @ self.kernel


class DenseForward(rnnkit.Layer):
    """PyTorch style: overrides forward instead of call."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")

    def forward(self, x):
        return 2.0 * (x @ self.kernel)


class Mixed(rnnkit.Layer):
    """Own weights (trainable / not) interleaved, then sub-layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = Dense(2)
        self.second = DenseTF2(3)

    def build(self, input_shape):
        # Distinct shapes so that the order is visible from shapes alone.
        self.a = self.add_weight(shape=(1,), name="a", initializer="ones")
        self.b = self.add_weight(shape=(2, 1), name="b", trainable=False, initializer="ones")
        self.c = self.add_weight(shape=(3,), name="c", initializer="ones")
        self.d = self.add_weight(shape=(4, 1), name="d", trainable=False, initializer="ones")
        self.first.build(input_shape)
        self.second.build(input_shape[:-1] + (2,))

    def call(self, x):
        return self.second(self.first(x)) * self.a + self.c.sum()


def _x(*shape, seed=0):
    return torch.tensor(np.random.RandomState(seed).randn(*shape), dtype=torch.float32)


# ------------------------------------------------------------------------ build
@pytest.mark.parametrize("cls", [Dense, DenseTF2, DenseForward])
def test_lazy_build_on_first_call(cls):
    layer = cls(3)
    assert layer.built is False
    assert list(layer.parameters()) == []
    y = layer(torch.ones(2, 4))
    assert layer.built is True
    assert tuple(layer.kernel.shape) == (4, 3)
    expected = 4.0 * (2.0 if cls is DenseForward else 1.0)
    assert torch.allclose(y, torch.full((2, 3), expected))
    n = len(list(layer.parameters()))
    layer(torch.ones(5, 4))  # no second build
    assert len(list(layer.parameters())) == n
    if hasattr(layer, "build_shapes"):
        assert layer.build_shapes == [(2, 4)]


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(input_shape=(7, 4)), (None, 7, 4)),
        (dict(input_shape=(7, 4), batch_size=2), (2, 7, 4)),
        (dict(input_dim=4), (None, None, 4)),
        (dict(input_dim=4, input_length=7), (None, 7, 4)),
        (dict(batch_input_shape=(2, 7, 4)), (2, 7, 4)),
    ],
)
@pytest.mark.parametrize("cls", [Dense, DenseTF2])
def test_eager_build(cls, kwargs, shape):
    layer = cls(3, **kwargs)
    assert layer.built is True
    assert layer.build_shapes == [shape]
    params = list(layer.parameters())
    assert params, "parameters() must be non-empty right after construction"
    torch.optim.SGD(params, lr=0.1)  # usable at once
    assert tuple(layer.kernel.shape) == (4, 3)
    layer(torch.ones(2, 7, 4))
    assert layer.build_shapes == [shape]


def test_eager_build_forward_style():
    layer = DenseForward(3, input_shape=(4,))
    assert [tuple(p.shape) for p in layer.parameters()] == [(4, 3)]


def test_input_length_without_input_dim_rejected():
    with pytest.raises(ValueError, match="input_dim"):
        Dense(3, input_length=7)


@pytest.mark.parametrize("cls", [Dense, DenseTF2])
def test_explicit_build(cls):
    layer = cls(3)
    layer.build((None, 4))
    assert layer.built is True
    assert [tuple(w.shape) for w in layer.get_weights()][0] == (4, 3)
    n_weights = len(layer.get_weights())
    layer(torch.ones(2, 4))  # must not build a second time
    assert layer.build_shapes == [(None, 4)]
    assert len(layer.get_weights()) == n_weights
    assert len(layer.state_dict()) == n_weights


def test_default_layer_build_sets_built():
    class NoWeights(rnnkit.Layer):
        def call(self, x):
            return x + 1

    layer = NoWeights()
    assert not layer.built
    assert torch.equal(layer(torch.zeros(2)), torch.ones(2))
    assert layer.built and layer.get_weights() == []


def test_default_names_are_keras_snake_case():
    class MinimalRNNCell(rnnkit.Layer):
        pass

    a, b = MinimalRNNCell(), MinimalRNNCell()
    assert a.name.startswith("minimal_rnn_cell")
    assert a.name != b.name
    assert rnnkit.RNN(rnnkit.SimpleRNNCell(2)).name.startswith("rnn")
    assert rnnkit.LSTMCell(2).name.startswith("lstm_cell")
    assert Dense(2, name="mine").name == "mine"


# ------------------------------------------------------------------- add_weight
def test_add_weight_initializers():
    class L(rnnkit.Layer):
        def build(self, input_shape):
            self.ones = self.add_weight(shape=(2, 3), initializer="ones", name="ones")
            self.const = self.add_weight(shape=(4,), initializer=initializers.Constant(0.5), name="const")
            self.fn = self.add_weight(shape=(2,), initializer=lambda shape, dtype: torch.full(shape, 3.0), name="fn")
            self.glorot = self.add_weight(shape=(30, 20), name="glorot")  # default initializer
            self.scalar = self.add_weight(shape=(), initializer=1.5, name="scalar")

    layer = L()
    layer.build((None, 1))
    assert isinstance(layer.ones, torch.nn.Parameter)
    assert torch.equal(layer.ones, torch.ones(2, 3))
    assert torch.equal(layer.const, torch.full((4,), 0.5))
    assert torch.equal(layer.fn, torch.full((2,), 3.0))
    limit = np.sqrt(6.0 / (30 + 20))
    g = layer.glorot.detach()
    assert g.abs().max() <= limit and g.std() > limit / 4  # glorot_uniform, not zeros
    assert layer.scalar.shape == () and layer.scalar.item() == 1.5
    assert all(p.dtype == torch.float32 and p.requires_grad for p in layer.parameters())


def test_add_weight_trainable_false_and_dtype():
    class L(rnnkit.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(2,), initializer="ones", name="w")
            self.frozen = self.add_weight(shape=(3,), initializer="ones", name="frozen", trainable=False)
            self.wide = self.add_weight(shape=(2,), initializer="ones", name="wide", dtype="float64")

    layer = L()
    layer.build((1,))
    assert layer.w.requires_grad and not layer.frozen.requires_grad
    assert layer.wide.dtype == torch.float64 and layer.w.dtype == torch.float32
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(2,), (2,)]
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == [(3,)]
    assert layer.non_trainable_weights[0] is layer.frozen


def test_add_weight_unknown_initializer_rejected():
    class L(rnnkit.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(2,), initializer="no_such_init", name="w")

    with pytest.raises(ValueError, match="no_such_init"):
        L().build((1,))


# ------------------------------------------------------------ get/set_weights
def test_weight_order_trainable_then_non_trainable_then_sublayers():
    layer = Mixed()
    layer.build((None, 5))
    shapes = [tuple(w.shape) for w in layer.get_weights()]
    # own trainable (a, c), own non-trainable (b, d), then first (kernel, bias), second (kernel)
    assert shapes == [(1,), (3,), (2, 1), (4, 1), (5, 2), (2,), (2, 3)]
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(1,), (3,), (5, 2), (2,), (2, 3)]
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == [(2, 1), (4, 1)]
    assert all(isinstance(w, np.ndarray) for w in layer.get_weights())


def test_weight_order_matches_keras(keras):
    class KDense(keras.layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.bias = self.add_weight(shape=(self.units,), name="bias")

        def call(self, x):
            return x @ self.kernel + self.bias

    class KMixed(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.first = KDense(2)
            self.second = KDense(3)

        def build(self, input_shape):
            self.a = self.add_weight(shape=(1,), name="a")
            self.b = self.add_weight(shape=(2, 1), name="b", trainable=False)
            self.c = self.add_weight(shape=(3,), name="c")
            self.d = self.add_weight(shape=(4, 1), name="d", trainable=False)
            self.first.build(input_shape)
            self.second.build(input_shape[:-1] + (2,))

        def call(self, x):
            return self.second(self.first(x))

    k = KMixed()
    k.build((None, 5))
    r = Mixed()
    r.build((None, 5))
    keras_shapes = [tuple(w.shape) for w in k.get_weights()]
    # Mixed's second sub-layer has no bias; compare the common prefix and the rest explicitly.
    assert [tuple(w.shape) for w in r.get_weights()] == keras_shapes[:6] + [(2, 3)]


def test_set_weights_roundtrip_and_errors():
    layer = Mixed()
    layer.build((None, 5))
    rng = np.random.RandomState(0)
    new = [rng.randn(*w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(layer.first.kernel.detach().numpy(), new[4])
    # torch tensors and float64 arrays are accepted (cast to the weight dtype)
    layer.set_weights([torch.tensor(w, dtype=torch.float64) for w in new])
    assert layer.first.kernel.dtype == torch.float32
    # get_weights returns copies
    got = layer.get_weights()
    got[0][...] = 99.0
    assert layer.a.item() != 99.0

    with pytest.raises(ValueError, match="expected 7"):
        layer.set_weights(new[:-1])
    bad = list(new)
    bad[4] = np.zeros((2, 5), "float32")
    with pytest.raises(ValueError, match=r"array 4 .*\(2, 5\).*\(5, 2\)"):
        layer.set_weights(bad)
    # a failed set_weights leaves every weight untouched
    np.testing.assert_array_equal(layer.get_weights()[0], new[0])


# ------------------------------------------------------------------- state_dict
def test_state_dict_keys_are_attribute_names():
    class L(rnnkit.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(2, 2), name="w")  # attribute name wins
            self.add_weight(shape=(1,), name="loose")  # no attribute: the weight name
            self.add_weight(shape=(1,), name="loose")  # duplicate name gets a suffix
            self.add_weight(shape=(1,), name="cell/kernel:0")  # not an identifier

    layer = L()
    layer.build((1,))
    keys = list(layer.state_dict())
    assert keys[0] == "kernel"
    assert "w" not in keys
    assert "loose" in keys
    assert len(keys) == len(set(keys)) == 4
    assert all(k.isidentifier() for k in keys)
    assert len(list(layer.parameters())) == 4

    mixed = Mixed()
    mixed.build((None, 5))
    assert list(mixed.state_dict()) == ["a", "b", "c", "d", "first.kernel", "first.bias", "second.kernel"]
    # a torch checkpoint round-trips
    other = Mixed()
    other.build((None, 5))
    other.load_state_dict(mixed.state_dict())


# ------------------------------------------------------ regularizers, constraints
def test_losses_match_hand_computation_and_are_differentiable():
    layer = Dense(3, kernel_regularizer=regularizers.L2(0.01))
    layer.build((None, 4))
    w = np.random.RandomState(0).randn(4, 3).astype("float32")
    layer.set_weights([w, np.zeros(3, "float32")])
    (loss,) = layer.losses
    assert loss.item() == pytest.approx(0.01 * float((w.astype("float64") ** 2).sum()), rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(layer.kernel.grad.numpy(), 0.02 * w, rtol=1e-6)
    assert layer.bias.grad is None

    l1 = Dense(3, kernel_regularizer="l1")  # Keras default factor 0.01
    l1.build((None, 4))
    l1.set_weights([w, np.zeros(3, "float32")])
    assert l1.losses[0].item() == pytest.approx(0.01 * float(np.abs(w).sum()), rel=1e-6)


def test_losses_of_sublayers_and_activity_regularizer():
    class Outer(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Dense(2, kernel_regularizer=regularizers.L1(0.5))

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale",
                                         regularizer=regularizers.L2(0.25))

        def call(self, x):
            return self.inner(x) * self.scale

    outer = Outer(activity_regularizer=regularizers.L2(0.1))
    x = torch.ones(1, 3)
    y = outer(x)  # inner kernel ones (3, 2): y = [3, 3]
    assert torch.equal(y, torch.full((1, 2), 3.0))
    values = sorted(v.item() for v in outer.losses)
    # scale: 0.25 * 2, inner kernel: 0.5 * 6, activity: 0.1 * (9 + 9)
    assert values == pytest.approx(sorted([0.5, 3.0, 1.8]))
    total = sum(outer.losses)
    total.backward()
    assert outer.scale.grad is not None and outer.inner.kernel.grad is not None


def test_apply_constraints_non_neg():
    layer = Dense(3, kernel_constraint="non_neg")
    layer.build((None, 2))
    w = np.array([[-1.0, 2.0, -0.5], [0.5, -3.0, 4.0]], dtype="float32")
    b = np.array([-1.0, -2.0, 3.0], dtype="float32")
    layer.set_weights([w, b])
    layer.apply_constraints()
    got_w, got_b = layer.get_weights()
    np.testing.assert_array_equal(got_w, np.maximum(w, 0))
    np.testing.assert_array_equal(got_b, b)  # unconstrained

    # through a parent, and after an optimizer step
    class Outer(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Dense(1, kernel_constraint=constraints.NonNeg())

        def call(self, x):
            return self.inner(x)

    outer = Outer()
    x = torch.ones(4, 2)
    outer(x)
    opt = torch.optim.SGD(outer.parameters(), lr=10.0)
    outer(x).sum().backward()  # gradient 4 on every kernel entry: step makes them negative
    opt.step()
    assert (outer.inner.kernel < 0).all()
    outer.apply_constraints()
    assert torch.equal(outer.inner.kernel.detach(), torch.zeros(2, 1))


# -------------------------------------------------------------------- trainable
def test_trainable_false_freezes():
    layer = Mixed(trainable=False)
    layer.build((None, 5))
    assert layer.trainable is False
    assert all(not p.requires_grad for p in layer.parameters())
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 7
    out = layer(torch.ones(2, 5))
    assert not out.requires_grad

    layer.trainable = True
    assert layer.first.trainable and layer.second.trainable
    # weights created with trainable=False stay frozen
    assert [p.requires_grad for p in layer.weights] == [True, True, False, False, True, True, True]

    layer.trainable = False
    assert all(not p.requires_grad for p in layer.parameters())
    assert layer.first.trainable is False


# ------------------------------------------------------------------------ dtype
@pytest.mark.parametrize(
    "dtype",
    [
        "float64",
        torch.float64,
        np.dtype("float64"),
        "double",
        pytest.param(
            np.float64,
            id="np.float64-type",
        ),
    ],
)
def test_dtype_float64(dtype):
    layer = Dense(3, dtype=dtype)
    y = layer(torch.ones(2, 4, dtype=torch.float64))
    assert layer.kernel.dtype == torch.float64 and layer.bias.dtype == torch.float64
    assert layer.dtype == torch.float64
    assert y.dtype == torch.float64
    assert layer.get_config()["dtype"] == "float64"


def test_dtype_default_float32():
    layer = Dense(3)
    assert layer.dtype == torch.float32
    layer.build((None, 2))
    assert layer.kernel.dtype == torch.float32


@pytest.mark.parametrize("dtype", ["float13", "int32", torch.int64, "bool"])
def test_unknown_dtype_rejected(dtype):
    with pytest.raises(ValueError, match="dtype"):
        Dense(3, dtype=dtype)


# ----------------------------------------------------------------------- kwargs
@pytest.mark.parametrize("cls", [Dense, DenseTF2, rnnkit.Layer])
def test_unknown_kwarg_names_the_class(cls):
    args = () if cls is rnnkit.Layer else (3,)
    with pytest.raises(TypeError, match=cls.__name__) as err:
        cls(*args, units_typo=4)
    assert "units_typo" in str(err.value)


def test_builtin_unknown_kwarg():
    with pytest.raises(TypeError, match="SimpleRNNCell"):
        rnnkit.SimpleRNNCell(3, nonsense=True)


# ----------------------------------------------------------------------- config
def test_get_config_from_config_roundtrip():
    layer = Dense(3, name="dense_x", trainable=False, dtype="float64")
    config = layer.get_config()
    assert config == {"name": "dense_x", "trainable": False, "dtype": "float64", "units": 3}
    clone = Dense.from_config(config)
    assert clone.name == "dense_x" and clone.trainable is False and clone.units == 3
    assert clone.dtype == torch.float64


def test_compute_output_shape_default():
    assert Dense(3).compute_output_shape((2, 4)) == (2, 4)


def test_call_not_overridden():
    class Empty(rnnkit.Layer):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(torch.zeros(1))


# ------------------------------------------------------------------- cell styles
class CellK3(rnnkit.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")

    def call(self, inputs, states):
        out = inputs @ self.kernel + 0.5 * states[0]
        return out, [out]


class CellTF2(rnnkit.Layer):
    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")
        self.built = True

    def call(self, inputs, states):
        out = inputs @ self.kernel + 0.5 * states[0]
        return out, [out]


class CellForward(rnnkit.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")

    def forward(self, inputs, states):
        out = inputs @ self.kernel + 0.5 * states[0]
        return out, [out]


class CellWrapperTF2(rnnkit.Layer):
    """TF 2.0 style holding a sub-cell assigned before super().__init__."""

    def __init__(self, cell, **kwargs):
        self.inner = cell
        self.state_size = cell.state_size
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.built = True

    def call(self, inputs, states):
        out, new = self.inner(inputs, states)
        return out * 2.0, new


@pytest.mark.parametrize("cls", [CellK3, CellTF2, CellForward])
@pytest.mark.parametrize("eager", [False, True])
def test_cell_styles_in_rnn(cls, eager):
    kwargs = dict(input_shape=(3, 2)) if eager else {}
    cell = cls(4)
    layer = rnnkit.RNN(cell, return_sequences=True, **kwargs)
    assert cell.built is eager
    if eager:
        assert [tuple(p.shape) for p in layer.parameters()] == [(2, 4)]
    out = layer(torch.ones(1, 3, 2))
    # h1 = 2, h2 = 2 + 1, h3 = 2 + 1.5
    np.testing.assert_allclose(out[0, :, 0].detach().numpy(), [2.0, 3.0, 3.5])
    assert list(layer.state_dict()) == ["cell.kernel"]
    assert cell.units == 4 and cell.state_size == 4


def test_tf2_style_sublayer_before_init():
    cell = CellWrapperTF2(CellK3(4))
    assert list(cell.state_dict()) == []  # inner not built yet, but registered
    layer = rnnkit.RNN(cell, return_sequences=True)
    out = layer(torch.ones(1, 3, 2))
    np.testing.assert_allclose(out[0, :, 0].detach().numpy(), [4.0, 6.0, 7.0])
    assert list(layer.state_dict()) == ["cell.inner.kernel"]
    assert [tuple(w.shape) for w in layer.get_weights()] == [(2, 4)]


def test_tf2_style_name_and_kwargs_survive():
    cell = CellTF2(4, name="tf2cell", dtype="float64")
    assert cell.name == "tf2cell" and cell.units == 4
    cell.build((None, 2))
    assert cell.kernel.dtype == torch.float64


# ------------------------------------------------------------ PyTorch-style parts
def test_plain_torch_parameters_and_modules_are_weights():
    class TorchStyle(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.scale = torch.nn.Parameter(torch.full((2,), 3.0))
            self.lin = torch.nn.Linear(2, 3)
            self.frozen = torch.nn.Parameter(torch.ones(4), requires_grad=False)

        def forward(self, x):
            return self.lin(x * self.scale)

    layer = TorchStyle()
    # own trainable (scale), own non-trainable (frozen), then the sub-module's
    assert [tuple(w.shape) for w in layer.get_weights()] == [(2,), (4,), (3, 2), (3,)]
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(2,), (3, 2), (3,)]
    assert sorted(layer.state_dict()) == ["frozen", "lin.bias", "lin.weight", "scale"]
    layer.set_weights([np.ones(2), np.zeros(4), np.ones((3, 2)), np.zeros(3)])
    assert torch.equal(layer(torch.ones(1, 2)), torch.full((1, 3), 2.0))
    layer.trainable = False
    assert all(not p.requires_grad for p in layer.parameters())
    layer.trainable = True
    assert [p.requires_grad for p in layer.weights] == [True, False, True, True]


def test_reassigning_a_weight_replaces_it():
    layer = Dense(2)
    layer.build((None, 3))
    layer.kernel = torch.nn.Parameter(torch.zeros(3, 2))
    assert [tuple(w.shape) for w in layer.get_weights()] == [(2,), (3, 2)]
    assert len(layer.get_weights()) == len(layer.state_dict()) == 2


def test_deepcopy_is_independent():
    import copy

    layer = rnnkit.RNN([CellK3(3), CellTF2(2)])
    layer(torch.ones(1, 2, 4))
    clone = copy.deepcopy(layer)
    clone.set_weights([np.zeros_like(w) for w in clone.get_weights()])
    assert all(np.abs(w).sum() > 0 for w in layer.get_weights())
    assert clone.weights[0] is clone.cell.cells[0].kernel
    assert torch.equal(clone(torch.ones(1, 2, 4)), torch.zeros(1, 2))
