"""``rnnkit.cells.base``: the shared ``GatedCell`` and the dense ``BuiltinCell``.

* every built-in cell called directly takes numpy inputs and states, as the
  layers do, with exactly the numbers of the tensor call; bool and complex
  inputs are a ``TypeError`` naming the cell;
* ``ConvLSTMCell`` is a ``GatedCell`` but not a dense ``BuiltinCell``: no
  ``units``, ``implementation`` or matrix-product projections, none in its config;
* the kernel specs still recognise each family.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cells.base import BuiltinCell, GatedCell
from rnnkit.kernels.spec import spec_for

B, F, U = 2, 4, 3


def _conv_cell(**kwargs):
    return rnnkit.ConvLSTMCell(2, 3, 3, padding="same", **kwargs)


# cell factory, one-step input shape, number of states
CELLS = {
    "simple_rnn": (lambda **kw: rnnkit.SimpleRNNCell(U, **kw), (B, F), 1),
    "gru": (lambda **kw: rnnkit.GRUCell(U, **kw), (B, F), 1),
    "gru_reset_before": (lambda **kw: rnnkit.GRUCell(U, reset_after=False, **kw), (B, F), 1),
    "lstm": (lambda **kw: rnnkit.LSTMCell(U, **kw), (B, F), 2),
    "conv_lstm": (_conv_cell, (B, 5, 4, 2), 2),
}


def _built(kind, dtype="float32"):
    """A built cell with seeded random weights (a nonzero bias included)."""
    make, shape, n_states = CELLS[kind]
    cell = make(dtype=dtype)
    cell.build(shape)
    rng = np.random.RandomState(0)
    cell.set_weights([rng.randn(*w.shape) * 0.3 for w in cell.get_weights()])
    return cell


def _arrays(kind, cell):
    """Float64 numpy inputs and states for one step of ``cell``."""
    _, shape, n_states = CELLS[kind]
    rng = np.random.RandomState(1)
    x = rng.randn(*shape)
    states = [rng.randn(*s.shape) for s in cell.get_initial_state(B)]
    assert len(states) == n_states
    return x, states


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_numpy_inputs_and_states_equal_the_tensor_call(kind, dtype):
    cell = _built(kind, dtype)
    x, states = _arrays(kind, cell)
    torch_dtype = getattr(torch, dtype)
    want_out, want_states = cell(torch.tensor(x, dtype=torch_dtype),
                                 [torch.tensor(s, dtype=torch_dtype) for s in states])
    out, new_states = cell(x, states)  # float64 numpy arrays: cast to the cell's dtype
    assert out.dtype == torch_dtype and all(s.dtype == torch_dtype for s in new_states)
    np.testing.assert_array_equal(out.detach().numpy(), want_out.detach().numpy())
    assert len(new_states) == len(want_states)
    for got, want in zip(new_states, want_states):
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_float64_tensors_are_cast_like_numpy(kind):
    cell = _built(kind)
    x, states = _arrays(kind, cell)
    out64, _ = cell(torch.tensor(x), [torch.tensor(s) for s in states])
    out, _ = cell(x.astype("float32"), [s.astype("float32") for s in states])
    assert out64.dtype == torch.float32
    np.testing.assert_array_equal(out64.detach().numpy(), out.detach().numpy())


def test_the_example_from_the_issue():
    cell = rnnkit.LSTMCell(3, kernel_initializer="ones", recurrent_initializer="zeros")
    out, (h, c) = cell(np.ones((2, 4), np.float32), [np.zeros((2, 3)), np.zeros((2, 3))])
    # z = 4 in every block, bias i c o = 0, f = 1: c = sigmoid(4) * tanh(4), h = sigmoid(4) * tanh(c)
    s = 1.0 / (1.0 + np.exp(-4.0))
    c_want = s * np.tanh(4.0)
    np.testing.assert_allclose(c.detach().numpy(), np.full((2, 3), c_want), rtol=1e-6)
    np.testing.assert_allclose(out.detach().numpy(), np.full((2, 3), s * np.tanh(c_want)), rtol=1e-6)
    assert h is out or torch.equal(h, out)


def test_integer_inputs_are_cast():
    cell = _built("lstm")
    x = np.arange(B * F).reshape(B, F) - 3
    states = [np.zeros((B, U), "float32")] * 2
    out, _ = cell(x, states)
    want, _ = cell(torch.tensor(x, dtype=torch.float32), [torch.zeros(B, U)] * 2)
    np.testing.assert_array_equal(out.detach().numpy(), want.detach().numpy())


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bool_inputs_and_complex_states_are_type_errors_naming_the_cell(kind):
    cell = _built(kind)
    cell.name = "my_cell"
    x, states = _arrays(kind, cell)
    with pytest.raises(TypeError, match=r"my_cell: inputs must hold real numbers, got dtype torch.bool"):
        cell(x > 0, states)
    with pytest.raises(TypeError, match=r"my_cell: states must hold real numbers, got dtype torch.complex"):
        cell(x, [s.astype("complex64") for s in states])
    with pytest.raises(TypeError, match=r"my_cell: inputs must be a tensor or numpy array, got str"):
        cell.call("abc", states)


# --------------------------------------------------------------- the two bases
@pytest.mark.parametrize("kind", ["simple_rnn", "gru", "lstm"])
def test_dense_cells_are_builtin_cells(kind):
    cell = _built(kind)
    assert isinstance(cell, BuiltinCell) and isinstance(cell, GatedCell)
    config = cell.get_config()
    assert config["units"] == U and config["implementation"] == 2


def test_conv_lstm_cell_is_a_gated_cell_without_the_dense_part():
    cell = _built("conv_lstm")
    assert isinstance(cell, GatedCell) and not isinstance(cell, BuiltinCell)
    for attr in ("units", "implementation", "recurrent_matmul", "input_bias"):
        assert not hasattr(cell, attr), attr
    config = cell.get_config()
    assert "units" not in config and "implementation" not in config
    assert config["filters"] == 3 and config["rank"] == 2
    # what it shares with the dense cells: one implementation in GatedCell
    for method in ("_add_weights", "dropout_masks", "recurrent_dropout_masks", "call"):
        assert getattr(rnnkit.ConvLSTMCell, method) is getattr(GatedCell, method), method
        assert getattr(rnnkit.LSTMCell, method) is getattr(GatedCell, method), method
    assert cell.mask_count == 4  # one dropout mask per gate, always (Keras's ConvLSTM)
    assert tuple(cell.bias.shape) == (12,)


def test_dense_mask_count_follows_implementation():
    assert rnnkit.LSTMCell(U).mask_count == 1
    assert rnnkit.LSTMCell(U, implementation=1).mask_count == 4
    assert rnnkit.LSTMCell(U, implementation=0).mask_count == 1
    assert rnnkit.GRUCell(U, recurrent_dropout=0.2).mask_count == 3


@pytest.mark.parametrize("kind,family", [("simple_rnn", "SimpleRNN"), ("gru", "GRU"), ("lstm", "LSTM"),
                                         ("conv_lstm", "ConvLSTM")])
def test_kernel_specs_still_recognise_each_family(kind, family):
    spec = spec_for(_built(kind))
    assert spec is not None and spec.name == family
