"""rnnkit vs torch.nn on a CUDA GPU: the cuDNN path, masked and unmasked, float32 and autocast.

    python benchmarks/bench_gpu.py [--out results.json]

Both sides run on the GPU (torch.nn: ``LSTM/GRU/RNN``, with
``pack_padded_sequence`` for masks); every timed call ends with
``torch.cuda.synchronize()``; rnnkit and torch.nn are timed in alternation
(``rnnkit.tools.bench.paired_times``). Precisions: float32, and bfloat16 /
float16 under ``torch.autocast("cuda")``. Run by ``benchmarks/gpu_check.sh``.
"""

import argparse
import json

import torch

from rnnkit.tools.bench import CELLS, SHAPES, paired_times, right_padded_mask, rnnkit_runner, torch_runner

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def on_gpu(make_runner, precision):
    """A runner built on the GPU (default device cuda), run under autocast and synchronized."""
    with torch.device("cuda"):
        run = make_runner()

    def timed():
        if precision is None:
            run()
        else:
            with torch.autocast("cuda", dtype=precision):
                run()
        torch.cuda.synchronize()
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'cell':<7}{'shape':<22}{'mode':<6}{'precision':<10}{'mask':<7}"
          f"{'rnnkit ms':>10}{'torch ms':>10}{'ratio':>8}")
    rows = []
    for cell in CELLS:
        for shape in SHAPES + [(32, 1000, 32, 64)]:
            for mode in ("infer", "train"):
                for name, precision in PRECISIONS.items():
                    for masked in (False, True):
                        mask = right_padded_mask(shape[0], shape[1]).cuda() if masked else None
                        ours, theirs = paired_times(
                            on_gpu(lambda: rnnkit_runner(cell, shape, mode, mask), precision),
                            on_gpu(lambda: torch_runner(cell, shape, mode, None if mask is None else mask.cpu()),
                                   precision))
                        rows.append({"cell": cell, "shape": list(shape), "mode": mode, "precision": name,
                                     "masked": masked, "rnnkit_ms": ours * 1e3, "torch_ms": theirs * 1e3,
                                     "ratio": ours / theirs})
                        print(f"{cell:<7}{str(shape):<22}{mode:<6}{name:<10}{str(masked):<7}"
                              f"{ours * 1e3:>10.3f}{theirs * 1e3:>10.3f}{ours / theirs:>8.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
