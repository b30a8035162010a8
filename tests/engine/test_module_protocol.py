"""The Layer as a torch module: weights looked up by name, lazy loading, penalties
counted once, constructor arguments recorded as the config."""

import json

import numpy as np
import pytest
import torch
from torch.nn.utils.parametrizations import weight_norm

import rnnkit
from rnnkit.engine.constraints import MaxNorm, NonNeg
from rnnkit.engine.regularizers import L1, L2
from rnnkit.engine.seeds import SeedStream


class Dense(rnnkit.Layer):
    """``x @ kernel + bias``, with a regularized and constrained kernel."""

    def __init__(self, units, kernel_regularizer=None, kernel_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units), "glorot_uniform", "kernel",
                                      self.kernel_regularizer, self.kernel_constraint)
        self.bias = self.add_weight((self.units,), "zeros", "bias")

    def call(self, x):
        return x @ self.kernel + self.bias


def _dense():
    layer = Dense(3, kernel_regularizer=L2(0.5), kernel_constraint=NonNeg())
    layer.build((None, 4))
    return layer


def _values(seed=0):
    rng = np.random.RandomState(seed)
    return {"kernel": torch.tensor(rng.randn(4, 3), dtype=torch.float32),
            "bias": torch.tensor(rng.randn(3), dtype=torch.float32)}


def _check_live(layer, values):
    """get_weights, losses and apply_constraints all see ``values``, the live parameters."""
    np.testing.assert_array_equal(layer.get_weights()[0], values["kernel"].numpy())
    np.testing.assert_array_equal(layer.get_weights()[1], values["bias"].numpy())
    (penalty,) = layer.losses
    torch.testing.assert_close(penalty, 0.5 * (values["kernel"] ** 2).sum(), atol=0, rtol=1e-6)
    layer.apply_constraints()
    torch.testing.assert_close(layer.kernel.detach(), values["kernel"].clamp(min=0), atol=0, rtol=0)
    assert layer.weights[0] is layer.kernel


# --------------------------------------------------------- weights by name
def test_weights_are_live_after_load_state_dict_with_assign():
    layer = _dense()
    old_kernel = layer.kernel
    values = _values()
    layer.load_state_dict(values, assign=True)
    assert layer.kernel is not old_kernel
    assert [r["key"] for r in layer._weight_records] == ["kernel", "bias"]  # records kept, in order
    _check_live(layer, values)
    assert layer.kernel.requires_grad


def test_weights_are_live_after_meta_and_to_empty():
    layer = _dense()
    layer.to("meta")
    assert layer.kernel.device.type == "meta" and layer.dtype == torch.float32
    layer.to_empty(device="cpu")
    values = _values(1)
    layer.load_state_dict(values)
    _check_live(layer, values)


def test_weights_are_live_under_weight_norm():
    layer = _dense()
    layer.kernel_constraint = None
    layer._weight_records[0]["constraint"] = MaxNorm(0.5, axis=0)
    values = _values(2)
    layer.load_state_dict(values)
    x = torch.tensor(np.random.RandomState(3).randn(2, 4), dtype=torch.float32)
    y = layer(x)
    weight_norm(layer, "kernel", dim=1)
    torch.testing.assert_close(layer(x), y, atol=1e-6, rtol=0)  # same weight, reparametrized
    g = layer.parametrizations.kernel.original0
    v = layer.parametrizations.kernel.original1
    with torch.no_grad():
        g.mul_(2.0)
    torch.testing.assert_close(layer(x), 2 * (y - layer.bias) + layer.bias, atol=1e-5, rtol=0)
    np.testing.assert_allclose(layer.get_weights()[0], 2 * values["kernel"].numpy(), atol=1e-6)
    (penalty,) = layer.losses
    torch.testing.assert_close(penalty, 0.5 * ((2 * values["kernel"]) ** 2).sum(), rtol=1e-5, atol=0)
    layer(x).sum().backward()
    assert g.grad is not None and v.grad is not None and float(v.grad.abs().sum()) > 0
    layer.apply_constraints()  # through weight_norm's right_inverse: column norms capped at 0.5
    norms = layer.kernel.detach().norm(dim=0)
    assert float(norms.max()) <= 0.5 + 1e-6
    torch.testing.assert_close(g.detach().flatten(), norms, atol=1e-6, rtol=0)
    layer.set_weights([np.ones((4, 3), "float32"), np.zeros(3, "float32")])
    torch.testing.assert_close(layer.kernel.detach(), torch.ones(4, 3), atol=1e-6, rtol=0)
    layer.trainable = False
    assert not g.requires_grad and not v.requires_grad


def test_rnn_cell_under_weight_norm_trains_the_originals():
    layer = rnnkit.LSTM(4, input_shape=(None, 3))
    x = torch.tensor(np.random.RandomState(0).randn(2, 5, 3), dtype=torch.float32)
    y = layer(x)
    weight_norm(layer.cell, "kernel", dim=1)
    torch.testing.assert_close(layer(x), y, atol=1e-6, rtol=0)
    g = layer.cell.parametrizations.kernel.original0
    with torch.no_grad():
        g.mul_(1.5)
    ref = rnnkit.LSTM(4, input_shape=(None, 3))
    ref.set_weights(layer.get_weights())
    assert np.abs(layer.get_weights()[0]).sum() > 0
    y2 = layer(x)
    torch.testing.assert_close(y2, ref(x), atol=1e-6, rtol=0)
    assert (y2 - y).abs().max() > 1e-3
    y2.sum().backward()
    assert float(g.grad.abs().sum()) > 0


def test_dtype_property_reads_the_live_weight():
    layer = _dense()
    layer.load_state_dict({k: v.double() for k, v in _values().items()}, assign=True)
    assert layer.dtype == torch.float64


# ------------------------------------------------------------- lazy loading
def test_unbuilt_layer_is_built_from_a_stored_kernel():
    trained = _dense()
    trained.load_state_dict(_values())
    lazy = Dense(3, kernel_regularizer=L2(0.5))
    lazy.load_state_dict(trained.state_dict())
    assert lazy.built
    x = torch.ones(2, 4)
    torch.testing.assert_close(lazy(x), trained(x), atol=0, rtol=0)


def test_unbuilt_layer_with_an_unreadable_shape_says_to_build_first():
    class Odd(rnnkit.Layer):
        def build(self, input_shape):
            self.w = self.add_weight((2, 2, input_shape[-1]), name="w")

    trained = Odd()
    trained.build((None, 3))
    with pytest.raises(RuntimeError, match="odd.*not built.*build it first"):
        Odd(name="odd").load_state_dict(trained.state_dict())


def test_torch_style_layer_without_build_loads_as_before():
    class TorchStyle(rnnkit.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.lin = torch.nn.Linear(2, 3)

        def forward(self, x):
            return self.lin(x)

    a, b = TorchStyle(), TorchStyle()
    b.load_state_dict(a.state_dict())
    assert not b.built
    torch.testing.assert_close(b(torch.ones(1, 2)), a(torch.ones(1, 2)), atol=0, rtol=0)


# ------------------------------------------------------ penalties counted once
class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.LSTM(4, return_sequences=True, kernel_regularizer=L2(0.1), activity_regularizer=L1(0.01))
        self.heads = torch.nn.ModuleList([rnnkit.Bidirectional(rnnkit.GRU(3, recurrent_regularizer=L1(0.2)))])

    def forward(self, x):
        return self.heads[0](self.rnn(x))


def test_regularization_losses_counts_each_penalty_once():
    model = torch.nn.Sequential(Block(), torch.nn.Linear(6, 1))
    x = torch.tensor(np.random.RandomState(0).randn(2, 5, 3), dtype=torch.float32)
    out = model(x)
    block = model[0]
    penalties = rnnkit.regularization_losses(model)
    with torch.no_grad():
        expected = (
            0.1 * (block.rnn.cell.kernel ** 2).sum()
            + 0.01 * block.rnn(x).abs().sum()
            + 0.2 * sum(layer.cell.recurrent_kernel.abs().sum()
                        for layer in (block.heads[0].forward_layer, block.heads[0].backward_layer))
        )
        assert len(penalties) == 4
        torch.testing.assert_close(sum(penalties), expected, atol=0, rtol=1e-6)
        naive = sum(sum(m.losses) for m in model.modules() if isinstance(m, rnnkit.Layer))
        assert float(naive) > float(expected) + 1e-3  # why the helper exists
    (out.sum() + sum(penalties)).backward()
    assert block.rnn.cell.kernel.grad is not None


# -------------------------------------------------------- automatic configs
class Scaled(rnnkit.Layer):
    def __init__(self, units, scale=2.0, tags=("a", "b"), **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale, self.tags = units, scale, tags


def test_constructor_arguments_are_the_config():
    layer = Scaled(3, scale=0.5, name="s", dtype="float64")
    config = layer.get_config()
    assert config == {"name": "s", "trainable": True, "dtype": "float64", "units": 3, "scale": 0.5,
                      "tags": ("a", "b")}
    clone = Scaled.from_config(config)
    assert (clone.units, clone.scale, clone.tags, clone.dtype) == (3, 0.5, ("a", "b"), torch.float64)


def test_only_plain_arguments_are_recorded_and_get_config_overrides_win():
    class Holder(rnnkit.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

    class Own(Scaled):
        def get_config(self):
            return dict(super().get_config(), custom=True)

    with pytest.raises(NotImplementedError, match=r"Holder .*`inner` = a Linear.*define Holder.get_config"):
        Holder(torch.nn.Linear(1, 1)).get_config()
    with pytest.raises(NotImplementedError, match=r"`tags\[1\]` = a Linear"):
        Scaled(2, tags=("a", torch.nn.Linear(1, 1))).get_config()
    config = Own(4).get_config()
    assert config["custom"] is True and "units" not in config
    assert Own(4, tags=(torch.nn.Linear(1, 1),)).get_config()["custom"] is True  # its own get_config: no error


def test_positional_only_arguments_cannot_be_recorded():
    class Positional(rnnkit.Layer):
        def __init__(self, units, /, **kwargs):
            super().__init__(**kwargs)

    with pytest.raises(NotImplementedError, match="positional-only argument 'units'"):
        Positional(3).get_config()


def test_numpy_scalars_are_recorded_as_python_values():
    layer = Scaled(np.int64(3), scale=np.float32(0.5), tags=[np.bool_(True), {"k": np.float64(0.25)}])
    config = layer.get_config()
    assert (config["units"], config["scale"], config["tags"]) == (3, 0.5, [True, {"k": 0.25}])
    assert type(config["units"]) is int and type(config["scale"]) is float and type(config["tags"][0]) is bool
    json.dumps(config)


def test_config_without_kwargs_in_init_keeps_only_what_init_takes():
    class Plain(rnnkit.Layer):
        def __init__(self, units=2):
            super().__init__()
            self.units = units

    config = Plain(5).get_config()
    assert config == {"units": 5}
    assert Plain.from_config(config).units == 5


# ----------------------------------------------------------------- seeds
def test_seed_stream_replays_a_draw_only_in_a_recomputation():
    stream = SeedStream(7)
    torch.manual_seed(0)
    first = torch.rand(3, generator=stream.generator("cpu"))
    torch.manual_seed(0)  # same global state, but not in a backward pass: a new draw
    second = torch.rand(3, generator=stream.generator("cpu"))
    assert not torch.equal(first, second)
    twin = SeedStream(7)
    torch.testing.assert_close(torch.rand(3, generator=twin.generator("cpu")), first, atol=0, rtol=0)
