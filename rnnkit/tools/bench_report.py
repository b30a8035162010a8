"""What ``rnnkit.tools.bench.compare``'s rows become: the README's speed table and the ratio chart."""

from __future__ import annotations

from rnnkit.tools.bench import MASK_SHAPES_EXTRA, SHAPES

_TABLE = [  # (README row label, case, cell, peer)
    ("{cell} vs `torch.nn`", "fusable", None, "torch.nn"),
    ("{cell} vs Keras 3 on jax (XLA)", "vs XLA", None, "keras-jax"),
    ("{cell} vs Keras 3 on torch", "unmasked", None, "keras-torch"),
    ("{cell} right-padded mask vs the same call unmasked", "mask cost", None, "rnnkit unmasked"),
    ("masked {cell} vs `torch.nn` + packing", "masked right-padded", None, "torch.nn+pack"),
    ("masked {cell} vs Keras 3 on jax", "masked right-padded", None, "keras-jax"),
    ("masked LSTM, go_backwards, vs unmasked", "mask cost go_backwards", "lstm", "rnnkit unmasked"),
    ("masked LSTM, return_state, vs unmasked", "mask cost return_state", "lstm", "rnnkit unmasked"),
    ("masked Bidirectional(LSTM) vs unmasked", "mask cost Bidirectional", "lstm", "rnnkit unmasked"),
    ("LSTM vs a `torch.nn.LSTMCell` loop", "vs LSTMCell loop", "lstm", "LSTMCell loop"),
    ("custom cell `RNN` vs Keras 3 on torch (training)", "custom cell", "minimal", "keras-torch"),
    ("custom cell `RNN` vs Keras 3 on jax (training)", "custom cell", "minimal", "keras-jax"),
    ("custom cell `RNN(compile=True)` vs its plain loop (training)", "compile=True", "minimal", "plain loop"),
    ("custom cell `RNN(compile=True)` vs Keras 3 on jax (training)", "compile=True", "minimal", "keras-jax"),
]
_NAMES = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}


def speed_table(rows: list[dict]) -> str:
    """The README's speed table (markdown) from :func:`compare`'s rows: one line per comparison, one
    column per shape, ``inference / training`` ratios (rnnkit / peer)."""
    shapes = [tuple(s) for s in SHAPES + MASK_SHAPES_EXTRA]
    found = {(r["case"], r["cell"], tuple(r["shape"]), r["peer"], r["mode"]): r["ratio"] for r in rows if "ratio" in r}
    lines = ["| comparison | " + " | ".join(str(s).replace(" ", "") for s in shapes) + " |",
             "| --- |" + " --- |" * len(shapes)]
    for label, case, only, peer in _TABLE:
        for cell in [only] if only else list(_NAMES):
            cells = []
            for shape in shapes:
                ratios = [found.get((case, cell, shape, peer, mode)) for mode in ("infer", "train")]
                cells.append(" / ".join("-" if q is None else f"{q:.2f}" for q in ratios)
                             if any(q is not None for q in ratios) else "")
            if any(cells):
                lines.append(f"| {label.format(cell=_NAMES.get(cell, cell))} | " + " | ".join(cells) + " |")
    stream = {(r["cell"], r["peer"]): r for r in rows if r.get("case") == "streaming"}
    for cell, name in _NAMES.items():
        parts = [f"{stream[(cell, p)]['ratio']:.2f} vs {label}" for p, label in
                 (("torch.nn", "`torch.nn`"), ("keras-jax", "Keras 3 on jax")) if (cell, p) in stream]
        if parts:
            us = next(r["rnnkit_ms"] for (c, _), r in stream.items() if c == cell) * 1e3  # (every row has it)
            lines.append(f"| stateful {name}, one step per call at batch 1 ({us:.0f} us a call) | "
                         + "; ".join(parts) + " |" + " |" * (len(shapes) - 1))
    return "\n".join(lines)


def plot_ratios(rows: list[dict], path: str) -> None:
    """A bar per (case, peer) of ``rnnkit / peer`` on a log scale, 1.0 marked; written as PNG with Agg.

    Bars below the line are cases where rnnkit is faster. Needs matplotlib (the ``demo`` extra).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in rows if "ratio" in r]  # (compile-time and GFLOP/s rows have no ratio)
    labels = [f"{r['case']} {r['cell']} {tuple(r['shape'])} {r['mode']} vs {r['peer']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    fig = Figure(figsize=(9, 0.2 * len(rows) + 1.2), dpi=72)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["tab:green" if q <= 1.0 else "tab:red" for q in ratios]
    ax.barh(range(len(rows)), [q - 1.0 for q in ratios], left=1.0, color=colors)  # bars grow from 1.0
    low, high = min(ratios + [1.0]), max(ratios + [1.0])
    ax.set_xlim(low / 1.15, high * 1.15)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter("{x:.2g}")
    ax.xaxis.set_minor_formatter("{x:.2g}")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("time ratio rnnkit / peer (log scale; below 1: rnnkit faster)")
    fig.tight_layout()
    fig.savefig(path)
