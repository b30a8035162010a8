"""``rnnkit.io.torch_nn``: exact conversion to and from ``torch.nn.LSTM`` / ``GRU`` / ``RNN``.

Both directions, every supported structure (layers, directions, layouts,
bias): the same outputs, final states and input gradients in float64, on the
fused path and on the generic loop (which never sees torch's layout, so a
pair of wrong but mutually inverse layout maps cannot pass); Keras 3 as an
oracle for the converted weights; and each refusal's reason.
"""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.io import from_torch, to_torch

B, T, D, H = 3, 5, 4, 6
TIGHT = {"rtol": 1e-12, "atol": 1e-12}
KINDS = {
    "lstm": (torch.nn.LSTM, {}),
    "gru": (torch.nn.GRU, {}),
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
}
STRUCTURES = [(1, False), (2, False), (1, True), (3, True)]  # (num_layers, bidirectional)


def _module(kind, seed=0, **kwargs):
    cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    return cls(D, H, dtype=torch.float64, **extra, **kwargs)


def _x(batch_first, seed=1, features=D):
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, features) if batch_first else (T, B, features)
    return torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)


def _random_weights(layer, seed=2):
    rng = np.random.RandomState(seed)
    return [0.5 * rng.randn(*w.shape) for w in layer.get_weights()]


def _set_fused(layer, value):
    for m in layer.modules():
        if isinstance(m, rnnkit.RNN):
            m.use_fused = value


def _states_as_torch(states, lstm, num_layers, bidirectional):
    """rnnkit's returned states as torch's ``h_n`` (and ``c_n``), the module docstring's mapping."""
    if bidirectional:  # [h_f, (c_f,) h_b, (c_b)], one layer
        per = [states[: len(states) // 2], states[len(states) // 2:]]
    elif num_layers > 1:  # one entry per layer: [h, c] (LSTM) or [h]
        per = states
    else:
        per = [states]
    h_n = torch.stack([p[0] for p in per])
    return (h_n, torch.stack([p[1] for p in per])) if lstm else h_n


def _loss(outputs, seed=3):
    """A sum of the outputs and states with fixed random weights (so every entry counts differently)."""
    g = torch.Generator().manual_seed(seed)
    flat = []
    for o in outputs:
        flat += list(o) if isinstance(o, (list, tuple)) else [o]
    return sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in flat)


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


def _assert_same(torch_module, layer, kind, num_layers, bidirectional, batch_first, initial=None):
    lstm = kind == "lstm"
    with_states = not (bidirectional and num_layers > 1)
    x = _x(batch_first)
    y_t, hn_t = torch_module(x, initial[0] if initial else None)
    got = layer(x, initial_state=initial[1]) if initial else layer(x)
    y = got[0] if with_states else got
    torch.testing.assert_close(y, y_t, **TIGHT)
    want_out: list = [y_t]
    got_out: list = [y]
    if with_states:
        hn = _states_as_torch(got[1:], lstm, num_layers, bidirectional)
        for a, b in zip(hn if lstm else [hn], hn_t if lstm else [hn_t]):
            torch.testing.assert_close(a, b, **TIGHT)
        want_out += list(hn_t) if lstm else [hn_t]
        got_out += list(hn) if lstm else [hn]
    torch.testing.assert_close(_grad(_loss(got_out), x), _grad(_loss(want_out), x), **TIGHT)


def _initial(kind, num_layers, bidirectional, seed=4):
    """torch's ``(h_0[, c_0])`` and the same states as rnnkit's ``initial_state`` list."""
    g = torch.Generator().manual_seed(seed)
    n = num_layers * (2 if bidirectional else 1)
    h0 = torch.randn(n, B, H, generator=g, dtype=torch.float64)
    if kind != "lstm":
        return h0, list(h0)
    c0 = torch.randn(n, B, H, generator=g, dtype=torch.float64)
    return (h0, c0), [s for k in range(n) for s in (h0[k], c0[k])]


# ---------------------------------------------------------------- from torch
@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("num_layers, bidirectional", STRUCTURES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_torch_same_outputs_states_and_gradients(kind, num_layers, bidirectional, batch_first, bias, fused):
    module = _module(kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    layer = from_torch(module, return_state=not (bidirectional and num_layers > 1))
    _set_fused(layer, fused)
    assert {p.dtype for p in layer.parameters()} == {torch.float64}
    for sub in layer.modules():
        if isinstance(sub, rnnkit.RNN):
            assert sub.return_sequences and sub.time_major is (not batch_first)
    _assert_same(module, layer, kind, num_layers, bidirectional, batch_first)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (1, True)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_torch_initial_states_map_to_h0_c0(kind, num_layers, bidirectional):
    module = _module(kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    layer = from_torch(module, return_state=True)
    _assert_same(module, layer, kind, num_layers, bidirectional, True, _initial(kind, num_layers, bidirectional))


@pytest.mark.parametrize("num_layers, bidirectional, kind_of_layer", [
    (1, False, "LSTM"), (2, False, "RNN"), (1, True, "Bidirectional"), (2, True, "Sequential"),
])
def test_from_torch_structures(num_layers, bidirectional, kind_of_layer):
    layer = from_torch(_module("lstm", num_layers=num_layers, bidirectional=bidirectional))
    assert type(layer).__name__ == kind_of_layer
    if kind_of_layer == "RNN":
        assert isinstance(layer.cell, rnnkit.StackedRNNCells) and len(layer.cell.cells) == 2
    if kind_of_layer == "Sequential":
        assert [type(m).__name__ for m in layer] == ["Bidirectional", "Bidirectional"]
        assert all(m.merge_mode == "concat" for m in layer)


def test_from_torch_without_states_returns_the_sequence_only():
    module = _module("gru", batch_first=True)
    x = _x(True)
    out = from_torch(module)(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, module(x)[0], **TIGHT)


def test_from_torch_keeps_train_mode_dtype_and_relu():
    module = _module("rnn_relu").eval()
    layer = from_torch(module)
    assert not layer.training and layer.activation is rnnkit.activations.relu
    module32 = torch.nn.GRU(D, H)
    assert from_torch(module32).dtype == torch.float32


@pytest.mark.parametrize("kind, layer_cls", [("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "SimpleRNN")])
def test_classmethods_build_an_instance_of_their_class(kind, layer_cls):
    cls = getattr(rnnkit, layer_cls)
    module = _module(kind, batch_first=True)
    layer = cls.from_torch(module, return_state=True)
    assert type(layer) is cls
    _assert_same(module, layer, kind, 1, False, True)
    back = layer.to_torch()
    assert type(back) is type(module)
    x = _x(True)
    torch.testing.assert_close(back(x)[0], module(x)[0], **TIGHT)


@pytest.mark.parametrize("kind, keras_name", [("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "SimpleRNN")])
def test_converted_weights_give_keras3_the_torch_numbers(keras, kind, keras_name):
    """The Keras layout itself, checked by Keras: rnnkit's weights in a Keras 3 layer compute torch's output."""
    module = _module(kind, batch_first=True)
    layer = from_torch(module)
    klayer = getattr(keras.layers, keras_name)(H, return_sequences=True, dtype="float64")
    klayer.build((None, T, D))
    klayer.set_weights(layer.get_weights())
    x = _x(True)
    want = module(x)[0].detach().numpy()
    np.testing.assert_allclose(np.asarray(klayer(x.detach()).detach().cpu()), want, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ to torch
def _layer(kind, num_layers, bidirectional, time_major, use_bias, return_state=True):
    """An rnnkit layer of the structure ``from_torch`` would give, with random weights."""
    cls, extra = KINDS[kind]
    name = {"lstm": "LSTM", "gru": "GRU"}.get(kind, "SimpleRNN")
    args = dict(use_bias=use_bias, dtype="float64", **({"activation": extra["nonlinearity"]} if extra else {}))
    common = dict(return_sequences=True, time_major=time_major)
    if not bidirectional and num_layers == 1:
        layer = getattr(rnnkit, name)(H, return_state=return_state, **args, **common)
    elif not bidirectional:
        cells = [getattr(rnnkit, name + "Cell")(H, **args) for _ in range(num_layers)]
        layer = rnnkit.RNN(cells, return_state=return_state, **common)
    elif num_layers == 1:
        layer = rnnkit.Bidirectional(getattr(rnnkit, name)(H, return_state=return_state, **args, **common))
    else:
        layer = rnnkit.Sequential([rnnkit.Bidirectional(getattr(rnnkit, name)(H, **args, **common))
                                   for _ in range(num_layers)])
    layer(_x(not time_major))  # builds
    for k, part in enumerate(layer if isinstance(layer, rnnkit.Sequential) else [layer]):
        part.set_weights(_random_weights(part, seed=k))
    return layer


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("num_layers, bidirectional", STRUCTURES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_to_torch_same_outputs_states_and_gradients(kind, num_layers, bidirectional, time_major, use_bias, fused):
    layer = _layer(kind, num_layers, bidirectional, time_major, use_bias)
    _set_fused(layer, fused)
    module = to_torch(layer)
    cls, extra = KINDS[kind]
    assert type(module) is cls and module.batch_first is (not time_major)
    assert (module.num_layers, module.bidirectional, module.bias) == (num_layers, bidirectional, use_bias)
    assert module.weight_ih_l0.dtype == torch.float64
    if extra:
        assert module.nonlinearity == extra["nonlinearity"]
    _assert_same(module, layer, kind, num_layers, bidirectional, not time_major)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_is_exact(kind, num_layers, bidirectional):
    layer = _layer(kind, num_layers, bidirectional, False, True, return_state=False)
    back = from_torch(to_torch(layer))
    parts = list(zip(layer, back)) if isinstance(layer, rnnkit.Sequential) else [(layer, back)]
    for a, b in parts:
        for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(u, v)
    module = _module(kind, num_layers=num_layers, bidirectional=bidirectional)
    again = to_torch(from_torch(module))
    x = _x(False)
    torch.testing.assert_close(again(x)[0], module(x)[0], **TIGHT)


@pytest.mark.parametrize("kind", list(KINDS))
def test_to_torch_of_a_last_output_layer(kind):
    """``return_sequences=False``: the layer's output is ``output[:, -1]``, or ``cat(h_n[-2], h_n[-1])``."""
    name = {"lstm": "LSTM", "gru": "GRU"}.get(kind, "SimpleRNN")
    args = {"activation": KINDS[kind][1]["nonlinearity"]} if KINDS[kind][1] else {}
    x = _x(True)
    uni = getattr(rnnkit, name)(H, dtype="float64", **args)
    uni(x)
    uni.set_weights(_random_weights(uni))
    torch.testing.assert_close(uni(x), to_torch(uni)(x)[0][:, -1], **TIGHT)
    bi = rnnkit.Bidirectional(getattr(rnnkit, name)(H, dtype="float64", **args))
    bi(x)
    bi.set_weights(_random_weights(bi))
    _, hn = to_torch(bi)(x)
    hn = hn[0] if kind == "lstm" else hn
    torch.testing.assert_close(bi(x), torch.cat([hn[-2], hn[-1]], -1), **TIGHT)


def test_to_torch_of_cudnn_layers_and_unidirectional_sequential():
    x = _x(True)
    cudnn = rnnkit.CuDNNGRU(H, return_sequences=True, dtype="float64")
    cudnn(x)
    cudnn.set_weights(_random_weights(cudnn))
    torch.testing.assert_close(cudnn.to_torch()(x)[0], cudnn(x), **TIGHT)
    seq = rnnkit.Sequential([rnnkit.LSTM(H, return_sequences=True, dtype="float64"),
                             rnnkit.RNN([rnnkit.LSTMCell(H, dtype="float64")], return_sequences=True)])
    seq(x)
    module = to_torch(seq)
    assert module.num_layers == 2 and not module.bidirectional
    torch.testing.assert_close(module(x)[0], seq(x), **TIGHT)


def test_mixed_bidirectional_with_an_explicit_backward_layer_of_the_same_family():
    fw = rnnkit.LSTM(H, return_sequences=True, dtype="float64")
    bw = rnnkit.LSTM(H, return_sequences=True, go_backwards=True, dtype="float64", kernel_initializer="ones")
    layer = rnnkit.Bidirectional(fw, backward_layer=bw)
    x = _x(True)
    layer(x)
    layer.set_weights(_random_weights(layer))
    torch.testing.assert_close(to_torch(layer)(x)[0], layer(x), **TIGHT)


# ------------------------------------------------------------------ refusals
def test_from_torch_refuses_projections():
    with pytest.raises(ValueError, match=r"proj_size=3.*no Keras cell"):
        from_torch(torch.nn.LSTM(D, H, proj_size=3))


def test_from_torch_refuses_dropout_between_layers_unless_ignored():
    module = _module("lstm", num_layers=2, dropout=0.3, batch_first=True)
    with pytest.raises(ValueError, match=r"dropout=0.3.*between its 2 layers.*ignore_dropout=True"):
        from_torch(module)
    layer = from_torch(module, ignore_dropout=True, return_state=True)
    module.eval()
    layer.eval()
    _assert_same(module, layer, "lstm", 2, False, True)
    from_torch(_module("gru", num_layers=1, dropout=0.0))  # one layer: nothing to drop between


def test_from_torch_refuses_states_of_a_deep_bidirectional_module():
    with pytest.raises(ValueError, match=r"num_layers=2.*return_state=True is not available"):
        from_torch(_module("gru", num_layers=2, bidirectional=True), return_state=True)


def test_from_torch_refuses_other_modules_and_the_wrong_family():
    with pytest.raises(TypeError, match="expected a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, got Linear"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="LSTM.from_torch: expected a torch.nn.LSTM, got GRU"):
        rnnkit.LSTM.from_torch(_module("gru"))
    with pytest.raises(TypeError, match="SimpleRNN.from_torch: expected a torch.nn.RNN, got LSTM"):
        rnnkit.SimpleRNN.from_torch(_module("lstm"))
    with pytest.raises(TypeError, match=r"CuDNNLSTM.from_torch: only rnnkit.LSTM, rnnkit.GRU, rnnkit.SimpleRNN"):
        rnnkit.CuDNNLSTM.from_torch(_module("lstm"))


def _built(layer, features=D):
    layer(_x(not getattr(layer, "time_major", False), features=features))
    return layer


class _MyCell(rnnkit.LSTMCell):
    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training=training)


REFUSALS = {
    "relu_lstm": (lambda: _built(rnnkit.LSTM(H, activation="relu")), r"torch.nn.LSTM cannot.*activation 'relu'"),
    "hard_sigmoid": (lambda: _built(rnnkit.GRU(H, recurrent_activation="hard_sigmoid")),
                     r"torch.nn.GRU cannot.*recurrent_activation 'hard_sigmoid' is not 'sigmoid'"),
    "reset_before": (lambda: _built(rnnkit.GRU(H, reset_after=False)), r"torch.nn.GRU cannot.*reset_after=False"),
    "sigmoid_rnn": (lambda: _built(rnnkit.SimpleRNN(H, activation="sigmoid")),
                    r"torch.nn.RNN cannot.*'sigmoid' is neither 'tanh' nor 'relu'"),
    "dropout": (lambda: _built(rnnkit.LSTM(H, dropout=0.25)), r"dropout=0.25 .*ignore_dropout=True"),
    "recurrent_dropout": (lambda: _built(rnnkit.GRU(H, recurrent_dropout=0.5)), r"recurrent_dropout=0.5"),
    "go_backwards": (lambda: _built(rnnkit.LSTM(H, go_backwards=True)), r"go_backwards=True.*Bidirectional"),
    "stateful": (lambda: _built(rnnkit.GRU(H, stateful=True)), r"stateful=True.*h_0"),
    "unbuilt": (lambda: rnnkit.LSTM(H), r"not built"),
    "mixed_bias": (lambda: _built(rnnkit.RNN([rnnkit.LSTMCell(H), rnnkit.LSTMCell(H, use_bias=False)])),
                   r"one bias setting \(use_bias\).*False, True"),
    "mixed_units": (lambda: _built(rnnkit.RNN([rnnkit.GRUCell(H), rnnkit.GRUCell(H + 1)])),
                    r"one hidden size \(units\)"),
    "mixed_family": (lambda: _built(rnnkit.RNN([rnnkit.LSTMCell(H), rnnkit.GRUCell(H)])), r"one cell family"),
    "mixed_nonlinearity": (lambda: _built(rnnkit.RNN([rnnkit.SimpleRNNCell(H), rnnkit.SimpleRNNCell(H, "relu")])),
                           r"one nonlinearity.*'relu', 'tanh'"),
    "merge_sum": (lambda: _built(rnnkit.Bidirectional(rnnkit.LSTM(H), merge_mode="sum")), r"merge_mode='sum'"),
    "bidirectional_stack": (lambda: _built(rnnkit.Bidirectional(rnnkit.RNN([rnnkit.GRUCell(H)]))),
                            r"stacked cells.*Sequential of Bidirectional"),
    "mixed_directions": (lambda: _built(rnnkit.Sequential([rnnkit.LSTM(H, return_sequences=True),
                                                           rnnkit.Bidirectional(rnnkit.LSTM(H))])),
                         r"number of directions"),
    "last_output_inside": (lambda: rnnkit.Sequential([_built(rnnkit.GRU(H)), _built(rnnkit.GRU(H), features=H)]),
                           r"every layer but the last.*return_sequences=True"),
    "mixed_layout": (lambda: _built(rnnkit.Sequential([rnnkit.GRU(H, return_sequences=True),
                                                       rnnkit.GRU(H, time_major=True)])),
                     r"one layout \(time_major\)"),
    "mixed_halves": (lambda: _built(rnnkit.Bidirectional(
        rnnkit.LSTM(H), backward_layer=rnnkit.GRU(H, go_backwards=True))), r"one cell family"),
    "custom_cell": (lambda: _built(rnnkit.RNN(_MyCell(H))), r"_MyCell has no torch.nn twin"),
    "conv_lstm": (lambda: _built_conv(), r"ConvLSTMCell has no torch.nn twin"),
}


def _built_conv():
    layer = rnnkit.ConvLSTM1D(2, 3)
    layer(torch.zeros(B, T, 7, 2))
    return layer


@pytest.mark.parametrize("case", list(REFUSALS))
def test_to_torch_refuses_what_is_not_exact(case):
    build, match = REFUSALS[case]
    layer = build()
    with pytest.raises(ValueError, match=match) as info:
        to_torch(layer)
    assert str(info.value).startswith("to_torch: ")


def test_mixed_nonlinearity_would_build_torch_rnn_modules_otherwise():
    layer = _built(rnnkit.RNN([rnnkit.SimpleRNNCell(H, "relu", dtype="float64")], return_sequences=True))
    assert to_torch(layer).nonlinearity == "relu"


def test_to_torch_ignore_dropout_converts_for_inference():
    layer = _built(rnnkit.LSTM(H, dropout=0.25, recurrent_dropout=0.5, return_sequences=True, dtype="float64"))
    module = to_torch(layer, ignore_dropout=True)
    layer.eval()
    x = _x(True)
    torch.testing.assert_close(module(x)[0], layer(x), **TIGHT)


def test_to_torch_refuses_non_recurrent_layers():
    with pytest.raises(TypeError, match="expected an rnnkit recurrent layer.*got Linear"):
        to_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="no layers"):
        to_torch(rnnkit.Sequential([]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", list(KINDS))
def test_conversions_keep_the_device(kind):
    module = _module(kind, num_layers=2, bidirectional=True, batch_first=True).cuda()
    layer = from_torch(module)
    assert {p.device.type for p in layer.parameters()} == {"cuda"}
    x = _x(True).detach().cuda()
    torch.testing.assert_close(layer(x), module(x)[0], rtol=1e-10, atol=1e-10)
    back = to_torch(layer)
    assert back.weight_ih_l0.device.type == "cuda"
    torch.testing.assert_close(back(x)[0], module(x)[0], rtol=1e-10, atol=1e-10)
