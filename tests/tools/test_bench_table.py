"""``rnnkit.tools.bench_report``: the README's speed table, the ratio chart."""

import pytest

from rnnkit.tools import bench_report


def _row(case, cell, shape, mode, peer, ratio):
    return {"case": case, "cell": cell, "shape": list(shape), "mode": mode, "peer": peer,
            "rnnkit_ms": 2.0 * ratio, "peer_ms": 2.0, "ratio": ratio}


ROWS = [
    _row("fusable", "lstm", (32, 100, 64, 128), "infer", "torch.nn", 1.01),
    _row("fusable", "lstm", (32, 100, 64, 128), "train", "torch.nn", 1.05),
    _row("mask cost", "gru", (32, 1000, 32, 64), "train", "rnnkit unmasked", 0.9),
    _row("custom cell", "minimal", (1, 1000, 32, 64), "train", "keras-jax", 19.9),
    _row("streaming", "gru", (1, 1, 32, 64), "infer", "torch.nn", 1.27),
    {"case": "compile time", "shape": [128, 20, 32, 64], "seconds": 1.8},  # rows without a ratio
    {"case": "gflops", "cell": "lstm", "shape": [32, 100, 64, 128], "mode": "infer", "gflops": 3.0},
]


def test_speed_table_puts_each_ratio_in_its_row_and_column():
    lines = bench_report.speed_table(ROWS).splitlines()
    header = lines[0].split(" | ")
    assert "(32,100,64,128)" in header[1] and header[-1].startswith("(32,1000,32,64)")
    by_label = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines[2:]}
    assert by_label["LSTM vs `torch.nn`"][0] == "1.01 / 1.05"
    assert by_label["GRU right-padded mask vs the same call unmasked"][-1].startswith("- / 0.90")
    assert by_label["custom cell `RNN` vs Keras 3 on jax (training)"][2] == "- / 19.90"
    streaming = next(line for line in lines if line.startswith("| stateful GRU"))
    assert "1.27 vs `torch.nn`" in streaming and "(2540 us a call)" in streaming  # rnnkit_ms 2.54
    assert not any("SimpleRNN vs `torch.nn`" in line for line in lines)  # no rows, no line


def test_plot_ratios_skips_rows_without_a_ratio(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ratios.png"
    bench_report.plot_ratios(ROWS, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
