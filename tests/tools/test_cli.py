"""``rnnkit`` command line: parser, help, argument errors and the ``bench`` subcommand."""

import os
import subprocess
import sys

import pytest

from rnnkit.tools import bench, bench_report, cli


def run_cli(*args, timeout=120):
    """``python -m rnnkit ARGS`` in a fresh interpreter."""
    env = dict(os.environ, KERAS_BACKEND="torch")
    return subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_module_help_lists_subcommands():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "bench" in proc.stdout


@pytest.mark.parametrize("command, options", [
    ("demo", ["--steps", "--out", "--cell", "--seed", "lstm", "gru", "simple", "rnnkit[demo]"]),
    ("bench", ["--layer", "--shape", "--against", "--mode", "B,T,D,H", "ratio", "torch", "keras", "infer", "train"]),
])
def test_subcommand_help(command, options, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: rnnkit {command}" in out
    for option in options:
        assert option in out, option


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert "rnnkit" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["bench", "--shape", "2,5"], "four positive integers"),
    (["bench", "--shape", "a,b,c,d"], "four positive integers"),
    (["bench", "--shape", "2,0,3,4"], "four positive integers"),
    (["bench", "--layer", "lstmx"], "invalid choice"),
    (["bench", "--against", "torch,tensorflow"], "'tensorflow'"),
    (["bench", "--against", ","], "comma-separated"),
    (["bench", "--mode", "fast"], "'fast'"),
    (["demo", "--steps", "0"], "positive integer"),
    (["demo", "--steps", "ten"], "positive integer"),
    (["demo", "--cell", "transformer"], "invalid choice"),
    (["demo", "--seed", "x"], "invalid int"),
    (["demo", "--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_nonzero_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: rnnkit" in err and "error:" in err
    assert message in err


def test_bad_arguments_from_the_command_line():
    proc = run_cli("bench", "--shape", "1,2,3")
    assert proc.returncode == 2
    assert "--shape" in proc.stderr and "B,T,D,H" in proc.stderr


def test_argument_types():
    assert cli.shape_arg(" 2, 5,3 ,4") == (2, 5, 3, 4)
    assert cli.choice_list(cli.PEERS)("Torch,keras,torch") == ("torch", "keras")


def test_bench_prints_a_table_with_ratios():
    proc = run_cli("bench", "--layer", "lstm", "--shape", "2,5,3,4", "--against", "torch")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    header, rows = lines[0].split(), lines[1:]
    assert header[-1] == "ratio" and "case" in header
    assert len(rows) == 2  # infer and train, against torch.nn only
    for row, mode in zip(rows, ("infer", "train")):
        assert "lstm" in row and "(2, 5, 3, 4)" in row and mode in row and "torch.nn" in row
        assert float(row.split()[-1]) > 0
    assert "keras" not in proc.stdout


@pytest.fixture
def captured_compare(monkeypatch):
    from rnnkit.tools import allocator

    calls = []
    monkeypatch.setattr(bench, "compare", lambda **kw: calls.append(kw) or [])
    # (the pytest process's malloc thresholds stay as they are; the calls are recorded)
    KEPT.clear()
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: KEPT.append(1))
    return calls


KEPT: list = []  # keep_freed_memory's calls under captured_compare


@pytest.mark.parametrize("as_is", [False, True])
def test_bench_keeps_freed_memory_unless_told_not_to(as_is, captured_compare):
    """As benchmarks/bench_layers.py: freed memory kept (in the jax subprocess too, through its environment)."""
    argv = ["bench", "--layer", "gru", "--shape", "1,2,3,4", "--against", "torch"] + (["--malloc-as-is"] if as_is
                                                                                       else [])
    assert cli.main(argv) == 0
    assert KEPT == ([] if as_is else [1])
    assert captured_compare[0]["cells"] == ("gru",)


@pytest.mark.parametrize("argv, expected", [
    (["bench", "--layer", "gru", "--shape", "4,10,8,16", "--against", "torch", "--mode", "train"],
     {"cells": ("gru",), "shapes": [(4, 10, 8, 16)], "against": ("torch",), "modes": ("train",), "extras": False}),
    (["bench", "--against", "torch"],
     {"cells": bench.CELLS, "shapes": bench.SHAPES, "against": ("torch",), "modes": ("infer", "train"),
      "extras": True}),
    (["bench", "--layer", "all", "--shape", "1,2,3,4", "--against", "torch"],
     {"cells": bench.CELLS, "shapes": [(1, 2, 3, 4)], "extras": False}),
    (["bench", "--layer", "simple", "--against", "torch"], {"cells": ("simple",), "extras": False}),
])
def test_bench_passes_arguments_to_compare(argv, expected, captured_compare):
    assert cli.main(argv) == 0
    (kwargs,) = captured_compare
    for key, value in expected.items():
        assert kwargs[key] == value, key


def test_bench_without_keras_drops_the_keras_column(monkeypatch, captured_compare, capsys):
    monkeypatch.setattr(bench, "keras_available", lambda: False)
    assert cli.main(["bench", "--layer", "lstm", "--against", "torch,keras"]) == 0
    assert captured_compare[0]["against"] == ("torch",)
    assert "keras" in capsys.readouterr().err

    assert cli.main(["bench", "--against", "keras"]) == 1
    assert len(captured_compare) == 1
    assert "install keras" in capsys.readouterr().err


def test_bench_with_keras_keeps_the_keras_column(monkeypatch, captured_compare):
    monkeypatch.setattr(bench, "keras_available", lambda: True)
    assert cli.main(["bench", "--layer", "lstm"]) == 0
    assert captured_compare[0]["against"] == ("torch", "keras")


def test_every_command_is_one_add_function():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["demo", "bench", "inspect", "convert"]
    assert len(cli.COMMANDS) == len(sub.choices)


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    if "rnnkit" not in scripts:
        pytest.skip("rnnkit is not installed with its console script")
    assert scripts["rnnkit"] == "rnnkit.tools.cli:main"


def test_bench_runs_with_keras_hidden(tmp_path):
    """`rnnkit bench` in a fresh interpreter where `import keras` fails: a torch-only table."""
    hide = tmp_path / "sitecustomize.py"
    hide.write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'keras' or name.startswith('keras.'):\n"
        "            raise ImportError('keras hidden for this test')\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "bench", "--layer", "lstm", "--shape", "2,3,4,5", "--mode", "infer"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "keras" in proc.stderr  # the note that the keras column is dropped
    rows = [line for line in proc.stdout.splitlines() if "torch.nn" in line]
    assert len(rows) == 1 and "(2, 3, 4, 5)" in rows[0]
    assert float(rows[0].split()[-1]) > 0  # a ratio was measured


def test_bench_against_jax_says_why_it_cannot(monkeypatch, captured_compare, capsys):
    monkeypatch.setattr(bench, "jax_missing", lambda: "jax not installed (pip install jax jaxlib keras)")
    assert cli.main(["bench", "--layer", "lstm", "--against", "jax"]) == 1
    assert "no keras-jax column: jax not installed" in capsys.readouterr().err
    assert captured_compare == []
    monkeypatch.setattr(bench, "keras_available", lambda: True)
    assert cli.main(["bench", "--layer", "lstm", "--against", "torch,jax"]) == 0
    assert captured_compare[0]["against"] == ("torch",)


def test_bench_against_jax_keeps_the_column_when_available(monkeypatch, captured_compare):
    monkeypatch.setattr(bench, "jax_missing", lambda: None)
    assert cli.main(["bench", "--layer", "lstm", "--against", "torch,jax"]) == 0
    assert captured_compare[0]["against"] == ("torch", "jax")


def test_plot_ratios_writes_a_png(tmp_path):
    rows = [{"case": "fusable", "cell": "lstm", "shape": [1, 2, 3, 4], "mode": m, "peer": "torch.nn", "ratio": q}
            for m, q in (("infer", 0.8), ("train", 1.3))]
    path = tmp_path / "ratios.png"
    bench_report.plot_ratios(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
