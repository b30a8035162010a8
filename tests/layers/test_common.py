"""What the non-recurrent layers share: documented signatures, public names, the mask and training helpers."""

import inspect
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers.common import documented_layer, input_mask, is_training, mixes_samples, numeric_input

NEW = ["Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Conv1D", "Dense", "Dot", "Dropout",
       "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum",
       "Multiply", "Permute", "RepeatVector", "Reshape", "SpatialDropout1D", "Subtract", "TimeDistributed"]


@pytest.mark.parametrize("name", NEW)
def test_public_documented_and_signed(name):
    cls = getattr(rnnkit, name)
    assert cls is getattr(rnnkit.layers, name) and name in rnnkit.__all__ and name in rnnkit.layers.__all__
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert list(inspect.signature(cls).parameters.values()) == params  # help() shows the real arguments
    section = inspect.getdoc(cls).split("\nArgs:\n", 1)[1]
    described = re.findall(r"^    (\*\*\w+|\w+): \S", section, flags=re.M)
    assert described == [f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name for p in params]
    assert "name" in [p.name for p in params] and params[-1].kind is inspect.Parameter.VAR_KEYWORD


def test_documented_layer_refuses_an_undescribed_argument():
    with pytest.raises(TypeError, match="'mystery' has no description"):
        @documented_layer()
        class Odd(rnnkit.Layer):
            def __init__(self, mystery=1, **kwargs):
                super().__init__(**kwargs)


def test_layer_kwargs_reach_the_base_layer():
    d = rnnkit.Dense(2, batch_input_shape=(None, 3))
    assert d.built and d.kernel.shape == (3, 2)
    with pytest.raises(TypeError, match="did you mean 'input_shape'"):
        rnnkit.Dropout(0.1, input_shap=(3,))


def test_input_mask_explicit_first_then_attribute():
    x = torch.zeros(2, 3)
    assert input_mask(x, None) is None
    x._keras_mask = torch.ones(2, dtype=torch.bool)
    explicit = torch.zeros(2, dtype=torch.bool)
    assert input_mask(x, explicit) is explicit and input_mask(x, None) is x._keras_mask
    assert input_mask([x, torch.zeros(2, 3)], None)[1] is None
    assert input_mask([torch.zeros(1), torch.zeros(1)], None) is None


def test_is_training_and_mixes_samples():
    d = rnnkit.Dropout(0.5)
    assert is_training(d, None) and not is_training(d.eval(), None) and is_training(d, True)
    bn = rnnkit.BatchNormalization()
    assert mixes_samples(bn, None) and not mixes_samples(bn, False) and mixes_samples(bn.eval(), True)
    assert not mixes_samples(rnnkit.BatchNormalization(trainable=False), True)  # runs in inference, as Keras
    assert mixes_samples(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)), None)
    assert mixes_samples(rnnkit.LSTM(2, stateful=True), None)
    assert not mixes_samples(rnnkit.Dense(2), True) and not mixes_samples(torch.nn.Linear(2, 2), None)


def test_numeric_input_follows_the_dtype_rule():
    d = rnnkit.Dense(2, dtype="float64")
    assert numeric_input(d, np.ones((2, 3), "float32")).dtype == torch.float64
    assert numeric_input(d, np.ones((2, 3), "int64")).dtype == torch.float64
    with pytest.raises(TypeError, match=f"{d.name}: inputs must hold real numbers"):
        numeric_input(d, np.ones((2, 3), bool))
