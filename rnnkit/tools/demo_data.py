"""The demo's corpus: Python source text that every Python install carries.

The default corpus is the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]``): its top-level ``*.py`` modules in
sorted order, concatenated up to a fixed byte budget, so the same interpreter
always gives the same text. Where the standard library ships without sources
(an embedded or zip-only install), rnnkit's own sources are used instead.

Text becomes ids over a fixed character vocabulary: newline and printable
ASCII, plus one ``UNK`` id for every other byte (tabs, ``\\r``, the bytes of
non-ASCII characters). Sampling never emits ``UNK``.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

VOCAB = "\n" + "".join(chr(i) for i in range(32, 127))
UNK = len(VOCAB)
VOCAB_SIZE = len(VOCAB) + 1
DEFAULT_BUDGET = 3_000_000  # bytes of source text
MIN_BYTES = 100_000  # below this, the stdlib is not usable as a corpus

_TABLE = np.full(256, UNK, dtype=np.int64)
for _i, _ch in enumerate(VOCAB):
    _TABLE[ord(_ch)] = _i


@dataclass
class Corpus:
    """Encoded text and where it came from."""

    ids: torch.Tensor  # int64, (chars,)
    source: str
    files: int

    def split(self, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
        """Training ids (the first part) and held-out validation ids (the last ``val_fraction``)."""
        cut = int(len(self.ids) * (1.0 - val_fraction))
        return self.ids[:cut], self.ids[cut:]


def encode(text: str | bytes) -> torch.Tensor:
    """Text (or raw bytes) as vocabulary ids; unknown bytes become ``UNK``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return torch.from_numpy(_TABLE[np.frombuffer(data, dtype=np.uint8)])


def decode(ids) -> str:
    """Vocabulary ids as text (``UNK`` shows as ``?``)."""
    return "".join(VOCAB[i] if i < UNK else "?" for i in (int(i) for i in ids))


def _read(paths: list[Path], budget: int) -> tuple[bytes, int]:
    chunks, total, files = [], 0, 0
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        data = data[: budget - total]
        chunks.append(data if data.endswith(b"\n") else data + b"\n")
        total += len(chunks[-1])
        files += 1
        if total >= budget:
            break
    return b"".join(chunks), files


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_corpus(budget: int = DEFAULT_BUDGET) -> Corpus:
    """The default corpus (see the module docstring), at most ``budget`` bytes."""
    root = stdlib_dir()
    data, files = _read(sorted(root.glob("*.py")), budget)
    source = f"Python {sysconfig.get_python_version()} standard library ({root}, top-level modules)"
    if len(data) < MIN_BYTES:
        package = Path(__file__).resolve().parent
        data, files = _read(sorted(package.rglob("*.py")), budget)
        source = f"rnnkit sources ({package}); the standard library at {root} has no usable .py sources"
    if len(data) < 10_000:
        raise RuntimeError(f"no corpus: found only {len(data)} bytes of Python source under {root}")
    return Corpus(encode(data), source, files)
