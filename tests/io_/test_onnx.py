"""``rnnkit.io.onnx``: ``export_onnx`` to native ONNX ``LSTM`` / ``GRU`` / ``RNN`` nodes, checked in onnxruntime.

Every model is exported once at batch 3, length 6 with dynamic batch and time
axes and run by onnxruntime at other batch sizes and lengths; all outputs
(sequences and final states) equal PyTorch's within 1e-4. The graphs hold the
native node types and no loop; masks are right-padded with rows of every
length (0 and full included); a mask with holes makes the graph fail at run
time; layers that run a loop are refused a dynamic time axis and export with
a static one.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import rnnkit  # noqa: E402
from rnnkit.io.onnx import MASK_CHECK_NODE, export_onnx  # noqa: E402
from rnnkit.tools.bench_custom import MinimalTanhCell  # noqa: E402

D = 4
TOL = {"rtol": 1e-4, "atol": 1e-4}
SIZES = [(3, 6), (2, 9), (5, 3), (1, 2)]  # (batch, time): the export's, then others
LOOPS = {"Loop", "Scan", "If"}
RNN_NODES = {"LSTM", "GRU", "RNN"}


def _dims():
    return torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)


def _op_types(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _outputs(result) -> list[np.ndarray]:
    results = result if isinstance(result, (list, tuple)) else [result]
    return [r.detach().numpy() for r in results]


def _right_padded(batch: int, steps: int, seed: int) -> torch.Tensor:
    """A right-padded mask with a full row and an empty row (when batch allows) and random lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    if batch > 1:
        lengths[-1] = 0
    return torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)


def _export(layer, tmp_path, masked: bool, name: str = "model.onnx"):
    torch.manual_seed(0)
    x = torch.randn(3, 6, D)
    kwargs = {"mask": _right_padded(3, 6, seed=0)} if masked else {}
    layer(x, **kwargs)
    batch, time = _dims()
    shapes = {"sequences": {0: batch, 1: time}}
    if masked:
        shapes["mask"] = {0: batch, 1: time}
    path = tmp_path / name
    export_onnx(layer, (x,), path, kwargs, shapes)
    return path


def _check_at_other_sizes(layer, path, masked: bool) -> None:
    session = ort.InferenceSession(str(path))
    for seed, (batch, steps) in enumerate(SIZES):
        x = torch.randn(batch, steps, D)
        feeds, kwargs = {"sequences": x.numpy()}, {}
        if masked:
            mask = _right_padded(batch, steps, seed)
            feeds["mask"], kwargs = mask.numpy(), {"mask": mask}
        got = session.run(None, feeds)
        want = _outputs(layer.eval()(x, **kwargs))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, **TOL, err_msg=f"batch {batch}, time {steps}")


# ------------------------------------------------------------------ unmasked
FUSABLE = [
    ("lstm", lambda: rnnkit.LSTM(5, return_sequences=True), {"LSTM": 1}),
    ("lstm-no-bias-states", lambda: rnnkit.LSTM(5, use_bias=False, return_state=True), {"LSTM": 1}),
    ("lstm-backwards-states", lambda: rnnkit.LSTM(5, go_backwards=True, return_sequences=True, return_state=True),
     {"LSTM": 1}),
    ("gru-states", lambda: rnnkit.GRU(5, return_sequences=True, return_state=True), {"GRU": 1}),
    ("simple-tanh", lambda: rnnkit.SimpleRNN(5, return_sequences=True), {"RNN": 1}),
    ("simple-relu-backwards", lambda: rnnkit.SimpleRNN(5, activation="relu", go_backwards=True,
                                                       return_sequences=True, return_state=True), {"RNN": 1}),
    ("cudnn-lstm", lambda: rnnkit.CuDNNLSTM(5, return_sequences=True), {"LSTM": 1}),
    ("cudnn-gru-states", lambda: rnnkit.CuDNNGRU(5, return_state=True), {"GRU": 1}),
    ("bidirectional-lstm", lambda: rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True)), {"LSTM": 1}),
    ("bidirectional-gru-states", lambda: rnnkit.Bidirectional(rnnkit.GRU(4, return_state=True), merge_mode="sum"),
     {"GRU": 1}),
]


@pytest.mark.parametrize("make, nodes", [case[1:] for case in FUSABLE], ids=[case[0] for case in FUSABLE])
def test_fusable_layers_become_one_native_node(make, nodes, tmp_path):
    layer = make()
    path = _export(layer, tmp_path, masked=False)
    types = _op_types(path)
    assert {t: types.count(t) for t in RNN_NODES if t in types} == nodes
    assert not LOOPS & set(types)
    _check_at_other_sizes(layer, path, masked=False)


def test_native_node_attributes(tmp_path):
    """ONNX's GRU is torch's with linear_before_reset=1; relu SimpleRNN sets the activation; bidirectional."""
    for name, make, attrs in [
        ("gru", lambda: rnnkit.GRU(3), {"linear_before_reset": 1, "direction": b"forward"}),
        ("relu", lambda: rnnkit.SimpleRNN(3, activation="relu"), {"activations": [b"Relu"]}),
        ("bi", lambda: rnnkit.Bidirectional(rnnkit.SimpleRNN(3, activation="relu")),
         {"activations": [b"Relu", b"Relu"], "direction": b"bidirectional"}),
    ]:
        path = _export(make(), tmp_path, masked=False, name=f"{name}.onnx")
        (node,) = [n for n in onnx.load(str(path)).graph.node if n.op_type in RNN_NODES]
        found = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        for key, value in attrs.items():
            assert found[key] == value, (name, key)
        assert found["hidden_size"] == 3


def test_initial_state_inputs(tmp_path):
    torch.manual_seed(1)
    layer = rnnkit.LSTM(5, return_sequences=True, return_state=True)
    x, states = torch.randn(3, 6, D), [torch.randn(3, 5), torch.randn(3, 5)]
    layer(x, initial_state=states)
    batch, time = _dims()
    path = tmp_path / "states.onnx"
    export_onnx(layer, (x,), path, {"initial_state": states},
                {"sequences": {0: batch, 1: time}, "initial_state": [{0: batch}, {0: batch}]})
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["sequences", "initial_state_0", "initial_state_1"]
    x2, states2 = torch.randn(4, 8, D), [torch.randn(4, 5), torch.randn(4, 5)]
    got = session.run(None, {"sequences": x2.numpy(), "initial_state_0": states2[0].numpy(),
                             "initial_state_1": states2[1].numpy()})
    for g, w in zip(got, _outputs(layer(x2, initial_state=states2))):
        np.testing.assert_allclose(g, w, **TOL)


class _KernelWithLengths(torch.nn.Module):
    """``rnnkit::rnn_kernel`` called with ``lengths`` (packed rows), as a bidirectional pair may."""

    def __init__(self, mode, bidirectional):
        super().__init__()
        gates = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[mode]
        self.mode, self.bidirectional = mode, bidirectional
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(gates * 5, n) / 3) for _ in range(1 + bidirectional) for n in (D, 5)])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(gates * 5) / 3) for _ in range(2 + 2 * bidirectional)])

    def forward(self, x, h, lengths):
        w = list(self.weights)
        b = list(self.biases)
        weights = w[:2] + b[:2] + (w[2:] + b[2:] if self.bidirectional else [])
        hx = [h, h + 1] if self.mode == "lstm" else [h]
        return torch.ops.rnnkit.rnn_kernel(x, hx, weights, self.mode, True, self.bidirectional, lengths)


@pytest.mark.parametrize("mode, bidirectional", [("lstm", True), ("gru", False), ("rnn_tanh", True)])
def test_kernel_op_with_lengths(mode, bidirectional, tmp_path):
    torch.manual_seed(2)
    module = _KernelWithLengths(mode, bidirectional)
    dirs = 1 + bidirectional
    x, h, lengths = torch.randn(3, 6, D), torch.randn(dirs, 3, 5), torch.tensor([6, 2, 4])
    batch, time = _dims()
    path = tmp_path / "lengths.onnx"
    export_onnx(module, (x, h, lengths), path,
                dynamic_shapes={"x": {0: batch, 1: time}, "h": {1: batch}, "lengths": {0: batch}})
    assert not LOOPS & set(_op_types(path))
    session = ort.InferenceSession(str(path))
    x2, h2, lengths2 = torch.randn(4, 7, D), torch.randn(dirs, 4, 5), torch.tensor([7, 1, 3, 5])
    got = session.run(None, {"x": x2.numpy(), "h": h2.numpy(), "lengths": lengths2.numpy()})
    for g, w in zip(got, _outputs(module(x2, h2, lengths2))):
        np.testing.assert_allclose(g, w, **TOL)


# -------------------------------------------------------------------- masked
MASKED = [
    ("lstm-states", lambda: rnnkit.LSTM(5, return_sequences=True, return_state=True), {"LSTM": 1}),
    ("lstm-last", lambda: rnnkit.LSTM(5), {"LSTM": 1}),
    ("gru-backwards-states", lambda: rnnkit.GRU(5, return_sequences=True, go_backwards=True, return_state=True),
     {"GRU": 1}),
    ("simple-relu-zero-output", lambda: rnnkit.SimpleRNN(5, activation="relu", return_sequences=True,
                                                         zero_output_for_mask=True, return_state=True), {"RNN": 1}),
    ("simple-backwards-last", lambda: rnnkit.SimpleRNN(5, go_backwards=True), {"RNN": 1}),
    ("bidirectional-lstm", lambda: rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True)), {"LSTM": 2}),
]


@pytest.mark.parametrize("make, nodes", [case[1:] for case in MASKED], ids=[case[0] for case in MASKED])
def test_right_padded_masks_become_sequence_lens(make, nodes, tmp_path):
    layer = make()
    path = _export(layer, tmp_path, masked=True)
    graph = onnx.load(str(path)).graph
    types = [n.op_type for n in graph.node]
    assert {t: types.count(t) for t in RNN_NODES if t in types} == nodes
    assert not LOOPS & set(types)
    for node in graph.node:
        if node.op_type in RNN_NODES:
            assert len(node.input) > 4 and node.input[4], "sequence_lens is wired"
    _check_at_other_sizes(layer, path, masked=True)


@pytest.mark.parametrize("mask", [
    [[1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]],
    [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]],
], ids=["holes", "leading-padding"])
def test_a_mask_that_is_not_right_padded_fails_at_run_time(mask, tmp_path):
    """No native node can run it exactly: the graph refuses it, never answering as if it were right-padded."""
    layer = rnnkit.GRU(5, return_sequences=True)
    path = _export(layer, tmp_path, masked=True)
    assert MASK_CHECK_NODE in {n.name for n in onnx.load(str(path)).graph.node}
    session = ort.InferenceSession(str(path))
    x = np.random.default_rng(0).standard_normal((3, 6, D)).astype(np.float32)
    with pytest.raises(Exception, match=MASK_CHECK_NODE):
        session.run(None, {"sequences": x, "mask": np.array(mask, dtype=bool)})


def test_a_mask_computed_in_the_graph(tmp_path):
    """``Embedding(mask_zero=True)`` feeding two masked layers: trailing zeros are right-padded, holes refused."""
    torch.manual_seed(3)
    model = rnnkit.Sequential([rnnkit.Embedding(20, D, mask_zero=True), rnnkit.LSTM(5, return_sequences=True),
                               rnnkit.GRU(3)])
    ids = torch.randint(1, 20, (3, 6))
    ids[1, 3:] = 0
    model(ids)
    batch, time = _dims()
    path = tmp_path / "embedding.onnx"
    export_onnx(model, (ids,), path, dynamic_shapes={"inputs": {0: batch, 1: time}})
    types = _op_types(path)
    assert (types.count("LSTM"), types.count("GRU")) == (1, 1) and not LOOPS & set(types)
    session = ort.InferenceSession(str(path))
    ids2 = torch.randint(1, 20, (4, 9))
    ids2[0, 5:] = 0
    ids2[3, :] = 0
    np.testing.assert_allclose(session.run(None, {"inputs": ids2.numpy()})[0], _outputs(model(ids2))[0], **TOL)
    ids2[1, 2] = 0
    with pytest.raises(Exception, match=MASK_CHECK_NODE):
        session.run(None, {"inputs": ids2.numpy()})


# --------------------------------------------------------------------- loops
LOOP_LAYERS = [
    ("custom-cell", lambda: rnnkit.RNN(MinimalTanhCell(4), return_sequences=True), (3, 6, D), "generic loop"),
    ("hard-sigmoid-lstm", lambda: rnnkit.LSTM(4, recurrent_activation="hard_sigmoid"), (3, 6, D), "hard_sigmoid"),
    ("stacked-cells", lambda: rnnkit.RNN([rnnkit.LSTMCell(4), rnnkit.GRUCell(3)]), (3, 6, D), "StackedRNNCells"),
    ("conv-lstm", lambda: rnnkit.ConvLSTM2D(2, 3, padding="same"), (3, 6, 4, 4, 2), "ConvLSTM"),
]


@pytest.mark.parametrize("make, shape, reason", [c[1:] for c in LOOP_LAYERS], ids=[c[0] for c in LOOP_LAYERS])
def test_loop_layers_refuse_a_dynamic_time_axis_and_export_unrolled(make, shape, reason, tmp_path):
    torch.manual_seed(4)
    layer = make()
    x = torch.randn(*shape)
    layer(x)
    batch, time = _dims()
    path = tmp_path / "loop.onnx"
    with pytest.raises(ValueError, match=rf"{layer.name} runs the .*{reason}.*time axis must be static"):
        export_onnx(layer, (x,), path, dynamic_shapes={"sequences": {0: batch, 1: time}})
    export_onnx(layer, (x,), path, dynamic_shapes={"sequences": {0: batch}})
    types = set(_op_types(path))
    assert not (RNN_NODES | LOOPS) & types  # unrolled for the example's 6 steps
    session = ort.InferenceSession(str(path))
    x2 = torch.randn(5, *shape[1:])
    np.testing.assert_allclose(session.run(None, {"sequences": x2.numpy()})[0], _outputs(layer(x2))[0], **TOL)


# --------------------------------------------------------------- the edges
def test_export_runs_in_eval_mode_and_restores_the_mode(tmp_path):
    layer = rnnkit.LSTM(3, dropout=0.5)
    x = torch.randn(2, 4, D)
    layer(x)
    layer.train()
    export_onnx(layer, (x,), tmp_path / "dropout.onnx")
    assert layer.training
    got = ort.InferenceSession(str(tmp_path / "dropout.onnx")).run(None, {"sequences": x.numpy()})[0]
    np.testing.assert_allclose(got, _outputs(layer.eval()(x))[0], **TOL)


def test_import_rnnkit_does_not_import_onnx():
    code = "import sys, rnnkit; print(sorted(m for m in ('onnx', 'onnxscript', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert rnnkit.export_onnx is export_onnx
