"""The Keras-on-jax peer of the benchmarks: ``rnnkit.tools.bench_jax``'s request/answer lines, and
``rnnkit.tools.jax_peer``: ``JaxPeer`` (its subprocess, here a stand-in: jax is no test dependency) and
``jax_rows``."""

import io
import json
import sys

import pytest

from rnnkit.tools import bench_jax, jax_peer, timing

CASE = {"cell": "gru", "shape": [1, 1, 32, 64], "mode": "stream", "calls": 100}


def test_the_server_builds_each_case_once_and_answers_each_request(monkeypatch, capsys):
    built = []
    monkeypatch.setattr(bench_jax, "build", lambda case: built.append(case) or (lambda: None))
    other = dict(CASE, mode="infer", shape=[2, 3, 4, 5])
    timed = []
    monkeypatch.setattr(timing, "median_time", lambda run, **kwargs: timed.append(kwargs) or 0.5)
    lines = [json.dumps({"case": c, "timing": {"repeats": 3, "budget_s": 0.1}}) for c in (CASE, other, CASE)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n\n"))
    bench_jax.main()
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["key"] for a in answers] == [jax_peer.jax_key(c) for c in (CASE, other, CASE)]
    assert all(a["seconds"] == 0.5 for a in answers) and built == [CASE, other]
    assert timed == [{"repeats": 3, "budget_s": 0.1}] * 3  # the request's timing, as asked


STAND_IN = """
import json, sys, time
from rnnkit.tools.jax_peer import jax_key
for line in sys.stdin:
    request = json.loads(line)
    sys.stderr.write("x" * 100_000 + "\\n")  # (more than a pipe holds: read as it comes)
    if request["case"]["cell"] == "broken":
        sys.exit("no such cell: broken")
    if request["case"]["cell"] == "slow":
        time.sleep(60)
    print(json.dumps({"key": jax_key(request["case"]), "seconds": 0.25 * request["timing"]["repeats"]}), flush=True)
"""


def test_the_peer_asks_its_subprocess_one_case_at_a_time():
    with jax_peer.JaxPeer(argv=[sys.executable, "-c", STAND_IN]) as peer:
        assert peer.time(CASE, {"repeats": 4}) == 1.0
        assert peer.time(dict(CASE, mode="train"), {"repeats": 2}) == 0.5
        assert peer.time(CASE) == 0.25 * jax_peer.ROUND["repeats"]  # (by default a round's timing)
        with pytest.raises(jax_peer.PeerStopped, match="(?s)keras-jax peer stopped: .*no such cell: broken"):
            peer.time(dict(CASE, cell="broken"))
    assert peer.proc.returncode == 1


ENV_STAND_IN = """
import json, os, sys
from rnnkit.tools.jax_peer import jax_key
for line in sys.stdin:
    request = json.loads(line)
    seconds = float(os.environ.get("MALLOC_TRIM_THRESHOLD_", -1)) + float(os.environ.get("MALLOC_MMAP_THRESHOLD_", -1))
    print(json.dumps({"key": jax_key(request["case"]), "seconds": seconds}), flush=True)
"""


def test_the_peer_allocates_under_its_parents_malloc_thresholds(monkeypatch):
    """Where the benchmark keeps freed memory (rnnkit.tools.allocator), its Keras-on-jax subprocess starts with
    the same glibc thresholds; where it does not, with none set."""
    from rnnkit.tools import allocator

    case = {"cell": "gru", "shape": [1, 2, 3, 4], "mode": "infer"}
    monkeypatch.setattr(allocator, "_KEPT", {})
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    with jax_peer.JaxPeer(argv=[sys.executable, "-c", ENV_STAND_IN]) as peer:
        assert peer.time(case) == -2
    monkeypatch.setattr(allocator, "_KEPT", {"MALLOC_TRIM_THRESHOLD_": 5, "MALLOC_MMAP_THRESHOLD_": 7})
    with jax_peer.JaxPeer(argv=[sys.executable, "-c", ENV_STAND_IN]) as peer:
        assert peer.time(case) == 12


def test_the_peer_stops_a_subprocess_that_takes_too_long():
    # (its first answer waits for the stand-in's start, torch's import included: seconds on a busy machine)
    with jax_peer.JaxPeer(timeout_s=120, argv=[sys.executable, "-c", STAND_IN]) as peer:
        assert peer.time(CASE) == 1.25
        peer.timeout_s = 3
        with pytest.raises(jax_peer.PeerStopped, match="keras-jax peer stopped: x+"):
            peer.time(dict(CASE, cell="slow"))
    assert peer.proc.returncode is not None


class _Peer:
    """A stand-in for ``jax_peer.JaxPeer`` in process: 0.02 s a case, the modes asked kept; a "broken" cell
    stops it."""

    def __init__(self):
        self.asked = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def time(self, case):
        self.asked.append(case["mode"])
        if case["cell"] == "broken":
            raise jax_peer.PeerStopped("keras-jax peer stopped: broken")
        return 0.02


def test_jax_rows_alternate_each_run_with_the_peer_and_divide_out_the_calls(monkeypatch):
    peer = _Peer()
    monkeypatch.setattr(jax_peer, "JaxPeer", lambda: peer)
    monkeypatch.setattr(jax_peer, "median_time", lambda run, **kw: run() or 0.01)
    ran = []
    rows = []
    cases = [(CASE, [("streaming", lambda: ran.append("stream"))]),
             ({"cell": "minimal", "shape": [1, 2, 3, 4], "mode": "train"},
              [("custom cell", lambda: ran.append("plain")), ("compile=True", lambda: ran.append("compiled"))]),
             ({"cell": "broken", "shape": [1, 2, 3, 4], "mode": "train"}, [("vs XLA", lambda: None)]),
             ({"cell": "lstm", "shape": [1, 2, 3, 4], "mode": "train"}, [("vs XLA", lambda: None)])]
    jax_peer.jax_rows(cases, lambda *row: rows.append(row))
    assert ran == ["stream"] * 3 + ["plain", "compiled"] * 3
    assert peer.asked == ["stream"] * 3 + ["train"] * 4  # the broken peer ends the rows
    assert rows == [("streaming", "gru", [1, 1, 32, 64], "infer", 0.01 / 100, "keras-jax", 0.02 / 100),
                    ("custom cell", "minimal", [1, 2, 3, 4], "train", 0.01, "keras-jax", 0.02),
                    ("compile=True", "minimal", [1, 2, 3, 4], "train", 0.01, "keras-jax", 0.02)]


def test_jax_rows_let_rnnkit_errors_through(monkeypatch):
    def broken():
        raise RuntimeError("rnnkit broke")
    monkeypatch.setattr(jax_peer, "JaxPeer", _Peer)
    with pytest.raises(RuntimeError, match="rnnkit broke"):  # (only a stopped peer ends the rows quietly)
        jax_peer.jax_rows([(CASE, [("streaming", broken)])], lambda *row: None)
