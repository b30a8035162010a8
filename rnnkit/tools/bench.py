"""Side-by-side speed of rnnkit and its peers, as ratios measured in one run.

Peers: ``torch.nn.LSTM/GRU/RNN`` (fused; ``pack_padded_sequence`` for masks),
a hand-written ``torch.nn.LSTMCell`` loop, Keras 3 on the torch backend (when
installed) and Keras 3 on jax/XLA in a subprocess (when jax is installed).
Each time is the median of several runs after warm-up (the two sides of
rnnkit-vs-torch.nn and masked-vs-unmasked rows timed in alternation, call by
call; rnnkit and Keras on jax in alternation every few seconds, three rounds
of a few runs each); ``ratio`` is
rnnkit / peer (below 1 means rnnkit is faster). Modes: ``infer`` (forward
under ``no_grad``) and ``train`` (forward + backward of the summed output).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import torch

import rnnkit
from rnnkit.tools.jax_peer import jax_missing, jax_rows
from rnnkit.tools.timing import median_time, paired_times, warm_up

SHAPES = [(32, 100, 64, 128), (64, 50, 128, 256), (1, 1000, 32, 64), (128, 20, 32, 64)]
CELLS = ("lstm", "gru", "simple")
_RNNKIT = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "simple": rnnkit.SimpleRNN}
_TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple": torch.nn.RNN}


def _ms(seconds: float) -> str:
    """Milliseconds for the log's columns: four decimals below 0.1 ms (a one-step call's microseconds)."""
    ms = seconds * 1e3
    return f"{ms:>10.2f}" if ms >= 0.1 else f"{ms:>10.4f}"


def right_padded_mask(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Lengths spread over [steps/2, steps], one row full length."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    return torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)


def runner(forward: Callable[[], torch.Tensor], params: list, mode: str) -> Callable[[], None]:
    if mode == "infer":
        def run():
            with torch.no_grad():
                forward()
    else:
        def run():
            for p in params:
                p.grad = None
            forward().sum().backward()
    return run


def rnnkit_runner(cell: str, shape: tuple, mode: str, mask: torch.Tensor | None = None, bidirectional: bool = False,
                  **layer_kw) -> Callable:
    b, t, d, u = shape
    layer = _RNNKIT[cell](u, return_sequences=True, **layer_kw)
    if bidirectional:
        layer = rnnkit.Bidirectional(layer)
    layer.build((b, t, d))
    x = torch.randn(b, t, d, requires_grad=mode == "train")
    layer.train(mode == "train")
    first = bool(layer_kw.get("return_state"))  # (with return_state: the output of [output, *states])
    return runner(lambda: layer(x, mask=mask)[0] if first else layer(x, mask=mask), list(layer.parameters()) + [x],
                  mode)


STREAM_CALLS = 100  # one-step calls per timed run of the streaming case
STREAM_SHAPE = (1, 1, 32, 64)  # (batch, time, features, units) of one streaming call


def _stream_run(step: Callable[[], Any]) -> Callable[[], None]:
    def run():
        with torch.no_grad():
            for _ in range(STREAM_CALLS):
                step()
    return run


def rnnkit_stream_runner(cell: str) -> Callable:
    """A stateful layer at batch 1 fed one step per call (online inference), ``STREAM_CALLS`` calls."""
    _, _, features, units = STREAM_SHAPE
    layer = _RNNKIT[cell](units, stateful=True)
    layer.build((1, 1, features))
    layer.eval()
    x = torch.randn(1, 1, features)
    return _stream_run(lambda: layer(x))


def torch_stream_runner(cell: str) -> Callable:
    """``torch.nn`` fed one step per call, its states passed back in (``STREAM_CALLS`` calls)."""
    _, _, features, units = STREAM_SHAPE
    module = _TORCH[cell](features, units, batch_first=True)
    x = torch.randn(1, 1, features)
    state: list = [None]

    def step():
        state[0] = module(x, state[0])[1]
    return _stream_run(step)


def torch_runner(cell: str, shape: tuple, mode: str, mask: torch.Tensor | None = None) -> Callable:
    b, t, d, u = shape
    module = _TORCH[cell](d, u, batch_first=True)
    x = torch.randn(b, t, d, requires_grad=mode == "train")
    if mask is None:
        forward = lambda: module(x)[0]  # noqa: E731
    else:
        lengths = mask.sum(1)

        def forward():
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = module(packed)
            return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)[0]
    return runner(forward, list(module.parameters()) + [x], mode)


def lstmcell_loop_runner(shape: tuple, mode: str) -> Callable:
    """A hand-written ``torch.nn.LSTMCell`` loop, what many users write today."""
    b, t, d, u = shape
    cell = torch.nn.LSTMCell(d, u)
    x = torch.randn(b, t, d, requires_grad=mode == "train")

    def forward():
        h = c = x.new_zeros(b, u)
        outs = []
        for i in range(t):
            h, c = cell(x[:, i], (h, c))
            outs.append(h)
        return torch.stack(outs, 1)
    return runner(forward, list(cell.parameters()) + [x], mode)


def keras_available() -> bool:
    if os.environ.get("KERAS_BACKEND", "torch") != "torch" and "keras" not in sys.modules:
        return False
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return False
    return keras.backend.backend() == "torch"


def keras_torch_runner(cell: str, shape: tuple, mode: str, mask: torch.Tensor | None = None, **layer_kw) -> Callable:
    import keras

    b, t, d, u = shape
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}[cell]
    layer = cls(u, return_sequences=True, **layer_kw)
    layer.build((b, t, d))
    x = torch.randn(b, t, d, requires_grad=mode == "train")
    params = [v.value for v in layer.trainable_variables] + [x]
    return runner(lambda: layer(x, mask=mask, training=mode == "train"), params, mode)


def matmul_peak_gflops(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    s = median_time(lambda: a @ b, repeats=10)
    return 2 * n**3 / s / 1e9


def lstm_flops(shape: tuple, mode: str) -> float:
    """Matmul FLOPs of an LSTM pass (backward counted as twice the forward)."""
    b, t, d, u = shape
    fwd = 2.0 * b * t * (d + u) * 4 * u
    return fwd if mode == "infer" else 3 * fwd


def compare(cells=CELLS, shapes=SHAPES, against=("torch", "keras", "jax"), modes=("infer", "train"),
            extras: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """Run the comparison matrix; returns one row per (case, peer)."""
    torch.manual_seed(0)
    rows: list[dict] = []

    def add(name, cell, shape, mode, ours, peer, theirs):
        row = {"case": name, "cell": cell, "shape": list(shape), "mode": mode, "peer": peer,
               "rnnkit_ms": ours * 1e3, "peer_ms": theirs * 1e3, "ratio": ours / theirs}
        rows.append(row)
        log(f"{name:<27}{cell:<7}{str(tuple(shape)):<22}{mode:<6}{peer:<14}"
            f"{_ms(ours)}{_ms(theirs)}{ours / theirs:>8.2f}")

    log(f"{'case':<27}{'cell':<7}{'shape':<22}{'mode':<6}{'peer':<14}{'rnnkit ms':>10}{'peer ms':>10}{'ratio':>8}")
    use_keras = "keras" in against and keras_available()
    if cells and shapes and modes:  # (the first row's two sides, until the process has warmed up)
        first = (cells[0], shapes[0], modes[0])
        warm_up([rnnkit_runner(*first), *([torch_runner(*first)] if "torch" in against else [])])
    ours_cache: dict = {}
    jax_cases: list[tuple[dict, list]] = []  # (Keras-on-jax case, [(row name, rnnkit's run of the case)])
    for cell in cells:
        for shape in shapes:
            for mode in modes:
                run = rnnkit_runner(cell, shape, mode)
                if "torch" in against:
                    ours = paired_row(add, "fusable", cell, shape, mode, run, "torch.nn",
                                      torch_runner(cell, shape, mode))
                else:
                    ours = median_time(run)
                ours_cache[(cell, tuple(shape), mode)] = ours
                jax_cases.append(({"cell": cell, "shape": list(shape), "mode": mode}, [("vs XLA", run)]))
                if use_keras:
                    paired_row(add, "unmasked", cell, shape, mode, run, "keras-torch",
                               keras_torch_runner(cell, shape, mode))
    if extras:
        masked_cases(cells, shapes, modes, against, use_keras, add, jax_cases)
        for shape in shapes:
            for mode in modes:
                if "torch" in against:
                    paired_row(add, "vs LSTMCell loop", "lstm", shape, mode, rnnkit_runner("lstm", shape, mode),
                               "LSTMCell loop", lstmcell_loop_runner(shape, mode))
            if use_keras:
                hs: dict[str, Any] = {"recurrent_activation": "hard_sigmoid"}
                paired_row(add, "non-fusable", "lstm", shape, "train", rnnkit_runner("lstm", shape, "train", **hs),
                           "keras-torch", keras_torch_runner("lstm", shape, "train", **hs))
        for cell in cells:  # online inference: one step per call at batch 1, per-call times
            run = rnnkit_stream_runner(cell)
            ours, theirs = paired_times(run, torch_stream_runner(cell))
            if "torch" in against:
                add("streaming", cell, STREAM_SHAPE, "infer", ours / STREAM_CALLS, "torch.nn", theirs / STREAM_CALLS)
            jax_cases.append(({"cell": cell, "shape": list(STREAM_SHAPE), "mode": "stream", "calls": STREAM_CALLS},
                              [("streaming", run)]))
        from rnnkit.tools.bench_custom import compiled_loop_runners, custom_cell_runners  # (it imports this module)

        for shape in shapes:
            if use_keras:
                run, keras_run = custom_cell_runners(shape)
                paired_row(add, "custom cell", "minimal", shape, "train", run, "keras-torch", keras_run)
            run_compiled, run_plain, compile_s = compiled_loop_runners(shape)
            paired_row(add, "compile=True", "minimal", shape, "train", run_compiled, "plain loop", run_plain)
            log(f"compile=True {tuple(shape)}: first call (compilation) {compile_s:.1f} s")
            rows.append({"case": "compile time", "shape": list(shape), "seconds": compile_s})
            jax_cases.append(({"cell": "minimal", "shape": list(shape), "mode": "train"},
                              [("custom cell", run_plain), ("compile=True", run_compiled)]))
    if "jax" in against and jax_missing() is None:
        jax_rows(jax_cases, add)
    if extras and "lstm" in cells:
        peak = matmul_peak_gflops()
        for shape in shapes:
            for mode in modes:
                cached = ours_cache.get(("lstm", tuple(shape), mode))
                if cached:
                    gf = lstm_flops(shape, mode) / cached / 1e9
                    log(f"LSTM {tuple(shape)} {mode}: {gf:.1f} GFLOP/s = {gf / peak:.0%} of matmul peak {peak:.1f}")
                    rows.append({"case": "gflops", "cell": "lstm", "shape": list(shape), "mode": mode,
                                 "gflops": gf, "peak_gflops": peak})
    return rows


def paired_row(add: Callable, name: str, cell: str, shape: tuple, mode: str, run: Callable[[], Any], peer: str,
               peer_run: Callable[[], Any]) -> float:
    """``add``'s row for rnnkit's ``run`` against ``peer``'s ``peer_run``, the two timed in alternation
    (:func:`rnnkit.tools.timing.paired_times`); rnnkit's seconds."""
    ours, theirs = paired_times(run, peer_run)
    add(name, cell, shape, mode, ours, peer, theirs)
    return ours


MASK_SHAPES_EXTRA = [(32, 1000, 32, 64)]  # masked cases also run here (a long right-padded batch)
VARIANT_SHAPES = [(32, 100, 64, 128), (32, 1000, 32, 64)]  # go_backwards / return_state / Bidirectional, masked


def masked_cases(cells, shapes, modes, against, use_keras: bool, add: Callable,
                 jax_cases: list) -> None:
    """Right-padded masks (lengths over [T/2, T]): each call against the same call unmasked ("mask cost",
    the price of the mask), torch.nn on packed sequences and Keras; LSTM variants at ``VARIANT_SHAPES``."""
    full = list(shapes) == SHAPES  # the extra shapes join the full run only
    for cell in cells:
        for shape in list(shapes) + [s for s in MASK_SHAPES_EXTRA if full and s not in shapes]:
            mask = right_padded_mask(shape[0], shape[1])
            for mode in modes:
                run = rnnkit_runner(cell, shape, mode, mask)
                paired_row(add, "mask cost", cell, shape, mode, run, "rnnkit unmasked",
                           rnnkit_runner(cell, shape, mode))
                if "torch" in against:
                    paired_row(add, "masked right-padded", cell, shape, mode, run, "torch.nn+pack",
                               torch_runner(cell, shape, mode, mask))
                if use_keras and shape in shapes:
                    paired_row(add, "masked right-padded", cell, shape, mode, run, "keras-torch",
                               keras_torch_runner(cell, shape, mode, mask))
                jax_cases.append(({"cell": cell, "shape": list(shape), "mode": mode, "mask": True},
                                  [("masked right-padded", run)]))
    if "lstm" not in cells:
        return
    variants: dict[str, dict] = {"go_backwards": {"go_backwards": True}, "return_state": {"return_state": True},
                                 "Bidirectional": {"bidirectional": True}}
    for shape in VARIANT_SHAPES if full else shapes[:1]:
        mask = right_padded_mask(shape[0], shape[1])
        for name, kw in variants.items():
            for mode in modes:
                paired_row(add, f"mask cost {name}", "lstm", shape, mode,
                           rnnkit_runner("lstm", shape, mode, mask, **kw), "rnnkit unmasked",
                           rnnkit_runner("lstm", shape, mode, **kw))
