"""``rnnkit.kernels.spec``: the registry of cell families, its lookups cached per cell type."""

import pytest
import torch

import rnnkit
from rnnkit.kernels import lstm as lstm_kernels
from rnnkit.kernels import spec as spec_mod
from rnnkit.kernels.spec import KernelSpec, register, spec_for


class MyLSTMCell(rnnkit.LSTMCell):
    """Overrides the step: not the LSTM family's fused or hoisted math any more."""

    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training)


class Plain(rnnkit.LSTMCell):
    """A subclass that keeps the step math."""


def test_spec_for_families_and_subclasses():
    assert spec_for(rnnkit.LSTMCell(2)) is lstm_kernels.SPEC
    assert spec_for(Plain(2)) is lstm_kernels.SPEC
    assert spec_for(MyLSTMCell(2)) is None
    assert spec_for(object()) is None


def test_spec_for_asks_the_specs_once_per_cell_type(monkeypatch):
    asked = []
    real = KernelSpec.matches
    monkeypatch.setattr(KernelSpec, "matches", lambda self, cell: (asked.append(type(cell)), real(self, cell))[1])
    monkeypatch.setattr(spec_mod, "_SPEC_BY_TYPE", {})
    for _ in range(3):
        assert spec_for(rnnkit.GRUCell(2)).name
        assert spec_for(MyLSTMCell(2)) is None
    n = len(asked)
    assert n > 0 and set(asked) == {rnnkit.GRUCell, MyLSTMCell}
    spec_for(rnnkit.GRUCell(3))
    assert len(asked) == n


@pytest.fixture
def restore_specs(monkeypatch):
    monkeypatch.setattr(spec_mod, "_SPECS", list(spec_mod._SPECS))
    monkeypatch.setattr(spec_mod, "_SPEC_BY_TYPE", {})


def test_register_clears_the_cache(restore_specs):
    class MySpec(KernelSpec):
        name = "my LSTM"
        cell_class = MyLSTMCell

    assert spec_for(MyLSTMCell(2)) is None
    spec = register(MySpec())
    assert spec_for(MyLSTMCell(2)) is spec


def test_inference_reuses_converted_weights_until_a_parameter_changes():
    from rnnkit.kernels.spec import cell_to_torch

    layer = rnnkit.LSTM(3)
    x = torch.randn(2, 4, 2)
    layer(x)
    with torch.no_grad():
        first = cell_to_torch(layer.cell)
        assert cell_to_torch(layer.cell)[0] is first[0]  # reused
        before = layer(x)
        layer.cell.kernel.mul_(2.0)  # in place: a new version
        assert cell_to_torch(layer.cell)[0] is not first[0]
        after = layer(x)
        layer.cell.kernel.data = layer.cell.kernel.data.clone() / 2.0  # new storage, same values as before
        torch.testing.assert_close(layer(x), before)
    assert not torch.allclose(before, after)
    assert cell_to_torch(layer.cell)[0].requires_grad  # with gradients: made anew, in the graph


def test_the_inference_weight_cache_is_not_part_of_the_cell():
    import copy
    import pickle

    layer = rnnkit.GRU(3)
    layer(torch.randn(2, 4, 2))
    with torch.no_grad():
        layer(torch.randn(2, 4, 2))  # fills the cache
    assert not any(isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], list) for v in vars(layer.cell).values())
    clone = pickle.loads(pickle.dumps(layer))
    torch.testing.assert_close(clone(torch.ones(1, 4, 2)), copy.deepcopy(layer)(torch.ones(1, 4, 2)))
