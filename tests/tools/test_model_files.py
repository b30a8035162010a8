"""``rnnkit inspect`` and ``rnnkit convert`` on committed tf.keras 2 files."""

import json
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit.tools import cli

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def test_inspect_lists_layers_shapes_params_and_paths(capsys):
    assert cli.main(["inspect", str(LEGACY / "seq_embedding_gru_v2.h5")]) == 0
    out = capsys.readouterr().out
    assert "written by Keras 2.21.0" in out
    rows = {line.split()[0]: line for line in out.splitlines()[2:-1]}
    assert list(rows) == ["embedding", "gru", "global_average_pooling1d", "dense"]
    assert "(None, 7, 5)" in rows["gru"] and "165" in rows["gru"] and "fused kernel" in rows["gru"]
    model = rnnkit.load_keras_model(LEGACY / "seq_embedding_gru_v2.h5")
    assert f"total parameters: {sum(p.numel() for p in model.parameters())}" in out


def test_inspect_refuses_a_non_keras_file(tmp_path, capsys):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    assert cli.main(["inspect", str(bad)]) == 1
    assert "not a Keras file" in capsys.readouterr().err


def test_convert_to_a_torch_file_loadable_with_weights_only(tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert cli.main(["convert", str(LEGACY / "seq_lstm_masking.h5"), str(out)]) == 0
    assert "state_dict" in capsys.readouterr().out
    payload = torch.load(out, weights_only=True)
    model = rnnkit.model_from_keras_config(json.loads(payload["keras_config"]), payload["keras_version"])
    model.load_state_dict(payload["state_dict"])
    data = np.load(LEGACY / "seq_lstm_masking.npz")
    with torch.no_grad():
        got = model.eval()(torch.as_tensor(data["input_0"])).numpy()
    np.testing.assert_allclose(got, data["output_0"], atol=1e-5)


def test_convert_to_keras3(keras, tmp_path):
    out = tmp_path / "model.keras"
    assert cli.main(["convert", str(LEGACY / "seq_bidirectional.h5"), str(out)]) == 0
    data = np.load(LEGACY / "seq_bidirectional.npz")
    got = keras.saving.load_model(out).predict(data["input_0"], verbose=0)
    np.testing.assert_allclose(got, data["output_0"], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
