"""The ``rnnkit`` command line (also ``python -m rnnkit``).

Subcommands::

    rnnkit demo   train a character-level model of Python source, write metrics, plot and sample
    rnnkit bench  side-by-side speed of rnnkit and its peers (rnnkit.tools.bench.compare)
    rnnkit inspect FILE      layers, shapes, parameters and paths of a Keras model file
    rnnkit convert FILE OUT  a Keras model file as a .keras archive or a torch state_dict file

Each subcommand is one ``add_<name>(subparsers)`` function that builds its
parser and sets ``handler``, a function ``(args) -> exit status``; adding a
command is writing one such function and listing it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rnnkit.tools.allocator import add_malloc_option, follow_malloc_option

CELL_CHOICES = ("lstm", "gru", "simple")
PEERS = ("torch", "keras", "jax")
MODES = ("infer", "train")


# ------------------------------------------------------------ argument types
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def shape_arg(text: str) -> tuple[int, int, int, int]:
    """``B,T,D,H``: batch, timesteps, input features, units; four positive integers."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected four positive integers B,T,D,H (batch, timesteps, input features, units), got {text!r}"
        )
    return values  # type: ignore[return-value]


def choice_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated subset of ``choices`` (order kept, duplicates dropped)."""

    def parse(text: str) -> tuple[str, ...]:
        items = [p.strip().lower() for p in text.split(",") if p.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}")
        unknown = [p for p in items if p not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown value(s) {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}"
            )
        return tuple(dict.fromkeys(items))

    parse.__name__ = "list"  # argparse names the type in some messages
    return parse


# ------------------------------------------------------------------- demo
def add_demo(subparsers) -> None:
    from rnnkit.tools.demo import DEFAULT_OUT, DEFAULT_STEPS, Hyper

    hyper = Hyper()  # the demo's settings, for the help text

    p = subparsers.add_parser(
        "demo",
        help="train a character-level language model of Python source",
        description=(
            "Train a character-level language model (Embedding -> 2 stacked rnnkit recurrent layers -> Linear) "
            "on the Python standard library's source text, hold out the last 10% for a validation loss, and "
            "write DIR/metrics.json, DIR/loss.png and DIR/sample.txt (text generated one character at a time). "
            "The default run takes about 3 minutes on two otherwise idle CPU cores; --steps 80 already shows "
            'the loss falling. Needs the demo extra: pip install "rnnkit[demo]".'
        ),
    )
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, metavar="N",
                   help=f"training steps, each a batch of {hyper.batch_size} windows of {hyper.seq_len} characters "
                        "(default: %(default)s)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="output directory, created if missing (default: ./%(default)s)")
    p.add_argument("--cell", choices=CELL_CHOICES, default="lstm",
                   help="recurrent layer: LSTM, GRU or SimpleRNN (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed for initialization, batches and sampling (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's own choice); on a busy machine 1 can be faster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_malloc_option(p, "the demo keeps the memory it frees: the same training step then runs at one speed, "
                         "not one per process")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from rnnkit.tools import demo

    try:
        demo.require_extras()
    except demo.MissingExtrasError as exc:
        print(f"rnnkit demo: {exc}", file=sys.stderr)
        return 1
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    follow_malloc_option(args.malloc_as_is)  # (elsewhere than glibc: nothing to do)
    demo.run(steps=args.steps, out=args.out, cell=args.cell, seed=args.seed, progress=not args.no_progress)
    return 0


# ------------------------------------------------------------------ bench
def add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time rnnkit layers against torch.nn (and Keras 3, when installed)",
        description=(
            "Time rnnkit's recurrent layers side by side with their peers and print one row per case: "
            "rnnkit ms, peer ms and ratio = rnnkit / peer (below 1: rnnkit is faster). The keras column "
            "appears only when Keras 3 on the torch backend is importable. With --layer all and no --shape "
            "the extra cases (masks, the LSTMCell loop, custom cells, compile, GFLOP/s) run too."
        ),
    )
    p.add_argument("--layer", choices=CELL_CHOICES + ("all",), default="all",
                   help="which layer to time (default: %(default)s)")
    p.add_argument("--shape", type=shape_arg, default=None, metavar="B,T,D,H",
                   help="one shape: batch, timesteps, input features, units (default: the built-in set of shapes)")
    p.add_argument("--against", type=choice_list(PEERS), default=("torch", "keras"), metavar="PEERS",
                   help=f"comma-separated peers from {','.join(PEERS)} (default: torch,keras)")
    p.add_argument("--mode", type=choice_list(MODES), default=MODES, metavar="MODES",
                   help="comma-separated modes: infer (forward, no_grad), train (forward + backward) "
                        "(default: infer,train)")
    add_malloc_option(p, "freed memory is kept, in this process and the Keras-on-jax subprocess alike, as "
                         "benchmarks/bench_layers.py does")
    p.set_defaults(handler=run_bench)


def _drop_peer(against: tuple, peer: str, note: str, fix: str) -> tuple:
    """``against`` without ``peer``, saying why on stderr (and that nothing is left, when so)."""
    print(f"note: {note}", file=sys.stderr)
    left = tuple(a for a in against if a != peer)
    if not left:
        print(f"rnnkit bench: no peer left to compare against ({fix}, or add --against torch)", file=sys.stderr)
    return left


def run_bench(args: argparse.Namespace) -> int:
    from rnnkit.tools import bench

    cells = bench.CELLS if args.layer == "all" else (args.layer,)
    shapes = bench.SHAPES if args.shape is None else [args.shape]
    against = args.against
    why = bench.jax_missing() if "jax" in against else None
    if why is not None:
        against = _drop_peer(against, "jax", f"no keras-jax column: {why}", "install jax")
    if "keras" in against and not bench.keras_available():
        against = _drop_peer(against, "keras", "Keras 3 on the torch backend is not importable; no keras column",
                             "install keras")
    if not against:
        return 1
    extras = args.layer == "all" and args.shape is None
    follow_malloc_option(args.malloc_as_is)
    bench.compare(cells=cells, shapes=shapes, against=against, modes=args.mode, extras=extras,
                  log=lambda line: print(line, flush=True))
    return 0


# ------------------------------------------------------------ model files
def add_inspect(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect", help="describe a Keras model file (layers, shapes, parameters, paths)",
        description="Load a Keras model file (.keras, or .h5 from Keras 3, tf.keras 2 or Keras 2; nothing in it is "
                    "executed), run it once on zeros and print each layer's class, output shape, parameter count "
                    "and, for recurrent layers, the path its calls take (rnnkit.explain).",
    )
    p.add_argument("file", help="the Keras model file")
    p.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from rnnkit.tools.model_files import inspect_file

    try:
        print(inspect_file(args.file))
    except (OSError, ValueError) as err:
        print(f"rnnkit inspect: {err}", file=sys.stderr)
        return 1
    return 0


def add_convert(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a Keras model file to .keras or to a torch state_dict file",
        description="Load a Keras model file and write it as a Keras 3 archive (OUT ending in .keras) or as a torch "
                    "file {state_dict, keras_config, keras_version} that torch.load(OUT, weights_only=True) reads; "
                    "rnnkit.model_from_keras_config rebuilds the model from the config.",
    )
    p.add_argument("file", help="the Keras model file")
    p.add_argument("out", help="the file to write (.keras, or e.g. .pt)")
    p.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from rnnkit.tools.model_files import convert_file

    try:
        print(convert_file(args.file, args.out))
    except (OSError, ValueError, TypeError) as err:
        print(f"rnnkit convert: {err}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------- main
COMMANDS: tuple[Callable, ...] = (add_demo, add_bench, add_inspect, add_convert)


def build_parser() -> argparse.ArgumentParser:
    from rnnkit import __version__

    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="rnnkit: the Keras recurrent-layer system as a PyTorch library.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
