"""`make gpu-check` (checks/gpu_check.py): where no GPU is, it says so and what it would
check, and exits 0; its busy-time arithmetic on its own."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, machine_nvml

_spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "checks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def test_without_a_gpu_it_says_so_and_what_it_would_check():
    if machine_nvml()["nvml"] == "available":
        pytest.skip("an NVIDIA driver is present: `make gpu-check` runs the real checks here")
    done = subprocess.run([sys.executable, "checks/gpu_check.py"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == f"gpu-check: no NVIDIA GPU on this machine ({machine_nvml()['reason']})."
    assert [line.strip("  - ") for line in lines[2:-1]] == list(gpu_check.CHECKS.values())
    assert lines[-1] == "verdict: nothing checked, no GPU (exit 0)"


@pytest.mark.parametrize("spans, busy", [
    ([], 0),
    ([(0, 10), (20, 5)], 15),  # apart
    ([(0, 10), (5, 10)], 15),  # overlapping (two streams)
    ([(0, 10), (2, 3), (10, 1)], 11),  # one inside another, one right after
])
def test_busy_time_is_the_union_of_device_spans(spans, busy):
    assert gpu_check._busy_ns(spans) == busy
