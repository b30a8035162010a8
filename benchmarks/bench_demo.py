"""``rnnkit demo`` against its own bare training step, in one process.

    python benchmarks/bench_demo.py [--steps 150] [--cells lstm,gru] [--threads 2] [--malloc-as-is]

The bare step is the demo's model (``rnnkit.tools.demo.CharModel``, default
``Hyper``) doing forward, cross-entropy, backward and an Adam step on one fixed
batch, timed alone (characters over the time of ``--steps`` steps after warm-up,
the demo's own measure). The demo is
``rnnkit.tools.demo.run(steps=...)`` (no progress bar), whose
``chars_per_second`` counts the whole training loop (batch sampling, gradient
clipping, learning-rate schedule, loss logging). Prints both in characters per
second and the demo's share of the bare step's speed (the bare step is timed
before and after the demo, and averaged: the machine may drift meanwhile). Each
measurement runs in a process of its own, which keeps the memory it frees, as
``rnnkit demo`` does (:func:`rnnkit.tools.allocator.keep_freed_memory`;
``--malloc-as-is`` leaves glibc's defaults, under which the same step runs at
speeds that vary from process to process).
"""

import argparse
import subprocess
import sys
import tempfile
import time

import torch

from rnnkit.tools import demo
from rnnkit.tools.allocator import add_malloc_option, follow_malloc_option, unavailable


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
    start = time.perf_counter()
    for _ in range(steps):
        step()
    # throughput over the whole run, as the demo counts its own (a median would leave out the slow steps a
    # busy machine makes, which the demo's count includes)
    return hyper.batch_size * hyper.seq_len * steps / (time.perf_counter() - start)


def demo_chars_per_second(cell: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        return demo.run(steps=steps, out=out, cell=cell, progress=False, log=lambda _: None)["chars_per_second"]


def in_fresh_process(what: str, cell: str, steps: int, threads: int, malloc_as_is: bool) -> float:
    """One measurement in its own process, as a user runs ``rnnkit demo``: nothing an earlier measurement
    left behind (seen on a 2-vCPU machine: the LSTM demo at 68-72% of its bare step in four one-process runs,
    73-92% with a process each; the same demo alone ran at 60-91k characters/s in three runs back to back)."""
    command = [sys.executable, __file__, "--measure", what, "--cells", cell, "--steps", str(steps),
               "--threads", str(threads)] + (["--malloc-as-is"] if malloc_as_is else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--threads", type=int, default=2)
    add_malloc_option(parser, "each measuring process keeps the memory it frees")
    parser.add_argument("--measure", choices=["bare", "demo"], help=argparse.SUPPRESS)  # (the child processes)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure:
        follow_malloc_option(args.malloc_as_is)
        measure = bare_step_chars_per_second if args.measure == "bare" else demo_chars_per_second
        print(measure(args.cells, args.steps))
        return
    memory = "glibc malloc as it is" if args.malloc_as_is else f"freed memory kept: {unavailable() or 'yes'}"
    print(f"torch threads: {args.threads}; each measurement in its own process; {memory}")
    for cell in args.cells.split(","):
        before, ran, after = (in_fresh_process(what, cell, args.steps, args.threads, args.malloc_as_is)
                              for what in ("bare", "demo", "bare"))
        bare = (before + after) / 2  # timed before and after the demo: a drifting machine weighs on both
        print(f"{cell}: demo {ran:,.0f} chars/s, bare step {bare:,.0f} chars/s (before {before:,.0f}, after "
              f"{after:,.0f}): demo at {ran / bare:.0%}")


if __name__ == "__main__":
    main()
