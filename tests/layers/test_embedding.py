"""``Embedding`` with Keras 3's ``keras.layers.Embedding`` (torch backend) as the oracle."""

import numpy as np
import pytest
import torch
from conftest import to_numpy

import rnnkit

V, E = 7, 3
IDS = np.array([[1, 2, 0, 0], [6, 0, 3, 5]], dtype="int64")


def test_matches_keras_with_copied_weights(keras):
    k = keras.layers.Embedding(V, E, mask_zero=True)
    k.build((None, 4))
    r = rnnkit.Embedding(V, E, mask_zero=True)
    r.set_weights(k.get_weights())
    np.testing.assert_allclose(to_numpy(r(IDS)), to_numpy(k(torch.tensor(IDS))), rtol=1e-7)
    np.testing.assert_array_equal(to_numpy(r.compute_mask(IDS)), to_numpy(k.compute_mask(torch.tensor(IDS))))
    assert [w.shape for w in r.get_weights()] == [(V, E)]
    assert r.embeddings.shape == (V, E) and dict(r.named_parameters()).keys() == {"embeddings"}


def test_default_initializer_is_keras_uniform():
    r = rnnkit.Embedding(200, 50)
    w = r.get_weights()[0]
    assert w.min() >= -0.05 and w.max() <= 0.05 and w.std() > 0.02
    assert r.get_config()["embeddings_initializer"]["class_name"] == "RandomUniform"
    assert r.get_config()["embeddings_initializer"]["config"]["minval"] == -0.05


@pytest.mark.parametrize("convert", [lambda a: a, torch.tensor, lambda a: a.astype("int32"),
                                     lambda a: torch.tensor(a, dtype=torch.int32), lambda a: a.astype("float32")])
def test_inputs_integer_tensor_or_numpy(convert):
    r = rnnkit.Embedding(V, E)
    expected = to_numpy(r.embeddings)[IDS]
    np.testing.assert_array_equal(to_numpy(r(convert(IDS))), expected)


def test_any_rank():
    r = rnnkit.Embedding(V, E, mask_zero=True)
    ids = np.arange(24).reshape(2, 3, 4) % V
    assert r(ids).shape == (2, 3, 4, E)
    assert r.compute_mask(ids).shape == (2, 3, 4)
    assert r.compute_output_shape((None, 3, 4)) == (None, 3, 4, E)


def test_mask():
    r = rnnkit.Embedding(V, E, mask_zero=True)
    assert r.supports_masking
    np.testing.assert_array_equal(to_numpy(r.compute_mask(IDS)), IDS != 0)
    np.testing.assert_array_equal(to_numpy(r.compute_mask(IDS, mask=torch.ones(2, 4, dtype=torch.bool))), IDS != 0)
    np.testing.assert_array_equal(to_numpy(r(IDS)._keras_mask), IDS != 0)  # convenience attribute
    plain = rnnkit.Embedding(V, E)
    assert plain.compute_mask(IDS) is None and not plain.supports_masking
    assert getattr(plain(IDS), "_keras_mask", None) is None


def test_weights_argument_and_eager_parameters():
    w = np.arange(V * E, dtype="float32").reshape(V, E)
    for weights in (w, [w]):
        r = rnnkit.Embedding(V, E, weights=weights)
        np.testing.assert_array_equal(r.get_weights()[0], w)
    r = rnnkit.Embedding(V, E)
    assert r.built and len(list(r.parameters())) == 1  # ready for an optimizer before any call


def test_regularizer_constraint_trainable_dtype():
    r = rnnkit.Embedding(V, E, embeddings_regularizer="l2", embeddings_constraint="non_neg", dtype="float64")
    assert len(r.losses) == 1 and r.embeddings.dtype == torch.float64
    r.apply_constraints()
    assert r.get_weights()[0].min() >= 0
    assert r(IDS).dtype == torch.float64
    frozen = rnnkit.Embedding(V, E, trainable=False)
    assert not frozen.embeddings.requires_grad


def test_gradient_reaches_used_rows_only():
    r = rnnkit.Embedding(V, E)
    r(IDS).sum().backward()
    used = np.zeros(V, bool)
    used[np.unique(IDS)] = True
    grad = to_numpy(r.embeddings.grad)
    assert np.all(grad[used] != 0) and np.all(grad[~used] == 0)


def test_config_round_trip_and_keras_config(keras):
    r = rnnkit.Embedding(V, E, mask_zero=True, embeddings_regularizer="l1", name="emb")
    clone = rnnkit.Embedding.from_config(r.get_config())
    assert (clone.name, clone.input_dim, clone.output_dim, clone.mask_zero) == ("emb", V, E, True)
    assert clone.get_config() == r.get_config()
    k_config = keras.layers.Embedding(V, E, mask_zero=True).get_config()
    from_keras = rnnkit.Embedding.from_config(k_config)
    assert from_keras.mask_zero and from_keras.input_dim == V


@pytest.mark.parametrize("args, word", [((0, E), "input_dim"), ((V, -1), "output_dim"), ((2.5, E), "input_dim"),
                                        ((True, E), "input_dim")])
def test_bad_sizes(args, word):
    with pytest.raises(ValueError, match=f"embedding.*{word}"):
        rnnkit.Embedding(*args)


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="'?emb'?: LoRA"):
        rnnkit.Embedding(V, E, lora_rank=4, name="emb")
    with pytest.raises(ValueError, match="quantization"):
        rnnkit.Embedding(V, E, quantization_config={"mode": "int8"})
    with pytest.raises(TypeError, match="unexpected keyword"):
        rnnkit.Embedding(V, E, input_dim_typo=3)
    r = rnnkit.Embedding(V, E, name="emb")
    with pytest.raises(ValueError, match=r"emb: ids must be in \[0, input_dim\) = \[0, 7\), got ids from 0 to 9"):
        r(np.array([[0, 9]]))
    with pytest.raises(ValueError, match="got ids from -1"):
        r(np.array([[-1, 2]]))
    with pytest.raises(TypeError, match="emb: inputs must be integer ids"):
        r(torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="emb: inputs must be integer ids"):
        r("hello")


def test_valid_ids_are_not_range_checked_on_the_host(monkeypatch):
    """min/max (a host sync) only run once the lookup failed, to name the bad ids."""
    seen = []

    def spy(method):
        real = getattr(torch.Tensor, method)

        def spied(self, *args, **kwargs):
            seen.append(method)
            return real(self, *args, **kwargs)

        return spied

    for method in ("min", "max"):
        monkeypatch.setattr(torch.Tensor, method, spy(method))
    r = rnnkit.Embedding(V, E, mask_zero=True, name="emb")
    r(IDS)
    r.compute_mask(IDS)
    assert seen == []
    with pytest.raises(ValueError, match=r"got ids from 0 to 7"):
        r(np.array([[0, 7]]))
    assert seen == ["min", "max"]


def test_mask_compares_the_inputs_as_given(keras):
    """Keras masks ``inputs != 0``: a float id 0.5 looks up row 0 but is not masked."""
    ids = np.array([[0.5, 0.0, 2.7], [0.0, 1.0, 0.25]], dtype="float32")
    k = keras.layers.Embedding(V, E, mask_zero=True)
    k.build((None, 3))
    r = rnnkit.Embedding(V, E, mask_zero=True, weights=k.get_weights())
    expected = to_numpy(k.compute_mask(torch.tensor(ids)))
    np.testing.assert_array_equal(expected, ids != 0)
    np.testing.assert_array_equal(to_numpy(r.compute_mask(ids)), expected)
    np.testing.assert_array_equal(to_numpy(r(ids)._keras_mask), expected)
    np.testing.assert_allclose(to_numpy(r(ids)), to_numpy(k(torch.tensor(ids))), rtol=1e-7)


def test_input_length_is_deprecated_and_ignored():
    with pytest.warns(UserWarning, match="input_length"):
        r = rnnkit.Embedding(V, E, input_length=4)
    assert r(IDS).shape == (2, 4, E)
