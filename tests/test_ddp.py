"""DistributedDataParallel over rnnkit layers: examples/ddp_train.py on 2 CPU processes (gloo, loopback).

Two ranks train on the same global batches split between them; their
parameters must stay identical, and equal (with the losses) those of one
process training on the whole global batch.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORLD_SIZE = 2
# 64 samples, 8 per rank: an epoch is 4 global batches of 16, so 6 steps cross
# an epoch boundary (a new shared permutation through sampler.set_epoch).
CONFIG = dict(steps=6, batch_size=8, lr=0.1, seed=3, num_samples=64)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_env(monkeypatch) -> None:
    """Keep the workers single-threaded and on the loopback interface."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    if "GLOO_SOCKET_IFNAME" not in os.environ and os.path.exists("/sys/class/net/lo"):
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")


@pytest.fixture(scope="module")
def ddp_train():
    sys.path.insert(0, str(EXAMPLES))  # spawned children get this sys.path too
    try:
        import ddp_train

        yield ddp_train
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def spawned(ddp_train, tmp_path_factory):
    """The two ranks' saved results (``rank{r}.pt``) after training under mp.spawn."""
    out = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as mp:
        _loopback_env(mp)
        c = CONFIG
        torch.multiprocessing.spawn(
            ddp_train.run,
            args=(WORLD_SIZE, "127.0.0.1", free_port(), c["steps"], c["batch_size"], c["lr"], c["seed"],
                  c["num_samples"], str(out), False),
            nprocs=WORLD_SIZE,
            join=True,
        )
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def single(ddp_train):
    """One process, no DDP, the whole global batch each step: (initial state, final state, losses)."""
    c = CONFIG
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():  # build_model seeds the global RNG: leave other tests' RNG as it was
            init = {k: v.clone() for k, v in ddp_train.build_model(c["seed"]).state_dict().items()}
            model = ddp_train.build_model(c["seed"])
            dataset = ddp_train.make_dataset(c["num_samples"])
            loader, sampler = ddp_train.make_loader(dataset, c["batch_size"] * WORLD_SIZE, 0, 1, c["seed"])
            losses = ddp_train.train(model, loader, sampler, c["steps"], c["lr"])
        return init, model.state_dict(), losses
    finally:
        torch.set_num_threads(threads)


def test_replicas_stay_identical(spawned):
    r0, r1 = spawned
    assert r0["state_dict"].keys() == r1["state_dict"].keys()
    assert any("lstm" in k for k in r0["state_dict"])
    for name, p0 in r0["state_dict"].items():
        assert torch.equal(p0, r1["state_dict"][name]), f"rank 0 and rank 1 differ in {name}"
    assert len(r0["losses"]) == len(r1["losses"]) == CONFIG["steps"]
    assert r0["losses"] != r1["losses"]  # the ranks did train on different shards


def test_ddp_matches_single_process_on_global_batch(spawned, single):
    init, state, losses = single
    # equal local batch sizes: the global batch's mean loss is the mean of the ranks' mean losses
    global_losses = torch.tensor([r["losses"] for r in spawned]).mean(0)
    torch.testing.assert_close(global_losses, torch.tensor(losses), rtol=0, atol=1e-5)
    for name, p in state.items():
        torch.testing.assert_close(spawned[0]["state_dict"][name], p, rtol=0, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")
    # the comparison means something only if training moved the parameters
    for name in state:
        if name.startswith(("lstm.", "head.")):
            assert not torch.allclose(init[name], state[name], atol=1e-4), f"{name} did not train"
    assert losses[-1] < losses[0]


def test_torchrun_launch(tmp_path, monkeypatch):
    """The script under torchrun (env:// rendezvous from RANK/WORLD_SIZE/MASTER_*), loopback only."""
    _loopback_env(monkeypatch)
    for _ in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={WORLD_SIZE}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(EXAMPLES / "ddp_train.py"),
               "--steps=2", "--batch-size=4", "--num-samples=16", f"--out-dir={tmp_path}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        # A gloo rank sometimes aborts in process teardown after finishing its work (a C++ thread left
        # running when the interpreter exits); that is torch's, not the training's: run once more.
        teardown_abort = (proc.returncode != 0 and "terminate called without an active exception" in proc.stderr
                          and "after 2 steps" in proc.stdout)
        if not teardown_abort:
            break
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "world_size=2 global_batch=8" in proc.stdout
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE))
    for name, p0 in r0["state_dict"].items():
        assert torch.equal(p0, r1["state_dict"][name]), name
