"""Loading never executes anything from a file; bad files are refused with errors naming the file part."""

import json
import zipfile

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.io.keras_file import KerasFileError


def lstm_model(keras):
    return keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2, name="lstm")])


def test_lambda_layer_is_refused_and_its_code_never_runs(keras, tmp_path):
    marker = tmp_path / "pwned.txt"

    def side_effect(x):
        with open(marker, "w") as fh:  # what the layer's code would do if it ran
            fh.write("ran")
        return x

    m = keras.Sequential([keras.Input((4, 3)), keras.layers.Lambda(side_effect), keras.layers.LSTM(2)])
    m.predict(np.zeros((1, 4, 3), "float32"), verbose=0)  # saving traces the function once...
    marker.unlink()  # ...so start from a clean slate
    m.save(tmp_path / "lambda.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "lambda.keras").read("config.json"))
    assert "Lambda" in json.dumps(config)  # the archive really holds the layer
    with pytest.raises(KerasFileError, match=r"lambda.*Lambda.*never runs code"):
        rnnkit.load_keras_model(tmp_path / "lambda.keras")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda.keras"]  # nothing written


def test_unknown_class_is_refused_unless_given(keras, tmp_path):
    @keras.saving.register_keras_serializable(package="test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    m = keras.Sequential([keras.Input((4, 3)), Doubler(name="doubler"), keras.layers.LSTM(2)])
    m.save(tmp_path / "custom.keras")
    with pytest.raises(KerasFileError, match=r"'doubler'.*'Doubler'.*custom_objects"):
        rnnkit.load_keras_model(tmp_path / "custom.keras")

    class TorchDoubler(rnnkit.Layer):
        def call(self, x):
            return 2 * x

    loaded = rnnkit.load_keras_model(tmp_path / "custom.keras", custom_objects={"Doubler": TorchDoubler})
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    np.testing.assert_allclose(loaded(torch.as_tensor(x)).detach().numpy(), m.predict(x, verbose=0), atol=1e-5)


def test_not_a_keras_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("print('hello')\n")
    with pytest.raises(KerasFileError, match="not a Keras file"):
        rnnkit.load_keras_model(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        rnnkit.load_keras_model(tmp_path / "missing.keras")


def test_zip_without_keras_members(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(KerasFileError, match="config.json"):
        rnnkit.load_keras_model(path)


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_truncated_file(keras, tmp_path, ext):
    path = tmp_path / f"model.{ext}"
    lstm_model(keras).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasFileError, match="damaged or truncated"):
        rnnkit.load_keras_model(path)


def test_weights_of_the_wrong_shape(keras, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "model.h5"
    lstm_model(keras).save(path)
    with h5py.File(path, "r+") as f:
        group = f["model_weights/lstm"]
        name = [n for n in group.attrs["weight_names"]][0]
        name = name.decode() if isinstance(name, bytes) else name
        del group[name]
        group.create_dataset(name, data=np.zeros((5, 8), "float32"))
    with pytest.raises(KerasFileError, match=r"layer 'lstm'.*\(5, 8\)"):
        rnnkit.load_keras_model(path)


def test_config_that_is_not_json(keras, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "model.h5"
    lstm_model(keras).save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = "__import__('os').system('touch pwned')"
    with pytest.raises(KerasFileError, match="model_config is not valid JSON"):
        rnnkit.load_keras_model(path)
    assert not (tmp_path / "pwned").exists()


def test_weights_only_file_needs_a_model(keras, tmp_path):
    m = lstm_model(keras)
    m.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(KerasFileError, match="weights-only"):
        rnnkit.load_keras_model(tmp_path / "w.weights.h5")


def test_import_rnnkit_needs_no_h5py():
    import subprocess
    import sys

    code = "import sys, rnnkit; assert 'h5py' not in sys.modules, 'h5py imported'; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
