"""Every example script runs to completion and prints its result (ddp_train.py: see test_ddp.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> a line its stdout must contain (printed after its assertions passed)
EXPECTED = {
    "custom_cell.py": "custom_cell OK",
    "masking.py": "masking OK",
    "stateful_streaming.py": "stateful_streaming OK",
    "bidirectional_tagging.py": "bidirectional_tagging OK",
}


def test_every_example_is_covered():
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"ddp_train.py"}
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120, env=env,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    assert EXPECTED[script] in proc.stdout.splitlines(), proc.stdout
