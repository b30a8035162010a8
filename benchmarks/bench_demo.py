"""``rnnkit demo`` against its own bare training step, in one process.

    python benchmarks/bench_demo.py [--steps 150] [--cells lstm,gru] [--threads 2]

The bare step is the demo's model (``rnnkit.tools.demo.CharModel``, default
``Hyper``) doing forward, cross-entropy, backward and an Adam step on one fixed
batch, timed alone (median of ``--steps`` steps after warm-up). The demo is
``rnnkit.tools.demo.run(steps=...)`` (no progress bar), whose
``chars_per_second`` counts the whole training loop (batch sampling, gradient
clipping, learning-rate schedule, loss logging). Prints both in characters per
second and the demo's share of the bare step's speed (the bare step is timed
before and after the demo, and averaged: the machine may drift meanwhile).
"""

import argparse
import statistics
import tempfile
import time

import torch

from rnnkit.tools import demo


def bare_step_chars_per_second(cell: str, steps: int) -> float:
    hyper = demo.Hyper()
    torch.manual_seed(0)
    model = demo.CharModel(cell, hyper)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=hyper.lr)
    x = torch.randint(0, demo.demo_data.VOCAB_SIZE, (hyper.batch_size, hyper.seq_len))
    y = torch.randint(0, demo.demo_data.VOCAB_SIZE, (hyper.batch_size, hyper.seq_len))

    def step():
        loss = demo.loss_of(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return hyper.batch_size * hyper.seq_len / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    for cell in args.cells.split(","):
        before = bare_step_chars_per_second(cell, args.steps)
        with tempfile.TemporaryDirectory() as out:
            metrics = demo.run(steps=args.steps, out=out, cell=cell, progress=False, log=lambda _: None)
        after = bare_step_chars_per_second(cell, args.steps)
        bare = (before + after) / 2  # timed before and after the demo: a drifting machine weighs on both
        ran = metrics["chars_per_second"]
        print(f"{cell}: demo {ran:,.0f} chars/s, bare step {bare:,.0f} chars/s (before {before:,.0f}, after "
              f"{after:,.0f}): demo at {ran / bare:.0%}")


if __name__ == "__main__":
    main()
