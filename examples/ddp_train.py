"""Data-parallel training of an rnnkit model with ``DistributedDataParallel`` (CPU, gloo).

The model is ``Embedding(padding_idx=0) -> rnnkit.LSTM -> Linear``: a sequence
classifier over right-padded token sequences, the mask built from the token ids
(``tokens != 0``), so the LSTM runs on PyTorch's fused kernel. The data is
synthetic and seeded, so every run (and every rank) sees the same numbers.

How the work is split
---------------------
Each rank builds the same model from the same seed (DDP also broadcasts rank
0's parameters when it wraps the model), and a ``DistributedSampler`` hands
rank ``r`` every ``world_size``-th index of one shared, seeded permutation.
With ``--batch-size B`` per rank, step ``s`` therefore trains on a *global*
batch of ``B * world_size`` samples, and DDP averages the gradients of the
ranks' mean losses: the same update as one process on the whole global batch
(see ``tests/test_ddp.py``, which checks exactly that).

Running on one machine
----------------------
With torchrun (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` for each worker)::

    torchrun --nproc_per_node=2 examples/ddp_train.py --steps 20

Without torchrun the script spawns the workers itself with
``torch.multiprocessing`` on a free loopback port::

    python examples/ddp_train.py --nproc 2 --steps 20

From Python, spawn :func:`run` (the rank comes first, as ``mp.spawn`` passes it)::

    torch.multiprocessing.spawn(run, args=(2, "127.0.0.1", port), nprocs=2)

Running on several machines
---------------------------
Run torchrun on every machine; ``--nnodes`` is the number of
machines, ``--nproc_per_node`` the workers per machine (``WORLD_SIZE`` is their
product). With a fixed master (static rendezvous), give each machine its own
``--node_rank`` (0 on the master) and the master's reachable address::

    # on machine 0, whose address the others reach as 10.0.0.1
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=2 \\
        --master_addr=10.0.0.1 --master_port=29500 examples/ddp_train.py

    # on machine 1
    torchrun --nnodes=2 --node_rank=1 --nproc_per_node=2 \\
        --master_addr=10.0.0.1 --master_port=29500 examples/ddp_train.py

Or with dynamic (c10d) rendezvous, which waits for the machines to join and
assigns the node ranks itself (the same command on every machine)::

    torchrun --nnodes=2 --nproc_per_node=2 --rdzv_id=job42 \\
        --rdzv_backend=c10d --rdzv_endpoint=10.0.0.1:29400 examples/ddp_train.py

The port must be open between the machines. Gloo picks the network interface
from the machine's hostname; set ``GLOO_SOCKET_IFNAME=eth0`` (the interface
that reaches the other machines) when that resolves to a loopback address.
Every machine needs the same rnnkit and torch versions; the data is generated
from the seed, so nothing has to be copied.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import rnnkit

VOCAB = 12  # token 0 is padding
SEQ_LEN = 10
EMBED = 8
UNITS = 16
CLASSES = 2


class SequenceClassifier(torch.nn.Module):
    """``Embedding(padding_idx=0) -> LSTM (last output) -> Linear``; the mask comes from the ids."""

    def __init__(self, vocab: int = VOCAB, embed: int = EMBED, units: int = UNITS, classes: int = CLASSES,
                 seq_len: int = SEQ_LEN) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed, padding_idx=0)
        # input_shape= builds the LSTM now, so its parameters exist before DDP
        # and the optimizer see the model.
        self.lstm = rnnkit.LSTM(units, return_sequences=False, input_shape=(seq_len, embed))
        self.head = torch.nn.Linear(units, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens), mask=tokens != 0))


def build_model(seed: int = 0) -> SequenceClassifier:
    """The model, initialised from ``seed`` (same numbers on every rank)."""
    torch.manual_seed(seed)
    return SequenceClassifier()


def make_dataset(num_samples: int = 256, seed: int = 1234) -> TensorDataset:
    """Right-padded token sequences; the label says whether 1s outnumber 2s."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, SEQ_LEN + 1, (num_samples,), generator=g)
    tokens = torch.randint(1, VOCAB, (num_samples, SEQ_LEN), generator=g)
    tokens = tokens * (torch.arange(SEQ_LEN) < lengths[:, None])
    labels = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()
    return TensorDataset(tokens, labels)


def make_loader(dataset: TensorDataset, batch_size: int, rank: int, world_size: int, seed: int) -> tuple:
    """Per-rank loader over a shared seeded permutation, and its sampler (for ``set_epoch``)."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True), sampler


def train(model: torch.nn.Module, loader: DataLoader, sampler: DistributedSampler, steps: int,
          lr: float) -> list[float]:
    """``steps`` SGD steps; returns this rank's loss (mean over its local batch) at each step.

    The global loss of a step is the mean of the ranks' losses (equal local
    batch sizes). It is not all-reduced here: a collective on a tensor created
    in Python can still be held by a gloo worker thread when the interpreter
    exits, which aborts the process (torch 2.13); DDP's own gradient
    all-reduce runs on internal buffers and is safe.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()  # mean over the local batch; DDP averages over ranks
    model.train()
    losses: list[float] = []
    epoch = 0
    while len(losses) < steps:
        sampler.set_epoch(epoch)  # a new shared permutation each epoch
        for tokens, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(tokens), labels)
            loss.backward()  # under DDP: gradients all-reduced (averaged) here
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
        epoch += 1
    return losses


def run(rank: int, world_size: int, master_addr: str | None = None, master_port: int | None = None,
        steps: int = 20, batch_size: int = 16, lr: float = 0.1, seed: int = 0, num_samples: int = 256,
        out_dir: str | None = None, verbose: bool = True) -> list[float]:
    """One worker: join the process group, train the DDP model, save and return its losses.

    ``rank`` comes first so that ``torch.multiprocessing.spawn(run, args=(world_size, ...))``
    can call it. ``master_addr`` / ``master_port`` default to the environment
    (``MASTER_ADDR`` / ``MASTER_PORT``, as torchrun sets them). With
    ``out_dir``, each rank writes ``rank{rank}.pt``: its final ``state_dict``
    and its loss at each step (see :func:`train`).
    """
    if master_addr is not None:
        os.environ["MASTER_ADDR"] = master_addr
    if master_port is not None:
        os.environ["MASTER_PORT"] = str(master_port)
    torch.set_num_threads(1)  # the processes share the machine's cores
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model = DistributedDataParallel(build_model(seed))
        loader, sampler = make_loader(make_dataset(num_samples), batch_size, rank, world_size, seed)
        losses = train(model, loader, sampler, steps, lr)
        if out_dir is not None:
            state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
            torch.save({"state_dict": state, "losses": losses}, os.path.join(out_dir, f"rank{rank}.pt"))
        if verbose and rank == 0:
            print(f"world_size={world_size} global_batch={batch_size * world_size} "
                  f"rank 0 loss {losses[0]:.4f} -> {losses[-1]:.4f} after {steps} steps")
        dist.barrier()
        return losses
    finally:
        dist.destroy_process_group()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="per rank")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--nproc", type=int, default=2, help="workers to spawn when not under torchrun")
    parser.add_argument("--out-dir", default=None, help="write rank{r}.pt (state_dict, losses) here")
    args = parser.parse_args(argv)
    config = (args.steps, args.batch_size, args.lr, args.seed, args.num_samples, args.out_dir)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # launched by torchrun
        run(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), None, None, *config)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        port = free_port()
        torch.multiprocessing.spawn(run, args=(args.nproc, "127.0.0.1", port, *config), nprocs=args.nproc)


if __name__ == "__main__":
    main()
