"""``GlobalAveragePooling1D`` and ``GlobalMaxPooling1D`` with Keras 3's layers as the oracle (masks included)."""

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

X = np.random.default_rng(2).standard_normal((3, 6, 4)).astype("float32")


@pytest.mark.parametrize("name", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
@pytest.mark.parametrize("data_format", [None, "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_matches_keras(keras, name, data_format, keepdims):
    k = getattr(keras.layers, name)(data_format=data_format, keepdims=keepdims)
    r = getattr(rnnkit, name)(data_format=data_format, keepdims=keepdims)
    out = check_against_keras(k, r, X)
    assert out.shape == r.compute_output_shape(X.shape) == tuple(k.compute_output_shape(X.shape))


@pytest.mark.parametrize("mask", [MASK_RIGHT_PADDED, MASK_HOLES], ids=["right_padded", "holes"])
def test_average_over_unmasked_steps_as_keras(keras, mask):
    out = check_against_keras(keras.layers.GlobalAveragePooling1D(), rnnkit.GlobalAveragePooling1D(), X,
                              call_kwargs={"mask": mask})
    expected = (X * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_average_mask_channels_first_and_attribute_fallback(keras):
    xt = np.ascontiguousarray(X.transpose(0, 2, 1))
    check_against_keras(keras.layers.GlobalAveragePooling1D("channels_first", keepdims=True),
                        rnnkit.GlobalAveragePooling1D("channels_first", keepdims=True), xt,
                        call_kwargs={"mask": MASK_HOLES})
    x = torch.tensor(X)
    x._keras_mask = torch.tensor(MASK_RIGHT_PADDED)  # what an Embedding/Masking/LSTM before it attaches
    r = rnnkit.GlobalAveragePooling1D()
    torch.testing.assert_close(r(x), r(torch.tensor(X), mask=MASK_RIGHT_PADDED))


def test_masked_steps_holding_nan_do_not_leak():
    x = X.copy()
    x[1, 4:] = np.nan
    out = to_numpy(rnnkit.GlobalAveragePooling1D()(x, mask=MASK_RIGHT_PADDED))
    assert np.isfinite(out).all()


def test_masks_stop_here_and_sequential():
    avg, mx = rnnkit.GlobalAveragePooling1D(), rnnkit.GlobalMaxPooling1D()
    assert avg.supports_masking and avg.compute_mask(X, torch.tensor(MASK_HOLES)) is None
    assert not mx.supports_masking
    ids = torch.tensor([[3, 4, 0, 0], [5, 6, 7, 0]])
    model = rnnkit.Sequential([rnnkit.Embedding(9, 2, mask_zero=True), rnnkit.GlobalAveragePooling1D()])
    emb = model[0].embeddings.detach()
    expected = torch.stack([emb[[3, 4]].mean(0), emb[[5, 6, 7]].mean(0)])
    out, mask = model.forward_with_mask(ids)
    torch.testing.assert_close(out, expected)
    assert mask is None
    with pytest.warns(UserWarning, match="does not support masking"):
        rnnkit.Sequential([rnnkit.Embedding(9, 2, mask_zero=True), rnnkit.GlobalMaxPooling1D()])(ids)


def test_gradients_reach_unmasked_steps_only():
    x = torch.tensor(X, requires_grad=True)
    rnnkit.GlobalAveragePooling1D()(x, mask=MASK_RIGHT_PADDED).sum().backward()
    grad = to_numpy(x.grad)
    np.testing.assert_allclose(grad, np.broadcast_to((MASK_RIGHT_PADDED / MASK_RIGHT_PADDED.sum(1, keepdims=True))
                                                     [..., None], X.shape), rtol=1e-6)


@pytest.mark.parametrize("name", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
def test_config_and_signature(keras, name):
    r = getattr(rnnkit, name)(data_format="channels_first", keepdims=True, name="p")
    clone = assert_config_keys_match_keras(r, getattr(keras.layers, name)(data_format="channels_first"))
    assert clone.data_format == "channels_first"
    assert_signature_matches_keras(getattr(rnnkit, name), getattr(keras.layers, name))


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"gap: expected inputs of rank 3 \(batch, steps, channels\)"):
        rnnkit.GlobalAveragePooling1D(name="gap")(X[:, 0])
    with pytest.raises(ValueError, match=r"gap2: mask must have shape \(batch, steps\) = \(3, 6\), got \(3, 5\)"):
        rnnkit.GlobalAveragePooling1D(name="gap2")(X, mask=np.ones((3, 5), bool))
    with pytest.raises(TypeError, match="gap3: mask must be boolean"):
        rnnkit.GlobalAveragePooling1D(name="gap3")(X, mask=np.ones((3, 6), "float32"))
    with pytest.raises(ValueError, match=r"gmp: expected inputs of rank 3 \(batch, channels, steps\)"):
        rnnkit.GlobalMaxPooling1D("channels_first", name="gmp")(X[None])
