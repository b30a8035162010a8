"""``rnnkit demo``: end to end through the command line, plus its corpus, model and sampling parts."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from rnnkit.tools import cli, demo, demo_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {"losses", "val_loss", "chars_per_second", "steps", "cell", "seed", "initial_loss", "final_loss"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One ``python -m rnnkit demo --steps 80`` run, shared by the checks below.

    ``--threads 1``: the test machine's two cores are shared with other jobs,
    and two OpenMP threads that wait on each other at every timestep of the
    fused kernel slow down several times when either is descheduled; the
    thread count changes the losses only by float rounding.
    """
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "demo", "--steps", "80", "--out", str(out), "--seed", "0",
         "--threads", "1"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


def test_demo_writes_and_names_its_files(demo_run):
    proc, out = demo_run
    for name in ("metrics.json", "loss.png", "sample.txt"):
        assert (out / name).is_file(), name
        assert str(out / name) in proc.stdout, name
    assert "standard library" in proc.stdout  # the corpus it trained on
    assert "demo lstm" in proc.stderr and "chars/s" in proc.stderr  # the tqdm bar


def test_demo_metrics(demo_run):
    _, out = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["steps"] == 80 and len(metrics["losses"]) == 80
    assert metrics["cell"] == "lstm" and metrics["seed"] == 0
    losses = metrics["losses"]
    assert all(math.isfinite(x) for x in losses)
    assert metrics["initial_loss"] == losses[0]
    assert metrics["initial_loss"] == pytest.approx(math.log(demo_data.VOCAB_SIZE), abs=0.3)
    window = metrics["final_loss_window"]
    assert metrics["final_loss"] == pytest.approx(sum(losses[-window:]) / window)
    # the model learns: at least 20% off the first step's loss in 80 steps
    assert metrics["final_loss"] <= 0.8 * metrics["initial_loss"], (metrics["initial_loss"], metrics["final_loss"])
    assert math.isfinite(metrics["val_loss"]) and metrics["val_loss"] < 0.85 * metrics["initial_loss"]
    assert metrics["val_losses"][-1] == {"step": 80, "loss": metrics["val_loss"]}
    assert metrics["chars_per_second"] > 0


def test_demo_plot_is_a_png(demo_run):
    _, out = demo_run
    data = (out / "loss.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_demo_sample(demo_run):
    _, out = demo_run
    text = (out / "sample.txt").read_text(encoding="utf-8")
    assert len(text) >= 500
    assert text.startswith(demo.PROMPT)
    assert set(text) <= set(demo_data.VOCAB)


def test_demo_other_cells_learn(tmp_path):
    """GRU and SimpleRNN through the same code, on a small model (in process)."""
    hyper = demo.Hyper(embed_dim=16, units=48, batch_size=16, seq_len=32, val_windows=8, sample_chars=500)
    for cell in ("gru", "simple"):
        metrics = demo.run(steps=30, out=tmp_path / cell, cell=cell, seed=1, hyper=hyper, progress=False,
                           log=lambda line: None)
        assert metrics["cell"] == cell
        assert metrics["final_loss"] < 0.9 * metrics["initial_loss"]
        assert len((tmp_path / cell / "sample.txt").read_text()) >= 500
        assert (tmp_path / cell / "loss.png").read_bytes().startswith(PNG_SIGNATURE)


def test_demo_without_extras_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    out = tmp_path / "never"
    assert cli.main(["demo", "--steps", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "matplotlib" in err and 'pip install "rnnkit[demo]"' in err
    assert not out.exists()

    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(demo.MissingExtrasError, match="tqdm and matplotlib"):
        demo.run(steps=1, out=out)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_stepwise_states_match_the_full_sequence(cell):
    """Sampling's one-character calls, carrying return_state states, equal one call over the sequence."""
    torch.manual_seed(0)
    model = demo.CharModel(cell, demo.Hyper(embed_dim=8, units=12)).eval()
    ids = demo_data.encode("def f(self):\n    return 1\n").unsqueeze(0)
    with torch.no_grad():
        full, full_states = model(ids)
        logits, states = model(ids[:, :1])
        steps = [logits]
        for t in range(1, ids.shape[1]):
            logits, states = model(ids[:, t:t + 1], states)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    for a, b in zip(sum(states, []), sum(full_states, [])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_sample_is_reproducible_and_never_emits_unknown():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    model = demo.CharModel("gru", demo.Hyper(embed_dim=8, units=12))
    a = demo.sample(model, 200, 1.0, torch.Generator().manual_seed(3))
    b = demo.sample(model, 200, 1.0, torch.Generator().manual_seed(3))
    assert a == b and a.startswith(demo.PROMPT) and len(a) == len(demo.PROMPT) + 200
    with torch.no_grad():  # a model that all but always predicts UNK, and never a real "?"
        model.head.bias[demo_data.UNK] = 100.0
        model.head.bias[demo_data.VOCAB.index("?")] = -100.0
    generated = demo.sample(model, 200, 1.0, torch.Generator().manual_seed(3))[len(demo.PROMPT):]
    assert len(generated) == 200 and "?" not in generated  # UNK would decode as "?"
    assert torch.get_num_threads() == threads  # sampling ran on one thread, then restored the count


def test_vocabulary_round_trip():
    text = "class A:\n    def f(self, x=1):\n        return {'k': [x ** 2]}  # ok\n"
    assert demo_data.decode(demo_data.encode(text)) == text
    ids = demo_data.encode("\tπ\r")
    assert ids.tolist() == [demo_data.UNK] * 4  # tab, two UTF-8 bytes of pi, carriage return
    assert demo_data.decode(ids) == "????"
    assert demo_data.VOCAB_SIZE == len(demo_data.VOCAB) + 1


def test_corpus_is_the_stdlib_and_deterministic():
    a, b = demo_data.load_corpus(), demo_data.load_corpus()
    assert "standard library" in a.source and a.files > 10
    assert demo_data.MIN_BYTES <= len(a.ids) <= demo_data.DEFAULT_BUDGET + 1
    assert torch.equal(a.ids, b.ids)
    train, val = a.split(0.1)
    assert len(train) + len(val) == len(a.ids)
    assert len(val) == pytest.approx(0.1 * len(a.ids), abs=2)
    text = demo_data.decode(a.ids[:200_000])
    assert "def " in text and "self." in text and "\n    " in text


def test_corpus_falls_back_to_rnnkit_sources(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_data, "stdlib_dir", lambda: tmp_path)  # no .py files there
    corpus = demo_data.load_corpus()
    assert "rnnkit sources" in corpus.source and len(corpus.ids) >= 10_000
