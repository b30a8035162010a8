"""``TimeDistributed`` with Keras 3's ``keras.layers.TimeDistributed`` as the oracle."""

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit
from rnnkit.layers.common import mixes_samples

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(6)
X = RNG.standard_normal((3, 6, 4)).astype("float32")
X4 = RNG.standard_normal((3, 6, 7, 4)).astype("float32")


def test_dense_per_step_matches_keras(keras):
    k = keras.layers.TimeDistributed(keras.layers.Dense(5, activation="tanh", bias_initializer="random_normal"))
    r = rnnkit.TimeDistributed(rnnkit.Dense(5, activation="tanh"))
    out = check_against_keras(k, r, X)
    assert out.shape == (3, 6, 5) == r.compute_output_shape(X.shape)
    inner = to_numpy(r.layer(X[:, 2]))
    np.testing.assert_allclose(out[:, 2], inner, rtol=1e-6)  # step t is the wrapped layer on x[:, t]


def test_conv1d_on_subsequences_matches_keras(keras):
    k = keras.layers.TimeDistributed(keras.layers.Conv1D(2, 3, padding="same"))
    r = rnnkit.TimeDistributed(rnnkit.Conv1D(2, 3, padding="same"))
    out = check_against_keras(k, r, X4)
    assert out.shape == (3, 6, 7, 2) == r.compute_output_shape(X4.shape)


def test_recurrent_layer_on_subsequences_matches_keras(keras):
    k = keras.layers.TimeDistributed(keras.layers.LSTM(3))
    r = rnnkit.TimeDistributed(rnnkit.LSTM(3))
    check_against_keras(k, r, X4, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", [None, MASK_RIGHT_PADDED, MASK_HOLES], ids=["no_mask", "right_padded", "holes"])
def test_batchnorm_training_steps_as_keras_and_receives_the_mask(keras, mask):
    # BatchNormalization mixes the batch's rows: the step path, one batch of 3 rows per timestep, as Keras
    k = keras.layers.TimeDistributed(keras.layers.BatchNormalization(momentum=0.5))
    r = rnnkit.TimeDistributed(rnnkit.BatchNormalization(momentum=0.5))
    kwargs = {"training": True} if mask is None else {"training": True, "mask": mask}
    check_against_keras(k, r, X, call_kwargs=kwargs, rtol=1e-4, atol=1e-5)
    for a, b in zip(r.get_weights(), k.get_weights()):  # the moving statistics: one update per timestep
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert mixes_samples(r.layer, True) and not mixes_samples(r.layer.eval(), None)


def test_batchnorm_inference_folds_and_matches_keras(keras):
    k = keras.layers.TimeDistributed(keras.layers.BatchNormalization())
    r = rnnkit.TimeDistributed(rnnkit.BatchNormalization())
    k.build(X.shape)
    k.set_weights([RNG.uniform(0.5, 1.5, (4,)).astype("float32") for _ in range(4)])
    check_against_keras(k, r.eval(), X, call_kwargs={"training": False})


def test_plain_torch_module_and_its_weights():
    linear = torch.nn.Linear(4, 2)
    r = rnnkit.TimeDistributed(linear)
    x = torch.tensor(X)
    torch.testing.assert_close(r(x), linear(x))
    assert [w.shape for w in r.get_weights()] == [(2, 4), (2,)]  # torch's own layout
    assert r.compute_output_shape((None, 6, 4)) == (None, 6, 2)
    bn = rnnkit.TimeDistributed(torch.nn.BatchNorm1d(4))
    assert mixes_samples(bn.layer, None)
    y = bn(x)  # step path: each step normalized over its own 3 rows
    np.testing.assert_allclose(to_numpy(y).mean(axis=0), 0, atol=1e-5)
    with pytest.raises(TypeError, match="get_config needs a wrapped rnnkit layer"):
        r.get_config()


def test_weights_are_the_wrapped_layers_in_keras_order(keras):
    k = keras.layers.TimeDistributed(keras.layers.BatchNormalization())
    k.build(X.shape)
    r = rnnkit.TimeDistributed(rnnkit.BatchNormalization(), input_shape=(6, 4))  # built at construction
    assert r.built and r.layer.built
    assert [w.shape for w in r.get_weights()] == [w.shape for w in k.get_weights()]
    assert len(r.trainable_weights) == len(k.trainable_weights) == 2


def test_mask_passes_through_and_reaches_a_masked_inner_layer():
    r = rnnkit.TimeDistributed(rnnkit.Dense(2))
    mask = torch.tensor(MASK_HOLES)
    assert r.supports_masking and r.compute_mask(X, mask) is mask
    assert r(X, mask=mask)._keras_mask.shape == (3, 6)
    seen = []

    class Probe(rnnkit.Layer):
        def call(self, inputs, mask=None):
            seen.append(mask)
            return inputs

    rnnkit.TimeDistributed(Probe())(X4, mask=np.ones((3, 6, 7), bool))
    assert seen[-1].shape == (18, 7)  # folded with the batch, as the inputs
    rnnkit.TimeDistributed(Probe())(X4)
    assert seen[-1] is None


def test_sequential_with_time_distributed_dense_keeps_the_mask():
    model = rnnkit.Sequential([rnnkit.Embedding(9, 4, mask_zero=True), rnnkit.LSTM(3, return_sequences=True),
                               rnnkit.TimeDistributed(rnnkit.Dense(2))])
    ids = torch.tensor([[1, 2, 0], [3, 4, 5]])
    out, mask = model.forward_with_mask(ids)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(to_numpy(mask), to_numpy(ids) != 0)


def test_gradients_flow_to_the_wrapped_weights():
    r = rnnkit.TimeDistributed(rnnkit.Dense(2))
    x = torch.tensor(X, requires_grad=True)
    r(x).sum().backward()
    assert r.layer.kernel.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_config_round_trip_from_keras_and_signature(keras):
    r = rnnkit.TimeDistributed(rnnkit.Dense(3, activation="relu", name="inner"), name="td")
    clone = assert_config_keys_match_keras(r, keras.layers.TimeDistributed(keras.layers.Dense(3)))
    assert isinstance(clone.layer, rnnkit.Dense) and clone.layer.units == 3
    assert r.get_config()["layer"]["class_name"] == "Dense"
    assert_signature_matches_keras(rnnkit.TimeDistributed, keras.layers.TimeDistributed)


def test_errors_name_the_layer():
    with pytest.raises(TypeError, match="td1: TimeDistributed wraps an rnnkit layer or a torch module, got str"):
        rnnkit.TimeDistributed("dense", name="td1")
    r = rnnkit.TimeDistributed(rnnkit.Dense(2), name="td2")
    with pytest.raises(ValueError, match=r"td2: TimeDistributed needs inputs of rank 3 or more .* got shape \(3, 4\)"):
        r(X[:, 0])
    with pytest.raises(ValueError, match=r"td2: the mask must be at least 2-D with leading dims \(batch, timesteps\)"):
        r(X, mask=np.ones((3, 5), bool))
