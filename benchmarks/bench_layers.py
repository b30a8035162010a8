"""rnnkit vs torch.nn, a hand-written LSTMCell loop, Keras 3 (torch) and Keras 3 (jax).

    python benchmarks/bench_layers.py [--out results.json] [--plot ratios.png] [--markdown table.md] [--quick]

Prints one table of times and ratios (rnnkit / peer) from a single run, and
GFLOP/s of the LSTM against the machine's matmul peak. Use 2 threads to match
CI machines: ``OMP_NUM_THREADS=2``.
"""

import argparse
import atexit
import json
import os
import shutil
import tempfile

# compile=True's first call is timed with empty compiler caches (what a new user pays), not with the
# caches of an earlier run; a TORCHINDUCTOR_CACHE_DIR set by the caller is kept
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnkit-bench-inductor-")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

import torch  # noqa: E402

from rnnkit.tools.allocator import add_malloc_option, follow_malloc_option  # noqa: E402
from rnnkit.tools.bench import SHAPES, compare  # noqa: E402
from rnnkit.tools.bench_report import plot_ratios, speed_table  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", help="write the rows as JSON here")
parser.add_argument("--plot", help="write the ratios as a PNG bar chart here (log scale)")
parser.add_argument("--quick", action="store_true", help="first shape only, no jax")
parser.add_argument("--markdown", help="write the README's speed table (markdown) here")
add_malloc_option(parser, "they are fixed high, for this process and the Keras-on-jax subprocess alike")
args = parser.parse_args()
torch.set_num_threads(2)
# Freed memory kept in the process, as `rnnkit demo` and bench_demo.py keep it: under glibc's default thresholds,
# which move with the frees a process happens to see, a call's large tensors land on fresh pages in some processes
# and stretches of a run and not in others (the masked LSTM at (32,1000,32,64) took 7.7 ms against torch.nn and
# 15.3 ms a few minutes later against Keras on jax, in two runs of three)
print(follow_malloc_option(args.malloc_as_is))
shapes = SHAPES[:1] if args.quick else SHAPES
against = ("torch", "keras") if args.quick else ("torch", "keras", "jax")
rows = compare(shapes=shapes, against=against)
if args.out:
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
if args.plot:
    plot_ratios(rows, args.plot)
if args.markdown:
    with open(args.markdown, "w") as f:
        f.write(speed_table(rows) + "\n")
