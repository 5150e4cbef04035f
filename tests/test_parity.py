"""Numeric parity of every workload, through the real CLI and the real frameworks."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, run_xprof
from workloads import WORKLOADS

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow


def test_every_workload_has_parity_at_tiny():
    done = run_xprof("workloads", "--parity", "--json", check=0)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert list(rows) == list(WORKLOADS)
    for name, row in rows.items():
        spec = WORKLOADS[name]
        assert row["parity"]["ok"], row
        assert row["parity"]["max_abs_diff"] <= spec.parity_atol <= 1e-4
        expected = {"params": spec.params("tiny"), "flops_per_step": spec.flops_per_step("tiny", "train")}
        assert row["frameworks"] == {"torch": expected, "tensorflow": expected}


def _side(framework, directory, *names):
    return subprocess.run(
        [sys.executable, "-m", "workloads.parity", framework, str(directory), *names],
        capture_output=True, text=True, cwd=REPO_ROOT, check=True,
    ).stdout


@pytest.mark.parametrize("name, key", [("cnn", "w:block.bn2.running_var"), ("lstm", "w:lstm.weight_hh_l0")])
def test_parity_check_catches_a_wrong_weight(tmp_path, name, key):
    """The check can fail: nudge one converted tensor and the outputs part ways."""
    _side("torch", tmp_path, name)
    saved = dict(np.load(tmp_path / f"{name}.npz"))
    saved[key] = saved[key] * 1.01
    np.savez(tmp_path / f"{name}.npz", **saved)
    [result] = json.loads(_side("tensorflow", tmp_path, name).strip().splitlines()[-1])
    assert not result["ok"]
    assert result["max_abs_diff"] > result["atol"]
    assert "exceeds" in result["error"]
