"""Files written by tf.keras 2 (2.21) and Keras 2.12, committed with their recorded predictions.

Made by ``tests/fixtures/legacy/make_fixtures.py`` in a separate environment
(see the README there); neither TensorFlow nor tf-keras is a test dependency.
Keras 3 refuses these files; rnnkit reads them with Keras 2 semantics.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
MODELS = sorted(p for p in list(HERE.glob("*.npz")) + list(HERE.glob("keras2_12/*.npz")))


def recorded(npz_path):
    data = np.load(npz_path)
    meta = json.loads(str(data["meta"]))
    inputs = [data[f"input_{i}"] for i in range(len(meta["inputs"]))]
    outputs = [data[f"output_{i}"] for i in range(len(meta["outputs"]))]
    return meta, inputs, outputs


@pytest.mark.parametrize("npz", MODELS, ids=lambda p: str(p.relative_to(HERE)))
def test_legacy_model_predicts_as_recorded(npz):
    meta, inputs, outputs = recorded(npz)
    model = rnnkit.load_keras_model(npz.with_name(meta["h5"]))
    with torch.no_grad():
        got = model(*[torch.as_tensor(x) for x in inputs])
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(outputs)
    for g, e in zip(got, outputs):
        assert np.abs(e).max() > 1e-3
        np.testing.assert_allclose(g.numpy(), e, atol=1e-5, rtol=1e-5)


def test_fixtures_are_present():
    assert len(MODELS) >= 14  # both stacks' files, as the README lists them


@pytest.mark.parametrize("folder", ["", "keras2_12"])
def test_legacy_weights_only_file_by_order_and_by_name(folder):
    meta, inputs, outputs = recorded(HERE / folder / "seq_bidirectional.npz")
    full = rnnkit.load_keras_model(HERE / folder / meta["h5"])
    for by_name in (False, True):
        fresh = rnnkit.load_keras_model(HERE / folder / meta["h5"])
        with torch.no_grad():
            for p in fresh.parameters():
                p.zero_()
        rnnkit.load_keras_weights(fresh, HERE / folder / "seq_bidirectional_weights.h5", by_name=by_name)
        with torch.no_grad():
            np.testing.assert_allclose(fresh(torch.as_tensor(inputs[0])).numpy(), outputs[0], atol=1e-5)
        # the same weights in the newer saving_lib layout (`.weights.h5` written by tf.keras 2 / Keras 2.12)
        with torch.no_grad():
            for p in fresh.parameters():
                p.zero_()
        rnnkit.load_keras_weights(fresh, HERE / folder / "seq_bidirectional.weights.h5")
        with torch.no_grad():
            np.testing.assert_allclose(fresh(torch.as_tensor(inputs[0])).numpy(), outputs[0], atol=1e-5)
            assert torch.equal(fresh(torch.as_tensor(inputs[0])), full(torch.as_tensor(inputs[0])))
