"""The public constructors: explicit signatures with Keras 3's arguments and
defaults, an ``Args:`` section in every built-in docstring, unknown arguments
answered with the close match, ``implementation=0`` from old configs, and the
package's single version string.

Keras 3 (torch backend) is the oracle for the argument lists and defaults.
"""

import importlib.metadata
import inspect
import pathlib
import pydoc
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cells.args import documented

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _keras_conv_lstm_cell(keras):
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell  # not exported by keras.layers

    return ConvLSTMCell


# rnnkit class -> how to get the Keras class from the keras module
PAIRS = {
    "LSTM": lambda k: k.layers.LSTM,
    "GRU": lambda k: k.layers.GRU,
    "SimpleRNN": lambda k: k.layers.SimpleRNN,
    "ConvLSTM1D": lambda k: k.layers.ConvLSTM1D,
    "ConvLSTM2D": lambda k: k.layers.ConvLSTM2D,
    "ConvLSTM3D": lambda k: k.layers.ConvLSTM3D,
    "LSTMCell": lambda k: k.layers.LSTMCell,
    "GRUCell": lambda k: k.layers.GRUCell,
    "SimpleRNNCell": lambda k: k.layers.SimpleRNNCell,
    "ConvLSTMCell": _keras_conv_lstm_cell,
    "StackedRNNCells": lambda k: k.layers.StackedRNNCells,
    "RNN": lambda k: k.layers.RNN,
    "Bidirectional": lambda k: k.layers.Bidirectional,
}
# the classes documented by rnnkit.cells.args (RNN and Bidirectional are written by hand)
DOCUMENTED = ["LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "CuDNNLSTM", "CuDNNGRU",
              "LSTMCell", "GRUCell", "SimpleRNNCell", "ConvLSTMCell", "StackedRNNCells"]
NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _init_params(cls) -> list[inspect.Parameter]:
    """The named parameters of ``cls.__init__`` (``self`` and ``*args``/``**kwargs`` left out)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p for p in params if p.kind in NAMED]


# ---------------------------------------------------------------- signatures
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_every_keras_argument_is_a_parameter_with_the_keras_default(keras, name):
    ours = {p.name: p for p in _init_params(getattr(rnnkit, name))}
    theirs = _init_params(PAIRS[name](keras))
    missing = [p.name for p in theirs if p.name not in ours]
    assert not missing, f"rnnkit.{name} lacks Keras arguments {missing}"
    for p in theirs:
        assert ours[p.name].default == p.default, (p.name, ours[p.name].default, p.default)
    # Keras's order first, so positional calls mean the same
    assert [p.name for p in _init_params(getattr(rnnkit, name))][: len(theirs)] == [p.name for p in theirs]


@pytest.mark.parametrize("name", [
    n for n in sorted(PAIRS) + ["CuDNNLSTM", "CuDNNGRU"]
])
def test_inspect_signature_of_the_class_is_its_init(name):
    cls = getattr(rnnkit, name)
    want = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert list(inspect.signature(cls).parameters.values()) == want


def test_builtin_layers_list_every_keras_argument_by_name():
    # the brief's example: not (units, use_fused, use_cudnn, **kwargs) any more
    params = inspect.signature(rnnkit.LSTM).parameters
    for arg in ("activation", "recurrent_activation", "unit_forget_bias", "activity_regularizer", "dropout",
                "seed", "return_sequences", "stateful", "unroll", "use_cudnn", "zero_output_for_mask",
                "time_major", "use_fused", "compile", "implementation", "name", "dtype", "trainable"):
        assert params[arg].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, arg
    assert params["use_cudnn"].default == "auto" and params["implementation"].default == 2


def test_a_subclass_gets_its_own_signature():
    class MyLSTM(rnnkit.LSTM):
        def __init__(self, units, extra=1, **kwargs):
            super().__init__(units, **kwargs)

    assert list(inspect.signature(MyLSTM).parameters) == ["units", "extra", "kwargs"]
    assert list(inspect.signature(rnnkit.LSTM).parameters)[:2] == ["units", "activation"]
    layer = MyLSTM(3, go_backwards=True)
    assert layer.go_backwards is True
    # an instance answers with its call signature, not the constructor's
    assert "units" not in inspect.signature(layer).parameters


# ------------------------------------------------------------------ docstrings
def _args_section(doc: str) -> str:
    assert "\nArgs:\n" in doc
    return doc.split("\nArgs:\n", 1)[1]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_help_has_an_args_section_naming_every_parameter(name):
    cls = getattr(rnnkit, name)
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    section = _args_section(inspect.getdoc(cls))
    described = re.findall(r"^    (\*\*\w+|\w+): \S", section, flags=re.M)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    want = [f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name for p in params]
    assert described == want
    assert "Args:" in text and all(f"    {w}: " in text for w in want)
    signature_line = text.split("\n")[3]  # after the title and the class line: the constructor's signature
    assert signature_line.startswith(f" |  {name}(") and "*args" not in signature_line


@pytest.mark.parametrize("name,gates,equation", [
    ("LSTMCell", "i f c o", "c_t = f * c_{t-1} + i * activation(z_c)"),
    ("GRUCell", "z r h", "h_t = z * h_{t-1} + (1 - z) * hh"),
    ("SimpleRNNCell", None, "h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)"),
    ("ConvLSTMCell", "i f c o", "c_t = f * c_{t-1} + i * activation(z_c)"),
])
def test_cell_docstrings_carry_the_equations_and_gate_order(name, gates, equation):
    doc = inspect.getdoc(getattr(rnnkit, name))
    assert equation in doc
    if gates:
        assert f"Gate order ``{gates}``" in doc


def test_an_undocumented_argument_is_an_error_at_class_creation():
    with pytest.raises(TypeError, match=r"Frob: argument 'frobnicate' has no description"):
        @documented()
        class Frob(rnnkit.Layer):
            def __init__(self, units, frobnicate=True, **kwargs):
                super().__init__(**kwargs)

    @documented(frobnicate="Whether to frobnicate.")
    class Frob2(rnnkit.Layer):
        """A test layer."""

        def __init__(self, units, frobnicate=True, **kwargs):
            super().__init__(**kwargs)

    section = _args_section(Frob2.__doc__)
    assert "    frobnicate: Whether to frobnicate." in section and "    units: Positive int" in section


# ------------------------------------------------------- unknown arguments
@pytest.mark.parametrize("make,typo,suggestion", [
    (lambda **kw: rnnkit.LSTM(4, **kw), "return_sequence", "return_sequences"),
    (lambda **kw: rnnkit.GRU(4, **kw), "reset_afer", "reset_after"),
    (lambda **kw: rnnkit.SimpleRNN(4, **kw), "go_backward", "go_backwards"),
    (lambda **kw: rnnkit.ConvLSTM2D(4, 3, **kw), "dilation", "dilation_rate"),
    (lambda **kw: rnnkit.ConvLSTM2D(4, 3, **kw), "use_cudnn", "use_fused"),  # no cuDNN alias: no fused kernel
    (lambda **kw: rnnkit.LSTMCell(4, **kw), "recurent_dropout", "recurrent_dropout"),
    (lambda **kw: rnnkit.ConvLSTMCell(2, 4, 3, **kw), "paddding", "padding"),
    (lambda **kw: rnnkit.CuDNNLSTM(4, **kw), "return_states", "return_state"),
    (lambda **kw: rnnkit.RNN(rnnkit.LSTMCell(4), **kw), "time_majr", "time_major"),
    (lambda **kw: rnnkit.StackedRNNCells([rnnkit.LSTMCell(4)], **kw), "trainabel", "trainable"),
    (lambda **kw: rnnkit.Layer(**kw), "nmae", "name"),
])
def test_unknown_argument_is_a_type_error_with_the_close_match(make, typo, suggestion):
    with pytest.raises(TypeError) as info:
        make(**{typo: True})
    message = str(info.value)
    assert re.search(rf"^\w+: unexpected keyword argument\(s\) \['{typo}'\]", message), message
    assert f"did you mean '{suggestion}' for '{typo}'?" in message


def test_the_brief_example_names_the_layer():
    with pytest.raises(TypeError, match=r"^LSTM: .*did you mean 'return_sequences'"):
        rnnkit.LSTM(4, return_sequence=True)


@pytest.mark.parametrize("make,shape", [
    (lambda **kw: rnnkit.LSTM(3, **kw), (4, 3, 4)),  # batch 4 = len(x); timesteps 3
    (lambda **kw: rnnkit.ConvLSTM1D(3, 2, **kw), (4, 3, 5, 4)),
    (lambda **kw: rnnkit.CuDNNGRU(3, **kw), (4, 3, 4)),
    (lambda **kw: rnnkit.GRUCell(3, **kw), (4, 4)),
])
def test_the_other_layer_arguments_pass_through_kwargs(make, shape):
    layer = make(input_shape=shape[1:], batch_size=shape[0], activity_regularizer="l2", name="eager")
    assert layer.built and layer.name == "eager"
    assert layer.get_weights()[0].shape[-2] == shape[-1]  # kernel (..., input channels, gates * units)
    assert layer.activity_regularizer is not None


def test_no_close_match_no_suggestion():
    with pytest.raises(TypeError) as info:
        rnnkit.GRU(4, bogus_arg=1)
    assert "did you mean" not in str(info.value) and "GRU: unexpected keyword argument(s) ['bogus_arg']" in str(
        info.value)


def test_generic_custom_layers_get_suggestions_from_their_own_and_inherited_names():
    class Dense(rnnkit.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

    with pytest.raises(TypeError, match=r"Dense: .*\['unitz'\]; did you mean 'units' for 'unitz'\?"):
        Dense(3, unitz=4)
    with pytest.raises(TypeError, match=r"did you mean 'trainable' for 'trainble'\?"):
        Dense(3, trainble=False)

    class MyLSTM(rnnkit.LSTM):
        def __init__(self, units, extra=1, **kwargs):
            super().__init__(units, **kwargs)

    # MyLSTM forwards **kwargs: LSTM's names are accepted, and suggested
    with pytest.raises(TypeError, match=r"MyLSTM: .*did you mean 'unit_forget_bias' for 'unit_forget_bia'\?"):
        MyLSTM(3, unit_forget_bia=False)
    with pytest.raises(TypeError, match=r"did you mean 'extra' for 'extr'\?"):
        MyLSTM(3, extr=2)


# ------------------------------------------------------- implementation=0
LEGACY = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "SimpleRNN": rnnkit.SimpleRNN}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_implementation_zero_is_accepted_and_round_trips(name):
    layer = LEGACY[name](3, implementation=0, dropout=0.5, seed=2)
    assert layer.implementation == 0 and layer.cell.implementation == 0  # kept as given, as Keras 3 keeps it
    config = layer.get_config()
    assert config["implementation"] == 0
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    cell = getattr(rnnkit, name + "Cell")(3, implementation=0)
    assert type(cell).from_config(cell.get_config()).implementation == 0
    with pytest.raises(ValueError, match=r"implementation must be 1 or 2 \(0 runs as 2\), got 3"):
        getattr(rnnkit, name + "Cell")(3, implementation=3)


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_implementation_zero_runs_as_two(name):
    """Same seed: implementation 0 draws the one shared input mask of 2, not the per-gate masks of 1."""
    x = np.random.RandomState(0).randn(2, 5, 4).astype("float32")
    outs = {}
    for impl in (0, 1, 2):
        torch.manual_seed(0)
        layer = LEGACY[name](3, implementation=impl, dropout=0.5, seed=7, return_sequences=True)
        layer.build(x.shape)
        layer.set_weights([np.linspace(-1, 1, w.size).reshape(w.shape) for w in layer.get_weights()])
        outs[impl] = layer(x, training=True).detach().numpy()
    np.testing.assert_array_equal(outs[0], outs[2])
    if name != "SimpleRNN":  # one gate: implementation 1 draws the same single mask
        assert not np.allclose(outs[0], outs[1])


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_implementation_zero_matches_keras(keras, name):
    x = (np.arange(2 * 5 * 4, dtype="float32").reshape(2, 5, 4) - 20.0) * 0.05
    kw = dict(kernel_initializer="ones", recurrent_initializer="zeros", bias_initializer="zeros",
              return_sequences=True)
    if name == "SimpleRNN":  # Keras 3's SimpleRNN refuses `implementation`: compare with its only variant
        k_layer = keras.layers.SimpleRNN(3, **kw)
    else:
        k_layer = getattr(keras.layers, name)(3, implementation=0, **kw)
        assert k_layer.cell.implementation == 0
    ours = LEGACY[name](3, implementation=0, **kw)
    ours.build(x.shape)
    k_layer.build(x.shape)
    k_layer.set_weights([np.linspace(-0.5, 0.5, w.size).reshape(w.shape) for w in k_layer.get_weights()])
    ours.set_weights(k_layer.get_weights())
    want = k_layer(x)
    want = want.detach().cpu().numpy() if hasattr(want, "detach") else np.asarray(want)
    np.testing.assert_allclose(ours(x).detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_legacy_keras_config_with_implementation_zero_loads():
    """Keras 3's own test: a GRU config with the legacy ``implementation=0`` added still loads."""
    config = rnnkit.GRU(3, name="legacy").get_config()
    config["implementation"] = 0
    layer = rnnkit.GRU.from_config(config)
    assert layer.implementation == 0 and layer.name == "legacy"
    out = layer(np.arange(72, dtype="float32").reshape(3, 6, 4))
    assert tuple(out.shape) == (3, 3) and torch.isfinite(out).all()


# ------------------------------------------------------------------ version
def test_version_is_single_sourced():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rnnkit.__version__"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["rnnkit"]
    assert (ROOT / "rnnkit" / "py.typed").is_file()
    # a literal, so setuptools reads it without importing rnnkit (and torch)
    init = (ROOT / "rnnkit" / "__init__.py").read_text()
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+\S*"$', init, flags=re.M)
    assert rnnkit.__version__ == importlib.metadata.version("rnnkit")
