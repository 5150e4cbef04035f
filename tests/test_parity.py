"""Numeric parity of every workload, through the real CLI and the real frameworks."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, run_xprof
from workloads import WORKLOADS
from workloads.spec import REDUCED_PRECISION_TOLERANCE

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


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_every_workload_this_cpu_can_run_has_parity_at_reduced_precision(dtype):
    done = run_xprof("workloads", "--parity", "--dtype", dtype, "--json", check=0)
    rows = {row["name"]: row["parity"] for row in json.loads(done.stdout)}
    assert list(rows) == list(WORKLOADS)
    compared = [name for name, parity in rows.items() if not parity["unsupported"]]
    for name, parity in rows.items():
        assert parity["ok"] and parity["dtype"] == dtype and parity["error"] is None, parity
        if parity["unsupported"]:  # a framework without the kernel on this CPU, named with its error
            assert parity["unsupported"].startswith(("torch: ", "tensorflow: ")), parity
            assert parity["max_abs_diff"] is None
        else:  # 8 units of the precision's rounding times the outputs' magnitude (at least 1)
            assert parity["max_abs_diff"] <= parity["atol"], parity
            assert parity["atol"] >= REDUCED_PRECISION_TOLERANCE[dtype]
    assert len(compared) >= len(WORKLOADS) - 1, rows  # matmuls and convolutions run at both anywhere


def _side(framework, directory, *names):
    return subprocess.run(
        [sys.executable, "-m", "workloads.parity", framework, str(directory), *names],
        capture_output=True, text=True, cwd=REPO_ROOT, check=True,
    ).stdout


@pytest.mark.parametrize("name, key, dtype, factor", [("cnn", "w:block.bn2.running_var", "fp32", 1.01),
                                                     ("lstm", "w:lstm.weight_hh_l0", "fp32", 1.01),
                                                     ("mlp", "w:4.weight", "bf16", 1.1),
                                                     ("transformer", "w:head.weight", "fp16", 1.05)])
def test_parity_check_catches_a_wrong_weight(tmp_path, name, key, dtype, factor):
    """The check can fail, at every precision: nudge one converted tensor and the outputs part ways."""
    _side("torch", tmp_path, name, "--dtype", dtype)
    saved = dict(np.load(tmp_path / f"{name}.npz"))
    saved[key] = saved[key] * factor
    np.savez(tmp_path / f"{name}.npz", **saved)
    [result] = json.loads(_side("tensorflow", tmp_path, name, "--dtype", dtype).strip().splitlines()[-1])
    assert not result["ok"]
    assert result["max_abs_diff"] > result["atol"]
    assert "exceeds" in result["error"]
