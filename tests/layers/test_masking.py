"""``Masking`` with Keras 3's ``keras.layers.Masking`` (torch backend) as the oracle."""

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

B, T, F = 3, 5, 4


def padded_inputs(mask_value=0.0):
    x = np.random.RandomState(0).randn(B, T, F).astype("float32")
    x[1, 3:] = mask_value
    x[2, 1] = mask_value  # a hole
    x[0, 2, 1] = mask_value  # one feature alone does not mask the step
    return x


@pytest.mark.parametrize("mask_value", [0.0, -1.0, 2])
def test_matches_keras(keras, mask_value):
    x = padded_inputs(mask_value)
    k, r = keras.layers.Masking(mask_value), rnnkit.Masking(mask_value)
    k_out = k(torch.tensor(x))
    np.testing.assert_array_equal(to_numpy(r(x)), to_numpy(k_out))
    np.testing.assert_array_equal(to_numpy(r.compute_mask(x)), to_numpy(k.compute_mask(torch.tensor(x))))
    expected = np.ones((B, T), bool)
    expected[1, 3:] = expected[2, 1] = False
    np.testing.assert_array_equal(to_numpy(r.compute_mask(x)), expected)
    np.testing.assert_array_equal(to_numpy(r(x)._keras_mask), expected)  # convenience attribute


def test_masked_steps_are_zero_with_nan_on_an_unmasked_step_of_another_row():
    x = padded_inputs()
    x[0, 0, 2] = np.nan  # a NaN feature keeps its step (NaN != mask_value)
    out = to_numpy(rnnkit.Masking()(x))
    assert np.all(out[1, 3:] == 0) and np.all(out[2, 1] == 0)
    np.testing.assert_array_equal(out[0], x[0])  # the NaN stays where it was, and only there
    np.testing.assert_array_equal(out[1, :3], x[1, :3])
    assert np.isnan(out).sum() == 1
    nan_value = rnnkit.Masking(float("nan"))
    assert to_numpy(nan_value.compute_mask(x)).all()  # NaN never matches, as in Keras


def test_inf_mask_value_gives_zeros_not_nan():
    """``torch.where`` selects: a masked step of ``inf`` becomes 0 (``inf * 0`` would be NaN)."""
    x = padded_inputs(np.inf)
    out = to_numpy(rnnkit.Masking(np.inf)(x))
    assert np.all(out[1, 3:] == 0) and np.all(out[2, 1] == 0) and not np.isnan(out).any()
    np.testing.assert_array_equal(out[0], x[0])  # an unmasked step keeps its lone inf


def test_incoming_mask_is_replaced_and_gradient_flows():
    x = torch.tensor(padded_inputs(), requires_grad=True)
    r = rnnkit.Masking()
    assert r.supports_masking
    mask = r.compute_mask(x, mask=torch.zeros(B, T, dtype=torch.bool))
    assert to_numpy(mask).sum() == B * T - 3
    r(x).sum().backward()
    assert np.all(to_numpy(x.grad)[1, 3:] == 0) and np.all(to_numpy(x.grad)[0] == 1)


class Clone(torch.nn.Module):
    """A plain torch module whose output carries no ``_keras_mask`` attribute."""

    def forward(self, x):
        return x.clone()


def test_feeds_a_recurrent_layer_like_an_explicit_mask():
    """Sequential hands the mask on explicitly: a module that drops the tensor attribute cannot lose it."""
    x = padded_inputs()
    mask = rnnkit.Masking().compute_mask(x)
    lstm = rnnkit.LSTM(3, return_sequences=True)
    got = to_numpy(rnnkit.Sequential([rnnkit.Masking(), Clone(), lstm])(x))
    zeroed = torch.tensor(to_numpy(rnnkit.Masking()(x)))
    assert getattr(Clone()(zeroed), "_keras_mask", None) is None
    np.testing.assert_allclose(got, to_numpy(lstm(zeroed, mask=mask)), rtol=1e-6)
    unmasked = to_numpy(lstm(zeroed))
    assert np.abs(got - unmasked).max() > 1e-3  # the mask mattered


def test_config_round_trip_and_keras_config(keras):
    r = rnnkit.Masking(-1.0, name="pad")
    clone = rnnkit.Masking.from_config(r.get_config())
    assert (clone.name, clone.mask_value) == ("pad", -1.0)
    assert rnnkit.Masking.from_config(keras.layers.Masking(3.0).get_config()).mask_value == 3.0
    assert r.compute_output_shape((None, T, F)) == (None, T, F)


def test_errors_name_the_layer():
    with pytest.raises(TypeError, match="pad: mask_value must be a number"):
        rnnkit.Masking("zero", name="pad")
    with pytest.raises(ValueError, match="pad: expected inputs of rank 2 or more"):
        rnnkit.Masking(name="pad")(np.zeros(3, "float32"))
    with pytest.raises(TypeError, match="unexpected keyword"):
        rnnkit.Masking(mask_val=1.0)
