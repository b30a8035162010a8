"""``split_step``: a cell's step cut into its input part (run once over all steps) and its recurrent part.

The loop over the two parts must give the loop over the whole step: outputs, states and gradients (inputs and
weights), float64, for masks with holes, fully masked rows, go_backwards, nested states. Steps that cannot be
cut (or would not gain) are left whole.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.core.loop import rnn
from rnnkit.core.split_step import split_step
from rnnkit.layers import compiled_loop
from rnnkit.tools.bench_custom import MinimalTanhCell  # h_t = tanh(x_t W + h_{t-1} R)

aten = torch.ops.aten


class GatedCell(rnnkit.Layer):
    """Two states, a bias, a buffer, input-part values read at several places (the output too)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        u = self.units
        self.kernel = self.add_weight((input_shape[-1], 2 * u), "glorot_uniform", "kernel")
        self.recurrent_kernel = self.add_weight((u, 2 * u), "orthogonal", "recurrent_kernel")
        self.bias = self.add_weight((2 * u,), "random_normal", "bias")
        self.register_buffer("scale", torch.full((u,), 2.0))

    def call(self, inputs, states):
        h, c = states
        u = self.units
        zx_a, zx_b = (inputs @ self.kernel + self.bias).chunk(2, -1)
        z = torch.sigmoid(zx_a + h @ self.recurrent_kernel[:, :u])
        n = torch.tanh(zx_b * self.scale + (z * c) @ self.recurrent_kernel[:, u:])
        c_new = z * c + (1 - z) * n
        h_new = torch.tanh(c_new) + 0.1 * zx_b
        return h_new, [h_new, c_new]


class LinearCell(rnnkit.Layer):
    """``torch.nn.functional.linear`` with biases for both products (traced as ``addmm``)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight((self.units, input_shape[-1]), "glorot_uniform", "kernel")
        self.recurrent_kernel = self.add_weight((self.units, self.units), "orthogonal", "recurrent_kernel")
        self.bias = self.add_weight((self.units,), "random_normal", "bias")
        self.recurrent_bias = self.add_weight((self.units,), "random_normal", "recurrent_bias")

    def call(self, inputs, states):
        f = torch.nn.functional
        h = torch.tanh(f.linear(inputs, self.kernel, self.bias) + f.linear(states[0], self.recurrent_kernel,
                                                                           self.recurrent_bias))
        return h, [h]


class BatchMeanCell(MinimalTanhCell):
    """An input part that mixes the rows of a step (its batch mean): its steps' rows cannot run as one batch."""

    def call(self, inputs, states):
        centered = inputs - inputs.mean(0, keepdim=True)
        h = torch.tanh(centered @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h]


def _layer(cell, features=3, batch=4):
    torch.manual_seed(0)
    layer = rnnkit.RNN(cell, return_sequences=True)
    layer.build((batch, 7, features))
    layer.double()
    return layer


def _split(layer, x, small_products_up_to=0):
    states = layer.get_initial_state(x.shape[0])
    return split_step(layer.cell, layer.step_function(False, None), x[:, 0], states, small_products_up_to), states


def _mask(kind):
    if kind == "none":
        return None
    mask = torch.rand(4, 7, generator=torch.Generator().manual_seed(3)) > 0.4
    if kind == "fully_masked_row":
        mask[2] = False
    return mask


def _ops(graph_module):
    return [n.target.overloadpacket for n in graph_module.graph.nodes if n.op == "call_function"]


def test_the_input_projection_is_the_input_part():
    layer = _layer(MinimalTanhCell(5))
    split, _ = _split(layer, torch.randn(4, 7, 3, dtype=torch.float64))
    assert _ops(split.inputs_part) == [aten.mm]  # x_t @ kernel
    assert _ops(split.recurrent_part) == [aten.mm, aten.add, aten.tanh]  # h @ recurrent_kernel, + x part, tanh
    assert split.names == ["kernel", "recurrent_kernel"]


def test_small_products_become_a_product_and_a_sum():
    """``mm`` / ``addmm`` of the recurrent part up to the limit (4 rows x 5 x 5 units: 100 multiply-adds)."""
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    for cell, product in [(MinimalTanhCell, aten.mm), (LinearCell, aten.addmm)]:
        layer = _layer(cell(5))
        assert product in _ops(_split(layer, x, 99)[0].recurrent_part)
        small = _ops(_split(layer, x, 100)[0].recurrent_part)
        assert product not in small and aten.mul in small and aten.sum in small
        assert product in _ops(_split(layer, x, 100)[0].inputs_part)  # (the input part keeps its one product)


# (the batch-mean cell's rows are not independent: vmap only; test_rows_that_mix_run_through_vmap)
@pytest.mark.parametrize("cell,row_wise", [(MinimalTanhCell, True), (GatedCell, True), (LinearCell, True),
                                           (MinimalTanhCell, False), (GatedCell, False), (LinearCell, False),
                                           (BatchMeanCell, False)])
@pytest.mark.parametrize("mask_kind", ["none", "holes", "fully_masked_row"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("small_products", [0, 1 << 16])
def test_the_loop_over_the_parts_is_the_loop_over_the_step(cell, row_wise, mask_kind, go_backwards, small_products):
    """Both ways of running the input part: all steps' rows as one batch (where each row reads only its own
    row; the batch-mean cell's does not) and ``vmap`` over the steps."""
    layer = _layer(cell(5))
    x = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    split, states = _split(layer, x, small_products)
    assert split is not None
    assert split.row_wise == (cell is not BatchMeanCell)
    split.row_wise = row_wise  # (False: through vmap)
    mask = _mask(mask_kind)
    weights = split.weights(layer.cell)
    params = list(layer.parameters())
    runs = [rnn(layer.step_function(False, None), x, states, go_backwards=go_backwards, mask=mask),
            rnn(split.step_function(weights), split.project(weights, x), states, go_backwards=go_backwards,
                mask=mask)]
    results = []
    for last, outputs, new_states in runs:
        probe = torch.randn(outputs.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad([outputs, *new_states], [x, *params],
                                    [probe, *[torch.ones_like(s) for s in new_states]])
        results.append([last, outputs, *new_states, *grads])
    for whole, parts in zip(*results):
        torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)


def test_rows_that_mix_run_through_vmap():
    """The batch-mean cell's steps' rows run as one batch would give other numbers (the mean of all steps'
    rows): what ``_row_wise`` guards against."""
    layer = _layer(BatchMeanCell(5))
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    split, states = _split(layer, x)
    weights = split.weights(layer.cell)
    assert not split.row_wise
    by_step = split.project(weights, x)[0]
    torch.testing.assert_close(by_step[:, 2], (x[:, 2] - x[:, 2].mean(0)) @ layer.cell.kernel)
    split.row_wise = True
    assert not torch.allclose(split.project(weights, x)[0], by_step)


_INPUT_PARTS = {  # name: (the op on the step's input, whether its rows stay apart)
    "feature slice": (lambda x: x[:, 1:], True),
    "unsqueeze, index the new dim": (lambda x: x.unsqueeze(-1)[..., 0], True),
    "broadcast weights": (lambda x: x * torch.ones(x.shape[-1], dtype=x.dtype), True),
    "unsqueeze, squeeze": (lambda x: x.unsqueeze(1).squeeze(1), False),
    "transpose twice": (lambda x: x.t().t(), False),
    "reshape with the batch": (lambda x: x.reshape(x.shape[0], -1), False),
    "batch sum": (lambda x: x * x.sum(0), False),
    "flip the rows": (lambda x: x.flip(0), False),
    "cumsum": (lambda x: x.cumsum(1), False),
}


@pytest.mark.parametrize("name", list(_INPUT_PARTS))
def test_which_input_parts_run_all_rows_at_once(name):
    """Views along the features and elementwise ops with broadcast weights keep rows apart; any view through
    the rows (even one that undoes itself), reduction, flip or other op is left to vmap."""
    op, row_wise = _INPUT_PARTS[name]

    class Cell(MinimalTanhCell):
        def call(self, inputs, states):
            part = op(inputs)
            h = torch.tanh(part @ self.kernel[:part.shape[-1]] + states[0] @ self.recurrent_kernel)
            return h, [h]

    layer = _layer(Cell(5))
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    for batch in (4, 1):  # (at batch 1 a broadcast to more dims keeps a first dim of 1: the rows moved all the same)
        split, states = _split(layer, x[:batch])
        assert split is not None and split.row_wise == row_wise
        weights = split.weights(layer.cell)
        by_step = rnn(layer.step_function(False, None), x[:batch], states)[1]
        torch.testing.assert_close(rnn(split.step_function(weights), split.project(weights, x[:batch]), states)[1],
                                   by_step, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [4, 1])
def test_a_broadcast_to_more_dims_is_not_row_wise(batch):
    """``x_t + w`` with ``w`` of shape ``(1, 1, D)`` puts the rows in the second dim: even at batch 1, where the
    first dim is still 1, all steps' rows would land there, not in the first."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from rnnkit.core.split_step import _row_wise

    graph = make_fx(lambda w, x: x + w, tracing_mode="fake")(torch.zeros(1, 1, 3), torch.zeros(batch, 3)).graph
    assert not _row_wise(graph, batch)
    same_rank = make_fx(lambda w, x: x + w, tracing_mode="fake")(torch.zeros(1, 3), torch.zeros(batch, 3)).graph
    assert _row_wise(same_rank, batch)


@pytest.mark.parametrize("small_products", [0, 1 << 16])
def test_gradcheck_through_both_parts(small_products):
    layer = _layer(GatedCell(2), features=2, batch=2)
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    split, states = _split(layer, x, small_products)
    weights = split.weights(layer.cell)

    def run(x, *weights):
        _, outputs, new_states = rnn(split.step_function(list(weights)), split.project(list(weights), x), states)
        return outputs, *new_states

    assert torch.autograd.gradcheck(run, (x, *weights))


def test_weights_are_read_at_each_call():
    """The parts take the cell's current weights: training steps, load_state_dict (assign too) need no trace."""
    layer = _layer(GatedCell(5))
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    split, states = _split(layer, x)
    with torch.no_grad():
        layer.cell.kernel.mul_(3.0)
        layer.cell.scale.fill_(-1.0)
    fresh = {k: torch.randn_like(v) for k, v in layer.state_dict().items() if "recurrent" in k}
    layer.load_state_dict(fresh, strict=False, assign=True)
    weights = split.weights(layer.cell)
    assert weights[1] is layer.cell.recurrent_kernel
    whole = rnn(layer.step_function(False, None), x, states)
    parts = rnn(split.step_function(weights), split.project(weights, x), states)
    torch.testing.assert_close(parts[1], whole[1], rtol=1e-12, atol=1e-12)


class _Branching(MinimalTanhCell):
    def call(self, inputs, states):
        if inputs.sum() > 0:  # a branch on tensor values: no trace holds for every input
            return super().call(inputs, states)
        return super().call(-inputs, states)


class _Dropping(MinimalTanhCell):
    def call(self, inputs, states):
        return super().call(torch.nn.functional.dropout(inputs, 0.5, True), states)


class _InPlace(MinimalTanhCell):
    def call(self, inputs, states):
        z = inputs @ self.kernel
        z.add_(states[0] @ self.recurrent_kernel)
        h = torch.tanh(z)
        return h, [h]


class _Elementwise(MinimalTanhCell):
    def call(self, inputs, states):  # nothing but elementwise work on the input: no product to batch
        h = torch.tanh(inputs.sum(-1, keepdim=True) + states[0] @ self.recurrent_kernel)
        return h, [h]


class _NotAModule:
    state_size = 5

    def __init__(self):
        self.kernel = torch.randn(3, 5, dtype=torch.float64)

    def call(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0])
        return h, [h]


@pytest.mark.parametrize("cell", [_Branching, _Dropping, _InPlace, _Elementwise, _NotAModule],
                         ids=["value_branch", "random", "in_place", "no_product", "not_a_module"])
def test_steps_that_are_not_cut(cell):
    layer = _layer(cell(5) if cell is not _NotAModule else cell())
    split, _ = _split(layer, torch.randn(4, 7, 3, dtype=torch.float64))
    assert split is None


def test_a_compiled_stacked_layer_splits_each_call(monkeypatch):
    """``RNN(compile=True)`` over stacked custom cells (nested states): split once per shapes and ``training``,
    the plain loop's numbers."""
    from rnnkit.core.split_step import SplitStep

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    torch.manual_seed(0)
    plain = rnnkit.RNN([GatedCell(4), MinimalTanhCell(3)], return_sequences=True, return_state=True)
    compiled = rnnkit.RNN([GatedCell(4), MinimalTanhCell(3)], return_sequences=True, return_state=True,
                          compile=True)
    for layer in (plain, compiled):
        layer.build((4, 7, 3))
        layer.double()
    compiled.load_state_dict(plain.state_dict())
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    mask = _mask("holes")
    for _ in range(2):
        expected, got = plain(x, mask=mask), compiled(x, mask=mask)
        for a, b in zip(expected, got):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    compiled(x[:2])  # another batch size: another trace
    assert len(compiled._split_steps) == 2
    assert all(isinstance(s, SplitStep) for s in compiled._split_steps.values())


class _Scaled(MinimalTanhCell):
    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.scale = 2.0
        self.activation = torch.tanh

    def call(self, inputs, states):
        h = self.activation(self.scale * (inputs @ self.kernel) + states[0] @ self.recurrent_kernel)
        return h, [h]


def _compiled(monkeypatch, cell):
    """``RNN(cell, compile=True)`` (sequences and state returned) for ``(4, 7, 3)`` inputs, ``torch.compile``
    replaced by the function itself."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    torch.manual_seed(0)
    layer = rnnkit.RNN(cell, return_sequences=True, return_state=True, compile=True)
    layer.build((4, 7, 3))
    return layer


def _assert_plain_loop(layer, x, mask=None):
    """The layer's outputs and final state are the plain loop's over its cell."""
    outputs, state = layer(x, mask=mask)
    _, expected, states = rnn(layer.step_function(False, None), x, layer.get_initial_state(x.shape[0]), mask=mask)
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(state, states[0])


def test_a_compiled_layer_traces_again_when_a_plain_attribute_changes(monkeypatch):
    """A trace bakes in the floats and functions it read: another value of one is another trace."""
    layer = _compiled(monkeypatch, _Scaled(5))
    x = torch.randn(4, 7, 3)
    for scale, activation in [(2.0, torch.tanh), (-0.5, torch.tanh), (-0.5, torch.sigmoid)]:
        layer.cell.scale, layer.cell.activation = scale, activation
        _assert_plain_loop(layer, x)
    assert len(layer._split_steps) == 3
    monkeypatch.setattr(compiled_loop, "SPLITS_KEPT", 2)
    layer.cell.scale = 3.0
    layer(x)
    assert len(layer._split_steps) == 2  # the oldest went


class _Remembering(MinimalTanhCell):
    def call(self, inputs, states):
        self.seen = inputs  # a side effect: the trace's fake tensor must not stay on the cell
        return super().call(inputs, states)


def test_the_trace_leaves_the_cell_as_it_was():
    layer = _layer(_Remembering(5))
    layer.cell.seen = "before"
    split, _ = _split(layer, torch.randn(4, 7, 3, dtype=torch.float64))
    assert split is not None and layer.cell.seen == "before"
    del layer.cell.seen
    _split(layer, torch.randn(4, 7, 3, dtype=torch.float64))
    assert not hasattr(layer.cell, "seen")


class _Transposed(MinimalTanhCell):
    def call(self, inputs, states):  # the input part's value is (units, batch): not what the loop takes
        h = torch.tanh((inputs @ self.kernel).t() + (states[0] @ self.recurrent_kernel).t()).t()
        return h, [h]


class _Summed(MinimalTanhCell):
    def call(self, inputs, states):  # a scalar of the input part mixed with the state
        z = inputs @ self.kernel
        h = torch.tanh(z + states[0] @ self.recurrent_kernel + 0.01 * z.sum() * states[0])
        return h, [h]


class _Listed(MinimalTanhCell):
    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.scales = [2.0]
        self.factor = np.float32(1.0)

    def call(self, inputs, states):
        h = torch.tanh(self.scales[0] * self.factor * (inputs @ self.kernel) + states[0] @ self.recurrent_kernel)
        return h, [h]


class _GradMode(MinimalTanhCell):
    def call(self, inputs, states):  # a step that reads the grad mode
        scale = 2.0 if torch.is_grad_enabled() else -1.0
        h = torch.tanh(scale * (inputs @ self.kernel) + states[0] @ self.recurrent_kernel)
        return h, [h]


@pytest.mark.parametrize("cell", [_Transposed, _Summed], ids=["not_batch_first", "scalar"])
def test_input_parts_the_loop_cannot_take_leave_the_step_whole(monkeypatch, cell):
    layer = _compiled(monkeypatch, cell(5))
    _assert_plain_loop(layer, torch.randn(4, 7, 3), torch.rand(4, 7, generator=torch.Generator().manual_seed(0)) > 0.3)
    assert list(layer._split_steps.values()) == [None]


def test_attributes_in_containers_and_numpy_scalars_are_in_the_key(monkeypatch):
    layer = _compiled(monkeypatch, _Listed(5))
    x = torch.randn(4, 7, 3)
    _assert_plain_loop(layer, x)
    layer.cell.scales[0] = -3.0  # (a list changed in place)
    _assert_plain_loop(layer, x)
    layer.cell.factor = np.float32(0.5)
    _assert_plain_loop(layer, x)
    assert len(layer._split_steps) == 3


def test_attributes_without_a_snapshot_leave_the_step_whole(monkeypatch):
    import types

    cell = _Scaled(5)
    cell.config = types.SimpleNamespace(scale=2.0)  # an object a trace could read unseen
    layer = _compiled(monkeypatch, cell)
    _assert_plain_loop(layer, torch.randn(4, 7, 3))
    assert not layer.__dict__.get("_split_steps")  # (nothing traced)


def test_a_step_that_reads_the_grad_mode_is_traced_per_grad_mode(monkeypatch):
    layer = _compiled(monkeypatch, _GradMode(5))
    x = torch.randn(4, 7, 3)
    for grad in (False, True, False):
        with torch.set_grad_enabled(grad):
            _assert_plain_loop(layer, x)
    assert len(layer._split_steps) == 2
