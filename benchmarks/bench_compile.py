"""torch.compile over rnnkit layers: compile time, and compiled vs eager speed.

    python benchmarks/bench_compile.py [--out results.json]

For an LSTM, a GRU (masked, right-padded) and an RNN over a custom cell, one
row per mode (infer, train): the first compiled call's time (compilation
included), then the median time of compiled and eager calls and their ratio
(compiled / eager; below 1: compiling pays). 2 threads, as on CI machines.
Fusable layers compile to one opaque kernel op (rnnkit::rnn_kernel); the
custom cell's loop is unrolled for the traced length.
"""

import argparse
import json
import time

import torch

import rnnkit
from rnnkit.tools.bench import median_time, runner
from rnnkit.tools.bench_custom import MinimalTanhCell

B, T, D, H = 32, 50, 32, 64


def cases():
    mask = torch.arange(T) < torch.randint(T // 2, T + 1, (B, 1))
    yield "LSTM", rnnkit.LSTM(H, return_sequences=True), {}
    yield "GRU masked", rnnkit.GRU(H, return_sequences=True), {"mask": mask}
    yield "RNN(custom cell)", rnnkit.RNN(MinimalTanhCell(H), return_sequences=True), {}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(B, T, D, requires_grad=True)
    rows = []
    print(f"{'layer':<18}{'mode':<7}{'first call s':>13}{'compiled ms':>13}{'eager ms':>10}{'ratio':>8}")
    for name, layer, kwargs in cases():
        layer(x, **kwargs)
        for mode in ("infer", "train"):
            torch._dynamo.reset()
            compiled = torch.compile(layer, fullgraph=True)
            run_c = runner(lambda: compiled(x, **kwargs), list(layer.parameters()) + [x], mode)
            t0 = time.perf_counter()
            run_c()
            first = time.perf_counter() - t0
            t_c = median_time(run_c)
            t_e = median_time(runner(lambda: layer(x, **kwargs), list(layer.parameters()) + [x], mode))
            rows.append({"layer": name, "mode": mode, "first_call_s": first, "compiled_ms": t_c * 1e3,
                         "eager_ms": t_e * 1e3, "ratio": t_c / t_e, "shape": [B, T, D, H]})
            print(f"{name:<18}{mode:<7}{first:>13.1f}{t_c * 1e3:>13.2f}{t_e * 1e3:>10.2f}{t_c / t_e:>8.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
