"""rnnkit's native kernel against torch's kernels, at the kernel level (no layer around them).

    python benchmarks/bench_native.py [--threads 1] [--cells lstm,gru,rnn_tanh] [--shapes 1,1000,32,64:32,100,64,128]

For each cell and (batch, time, features, units), inference (no_grad) and
training (forward + backward of the summed output): the time of torch's kernel
(``rnnkit.kernels.ops.kernel_call``: oneDNN's LSTM, torch's GRU/RNN) and the
native kernel's time as a ratio to it, with the recurrent product on the
register-blocked loop ("loop") and on one BLAS call per step ("blas"), then a
right-padded mask (lengths over [T/2, T]) on torch's kernels (one unmasked call,
``right_padded_call``) and on the native kernel, both as ratios to torch's
unmasked time. These measurements set ``rnnkit.kernels.native.preferred``,
``LSTM_UP_TO`` and ``BLAS_ABOVE``.
"""

import argparse

import torch

from rnnkit.kernels import native
from rnnkit.kernels.ops import kernel_call, right_padded_call
from rnnkit.tools.bench import median_time, right_padded_mask, runner

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
SHAPES = "1,1000,32,64:32,100,64,128:128,20,32,64:64,50,128,256:32,500,32,64:8,100,32,64"


def case(mode: str, shape: tuple, train: bool) -> str:
    b, t, d, u = shape
    g = GATES[mode]
    x = torch.randn(b, t, d)
    weights = [torch.randn(g * u, d) * 0.1, torch.randn(g * u, u) * 0.1, torch.randn(g * u) * 0.1,
               torch.randn(g * u) * 0.1]
    hx = [torch.zeros(b, u) for _ in range(2 if mode == "lstm" else 1)]
    mask = right_padded_mask(b, t)
    lengths = mask.sum(1)

    def timed(fn):
        ws = [w.clone().requires_grad_(train) for w in weights]
        xr = x.clone().requires_grad_(train)
        return median_time(runner(lambda: fn(xr, ws)[0], ws + [xr], "train" if train else "infer"),
                           budget_s=0.5) * 1e3

    torch_ms = timed(lambda x, w: kernel_call(x, [h.unsqueeze(0) for h in hx], w, mode, True, False, None))
    ratios = []
    for blas in (False, True):
        native.BLAS_ABOVE = -1 if blas else 1 << 62
        ratios.append(timed(lambda x, w: native.native_call(x, None, hx, w, mode, True, False, False)) / torch_ms)
    native.BLAS_ABOVE = 1 << 62
    masked_torch = timed(lambda x, w: right_padded_call(x, mask, lengths, hx, w, mode, True, False, False)) / torch_ms
    masked_native = timed(lambda x, w: native.native_call(x, mask, hx, w, mode, True, False, False)) / torch_ms
    return (f"{'train' if train else 'infer'} torch {torch_ms:.2f} ms, native loop {ratios[0]:.2f} blas "
            f"{ratios[1]:.2f}, masked: torch {masked_torch:.2f} native {masked_native:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cells", default="lstm,gru,rnn_tanh")
    parser.add_argument("--shapes", default=SHAPES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    why = native.unavailable()
    if why is not None:
        raise SystemExit(f"native kernel unavailable: {why}")
    print(f"torch threads: {args.threads}; ratios are time / torch's unmasked kernel time")
    saved = native.BLAS_ABOVE
    try:
        for mode in args.cells.split(","):
            for text in args.shapes.split(":"):
                shape = tuple(int(v) for v in text.split(","))
                print(mode, shape, "|", case(mode, shape, False), "|", case(mode, shape, True), flush=True)
    finally:
        native.BLAS_ABOVE = saved


if __name__ == "__main__":
    main()
