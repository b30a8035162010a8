"""Merge layers with Keras 3's merge layers as the oracle: values, broadcasting, masks, configs."""

import numpy as np
import pytest
import torch
from conftest import MASK_HOLES, MASK_RIGHT_PADDED, to_numpy

import rnnkit

from .keras_oracle import assert_config_keys_match_keras, assert_signature_matches_keras, check_against_keras

RNG = np.random.default_rng(5)
A, B, C = (RNG.standard_normal((3, 6, 4)).astype("float32") for _ in range(3))
ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _inputs(name):
    return [A, B] if name == "Subtract" else [A, B, C]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_keras(keras, name):
    out = check_against_keras(getattr(keras.layers, name)(), getattr(rnnkit, name)(), _inputs(name))
    assert out.shape == A.shape


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_rank_alignment_matches_keras(keras, name):
    low = A[:, 0]  # (3, 4) + (3, 6, 4): Keras inserts an axis at 1
    check_against_keras(getattr(keras.layers, name)(), getattr(rnnkit, name)(), [low, B])
    assert getattr(rnnkit, name)().compute_output_shape([(None, 4), (None, 6, 4)]) == (None, 6, 4)


MASK_CASES = {
    "both": [MASK_RIGHT_PADDED, MASK_HOLES, MASK_HOLES[::-1].copy()],
    "first_only": [MASK_HOLES, None, None],
    "second_only": [None, MASK_HOLES, MASK_RIGHT_PADDED],
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_masked_merges_match_keras(keras, name, case):
    masks = MASK_CASES[case][: len(_inputs(name))]
    k, r = getattr(keras.layers, name)(), getattr(rnnkit, name)()
    out = check_against_keras(k, r, _inputs(name), call_kwargs={"mask": masks}, keras_call_kwargs={},
                              keras_masks=masks)
    k_mask = k.compute_mask([torch.tensor(x) for x in _inputs(name)], [None if m is None else torch.tensor(m)
                                                                         for m in masks])
    r_mask = r.compute_mask(_inputs(name), masks)
    assert (k_mask is None) == (r_mask is None) == (case != "both")
    if k_mask is not None:
        np.testing.assert_array_equal(to_numpy(r_mask), to_numpy(k_mask))
    if name == "Maximum" and case == "both":  # a step masked in one input takes the others' values
        m = np.stack(masks)[..., None]
        expected = np.where(m, np.stack(_inputs(name)), -np.inf).max(0)
        rows = np.stack(masks).any(0)
        np.testing.assert_allclose(out[rows], expected[rows], rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_matches_keras_with_masks(keras, axis):
    k, r = keras.layers.Concatenate(axis=axis), rnnkit.Concatenate(axis=axis)
    out = check_against_keras(k, r, [A, B[:, :, :2] if axis == -1 else B[:, :2]])
    assert out.shape == ((3, 6, 6) if axis == -1 else (3, 8, 4))
    xs = [torch.tensor(A), torch.tensor(B)]
    for masks in ([MASK_RIGHT_PADDED, MASK_HOLES], [None, MASK_HOLES], [MASK_HOLES, None]):
        tm = [None if m is None else torch.tensor(m) for m in masks]
        np.testing.assert_array_equal(to_numpy(r.compute_mask(xs, masks)), to_numpy(k.compute_mask(xs, tm)))
    assert r.compute_mask(xs, [None, None]) is None and r.compute_mask(xs, None) is None
    y = r(xs, mask=[MASK_RIGHT_PADDED, MASK_HOLES])
    np.testing.assert_array_equal(to_numpy(y._keras_mask), to_numpy(r.compute_mask(xs, [MASK_RIGHT_PADDED,
                                                                                         MASK_HOLES])))


@pytest.mark.parametrize("shapes, axes", [([(3, 4), (3, 4)], 1), ([(3, 6, 4), (3, 5, 4)], 2),
                                          ([(3, 6, 4), (3, 6, 5)], 1), ([(3, 6, 4), (3, 4)], (2, 1)),
                                          ([(3, 4), (3, 4, 5)], (1, 1)), ([(3, 2, 6, 4), (3, 4, 5)], (-1, 1)),
                                          ([(3, 6, 4), (3, 5, 4)], -1)])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_keras(keras, shapes, axes, normalize):
    xs = [RNG.standard_normal(s).astype("float32") for s in shapes]
    k, r = keras.layers.Dot(axes, normalize=normalize), rnnkit.Dot(axes, normalize=normalize)
    out = check_against_keras(k, r, xs, rtol=1e-5, atol=1e-5)
    assert r.compute_output_shape(shapes) == out.shape == tuple(k.compute_output_shape(shapes))


def test_dot_cosine_similarity_and_no_mask():
    r = rnnkit.Dot(1, normalize=True)
    x, y = torch.tensor(A[:, 0]), torch.tensor(B[:, 0])
    torch.testing.assert_close(r([x, y])[:, 0], torch.nn.functional.cosine_similarity(x, y))
    assert r.supports_masking and r.compute_mask([x, y], [MASK_HOLES[:, 0], None]) is None


def test_masks_from_attached_attributes_and_gradients():
    x, y = torch.tensor(A, requires_grad=True), torch.tensor(B, requires_grad=True)
    x._keras_mask = torch.tensor(MASK_RIGHT_PADDED)
    y._keras_mask = torch.tensor(MASK_HOLES)
    r = rnnkit.Maximum()
    out = r([x, y])
    torch.testing.assert_close(out, r([torch.tensor(A), torch.tensor(B)], mask=[MASK_RIGHT_PADDED, MASK_HOLES]))
    np.testing.assert_array_equal(to_numpy(out._keras_mask), MASK_RIGHT_PADDED | MASK_HOLES)
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ELEMENTWISE + ["Concatenate", "Dot"])
def test_config_and_signature(keras, name):
    args = (1,) if name == "Dot" else ()
    r = getattr(rnnkit, name)(*args, name="m")
    clone = assert_config_keys_match_keras(r, getattr(keras.layers, name)(*args))
    assert type(clone) is type(r) and r.get_weights() == []
    assert_signature_matches_keras(getattr(rnnkit, name), getattr(keras.layers, name))


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="add1: a Add layer is called on a list of tensors"):
        rnnkit.Add(name="add1")(A)
    with pytest.raises(ValueError, match="sub1: a Subtract layer takes exactly 2 inputs, got 3"):
        rnnkit.Subtract(name="sub1")([A, B, C])
    with pytest.raises(ValueError, match="add2: every input needs the same batch size"):
        rnnkit.Add(name="add2")([A, B[:2]])
    with pytest.raises(ValueError, match=r"add3: inputs have incompatible shapes \[\(3, 6, 4\), \(3, 6, 5\)\]"):
        rnnkit.Add(name="add3")([A, RNG.standard_normal((3, 6, 5))])
    with pytest.raises(ValueError, match="max1: mask must be a list with one mask"):
        rnnkit.Maximum(name="max1")([A, B], mask=[MASK_HOLES])
    with pytest.raises(ValueError, match="max2: a mask must have its input's shape without the last axis"):
        rnnkit.Maximum(name="max2")([A, B], mask=[MASK_HOLES[:, :5], None])
    with pytest.raises(ValueError, match="cat1: inputs must match except on the concatenation axis -1"):
        rnnkit.Concatenate(name="cat1")([A, B[:, :5]])
    with pytest.raises(ValueError, match="dot1: the contracted axes differ in size: 4"):
        rnnkit.Dot(2, name="dot1")([A, B[:, :, :3]])
    with pytest.raises(ValueError, match="dot2: Dot needs inputs of rank 2 or more and axes in 1..rank-1"):
        rnnkit.Dot(0, name="dot2")([A, B])
    with pytest.raises(ValueError, match="dot3: axes must be an int or a pair of ints"):
        rnnkit.Dot((1, 2, 3), name="dot3")
    with pytest.raises(TypeError, match="cat2: axis must be an int"):
        rnnkit.Concatenate(axis="last", name="cat2")
