"""``rnnkit demo``: a character-level language model of Python source.

``torch.nn.Embedding`` -> two stacked rnnkit recurrent layers of one cell
type (``LSTM``, ``GRU`` or ``SimpleRNN``, ``return_sequences=True``) ->
``torch.nn.Linear``, trained with Adam (gradient clipping, cosine learning-rate
decay) on random windows of the Python standard library's source
(:mod:`rnnkit.tools.demo_data`). The last 10% of the text is held out for the
validation loss. Writes ``metrics.json``, ``loss.png`` and ``sample.txt``;
the sample is generated one character at a time, each layer carrying its
state from call to call through ``return_state=True`` / ``initial_state=``.

Needs the ``demo`` extra (tqdm for the progress bar, matplotlib for the
plot): ``pip install "rnnkit[demo]"``.

From Python: ``rnnkit.tools.demo.run(steps=80, out="demo-out", cell="gru")``.

Speed (LSTM, 2 x 192 units, 2,048 characters a step, on a 2-vCPU AMD EPYC):
60-90k characters/s with torch's default two threads, so the default 6,000
steps take about 3 minutes (measured: 189 s, 66k characters/s) and
``--steps 80`` about 5-10 s. The fused kernel's two threads meet at every
timestep: when other processes share the cores they wait on each other and a
run can slow down 10-20x, while ``--threads 1`` keeps 45-59k characters/s.
The thread count changes the losses only by float rounding.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.tools import demo_data

CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "simple": rnnkit.SimpleRNN}
DEFAULT_STEPS = 6000
DEFAULT_OUT = "rnnkit-demo"
PROMPT = "import os\nimport sys\n\n\n"
EXTRAS_HINT = 'pip install "rnnkit[demo]"'


class MissingExtrasError(RuntimeError):
    """tqdm or matplotlib (the ``demo`` extra) is not installed."""


@dataclass
class Hyper:
    """Model and training settings (the same for every cell type)."""

    embed_dim: int = 48
    units: int = 192
    layers: int = 2
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 6e-3
    lr_final_fraction: float = 0.1  # cosine decay of the learning rate down to lr * this
    clip_norm: float = 1.0
    val_fraction: float = 0.1
    val_windows: int = 64
    evals: int = 10  # validation points over the run
    final_window: int = 10  # final_loss = mean of the last this-many step losses
    sample_chars: int = 1500
    temperature: float = 0.8


def require_extras() -> tuple[Any, Any]:
    """Import tqdm and matplotlib, or raise :class:`MissingExtrasError` naming the fix."""
    missing = []
    try:
        import tqdm
    except ImportError:
        missing.append("tqdm")
    try:
        import matplotlib
    except ImportError:
        missing.append("matplotlib")
    if missing:
        raise MissingExtrasError(
            f"rnnkit demo needs {' and '.join(missing)} (the 'demo' extra), which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it with:\n    {EXTRAS_HINT}"
        )
    return tqdm, matplotlib


class CharModel(torch.nn.Module):
    """Embedding -> stacked rnnkit layers -> Linear over the vocabulary."""

    def __init__(self, cell: str, hyper: Hyper, vocab_size: int = demo_data.VOCAB_SIZE) -> None:
        super().__init__()
        layer_class = CELLS[cell]
        self.embedding = torch.nn.Embedding(vocab_size, hyper.embed_dim)
        dims = [hyper.embed_dim] + [hyper.units] * (hyper.layers - 1)
        # return_state=True: sampling feeds one character per call and carries
        # each layer's states into the next call through initial_state=.
        self.recurrent = torch.nn.ModuleList(
            layer_class(hyper.units, return_sequences=True, return_state=True, input_dim=d) for d in dims
        )
        self.head = torch.nn.Linear(hyper.units, vocab_size)

    def forward(self, ids: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        """Logits ``(batch, time, vocab)`` and each layer's final states."""
        x = self.embedding(ids)
        new_states = []
        for i, layer in enumerate(self.recurrent):
            x, *layer_states = layer(x, initial_state=None if states is None else states[i])
            new_states.append(layer_states)
        return self.head(x), new_states


def batch_of(ids: torch.Tensor, starts: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-character targets for windows starting at ``starts``."""
    window = ids[starts.unsqueeze(1) + torch.arange(seq_len + 1)]
    return window[:, :-1], window[:, 1:]


def loss_of(model: CharModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, _ = model(x)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def validation_loss(model: CharModel, val_ids: torch.Tensor, hyper: Hyper) -> float:
    """Mean loss over fixed, evenly spaced windows of the held-out text."""
    was_training = model.training
    model.eval()
    last = len(val_ids) - hyper.seq_len - 1
    starts = torch.linspace(0, last, hyper.val_windows).long()
    loss = loss_of(model, *batch_of(val_ids, starts, hyper.seq_len)).item()
    model.train(was_training)
    return loss


@torch.no_grad()
def sample(model: CharModel, length: int, temperature: float, generator: torch.Generator,
           prompt: str = PROMPT) -> str:
    """``prompt`` plus ``length`` generated characters, one recurrent call per character.

    Each layer returns its final states (``return_state=True``) and gets them
    back as ``initial_state`` on the next call. Runs on one CPU thread: for a
    batch of one character, splitting each tiny matrix product over threads
    costs more than it saves (several times more on a busy machine).
    """
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ids = demo_data.encode(prompt).unsqueeze(0)
        logits, states = model(ids)  # the prompt in one call; its final states carry on
        out = []
        for _ in range(length):
            scores = logits[0, -1] / temperature
            scores[demo_data.UNK] = -math.inf
            nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator)
            out.append(int(nxt))
            logits, states = model(nxt.view(1, 1), states)
    finally:
        torch.set_num_threads(threads)
    return prompt + demo_data.decode(out)


def plot(losses: list[float], val_points: list[dict], path: Path, title: str) -> None:
    """Training curve (raw and smoothed) and validation points, drawn with Agg (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = list(range(1, len(losses) + 1))
    ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=0.8, label="training loss (per step)")
    k = max(1, len(losses) // 40)
    if k > 1:
        smooth = [sum(losses[max(0, i - k + 1): i + 1]) / len(losses[max(0, i - k + 1): i + 1])
                  for i in range(len(losses))]
        ax.plot(steps, smooth, color="tab:blue", linewidth=1.6, label=f"training loss ({k}-step mean)")
    if val_points:
        ax.plot([p["step"] for p in val_points], [p["loss"] for p in val_points], "o-", color="tab:orange",
                label="validation loss (held-out 10%)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / character)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")


def run(steps: int = DEFAULT_STEPS, out: str | Path = DEFAULT_OUT, cell: str = "lstm", seed: int = 0,
        hyper: Hyper | None = None, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train, evaluate, sample; write ``metrics.json``, ``loss.png``, ``sample.txt`` under ``out``."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    tqdm, _ = require_extras()
    hyper = hyper or Hyper()
    wall_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    corpus = demo_data.load_corpus()
    train_ids, val_ids = corpus.split(hyper.val_fraction)
    log(f"corpus: {corpus.source}: {corpus.files} files, {len(corpus.ids):,} characters "
        f"({len(train_ids):,} training, {len(val_ids):,} held out)")

    torch.manual_seed(seed)
    batches = torch.Generator().manual_seed(seed)
    model = CharModel(cell, hyper)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=hyper.lr)
    floor = hyper.lr_final_fraction
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    chars_per_step = hyper.batch_size * hyper.seq_len
    eval_every = max(1, steps // hyper.evals)

    losses: list[float] = []
    val_points: list[dict] = []
    train_time = 0.0
    bar = tqdm.tqdm(total=steps, desc=f"demo {cell}", unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        starts = torch.randint(0, len(train_ids) - hyper.seq_len - 1, (hyper.batch_size,), generator=batches)
        loss = loss_of(model, *batch_of(train_ids, starts, hyper.seq_len))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.clip_norm)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        train_time += time.perf_counter() - t0
        chars_s = chars_per_step * step / train_time
        postfix = {"loss": f"{losses[-1]:.3f}", "chars/s": f"{chars_s:,.0f}"}
        if step % eval_every == 0 or step == steps:
            val_points.append({"step": step, "loss": validation_loss(model, val_ids, hyper)})
        if val_points:
            postfix["val"] = f"{val_points[-1]['loss']:.3f}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
    bar.close()

    window = min(hyper.final_window, len(losses))
    final_loss = sum(losses[-window:]) / window
    text = sample(model, hyper.sample_chars, hyper.temperature, torch.Generator().manual_seed(seed))
    metrics = {
        "cell": cell,
        "seed": seed,
        "steps": steps,
        "losses": losses,
        "initial_loss": losses[0],
        "final_loss": final_loss,
        "final_loss_window": window,
        "val_loss": val_points[-1]["loss"],
        "val_losses": val_points,
        "chars_per_second": chars_per_step * steps / train_time,
        "train_seconds": train_time,
        "wall_seconds": None,  # filled in below
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hyperparameters": asdict(hyper),
        "corpus": {"source": corpus.source, "files": corpus.files, "characters": len(corpus.ids),
                   "train_characters": len(train_ids), "val_characters": len(val_ids),
                   "vocab_size": demo_data.VOCAB_SIZE},
        "rnnkit_version": rnnkit.__version__,
        "torch_version": torch.__version__,
    }
    paths = {"metrics": out / "metrics.json", "plot": out / "loss.png", "sample": out / "sample.txt"}
    paths["sample"].write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    plot(losses, val_points, paths["plot"],
         f"rnnkit demo: {hyper.layers} x {CELLS[cell].__name__}({hyper.units}) char LM on Python source, seed {seed}")
    metrics["wall_seconds"] = time.perf_counter() - wall_start
    paths["metrics"].write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")

    drop = 1 - final_loss / losses[0]
    log(f"loss {losses[0]:.3f} -> {final_loss:.3f} (-{drop:.0%}), validation loss {metrics['val_loss']:.3f}, "
        f"{metrics['chars_per_second']:,.0f} chars/s, {metrics['wall_seconds']:.0f} s")
    log(f"metrics: {paths['metrics']}")
    log(f"plot:    {paths['plot']}")
    log(f"sample:  {paths['sample']}")
    return metrics
