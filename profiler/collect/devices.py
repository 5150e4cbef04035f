"""Which device a run uses: `--device cpu|cuda:N|gpu:N`, or by default the first GPU every
framework of the run sees, else the CPU. Frameworks are asked in subprocesses: torch and
TensorFlow never load in the xprof process."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

from profiler.errors import UserError

_GPU = re.compile(r"^(?:cuda|gpu)(?::(\d+))?$")
PROBE_TIMEOUT_S = 300
# Prints how many GPUs the framework sees; one subprocess per framework.
_PROBES = {
    "torch": "import torch; print(torch.cuda.device_count())",
    "tensorflow": "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))",
}


def parse_device(text: str) -> str:
    """'cpu', or 'gpu:N' for any of 'cuda', 'cuda:N', 'gpu', 'gpu:N' (the name both
    frameworks' runs are stored under, so that their configurations meet)."""
    name = text.strip().lower()
    if name == "cpu":
        return "cpu"
    found = _GPU.match(name)
    if not found:
        raise UserError(f"--device: {text!r} is not cpu, cuda:N or gpu:N")
    return f"gpu:{int(found.group(1) or 0)}"


def gpu_index(device: str) -> int | None:
    """N of 'gpu:N'; None for the CPU."""
    return None if device == "cpu" else int(device.split(":")[1])


def gpu_may_exist() -> bool:
    """Whether anything on the host suggests a GPU (NVML counts one, or an NVIDIA or ROCm
    device node exists): only then are the frameworks asked, which takes seconds."""
    from profiler.telemetry.nvml import Nvml

    return Nvml().device_count() > 0 or Path("/dev/kfd").exists() or bool(glob.glob("/dev/nvidia[0-9]*"))


def gpus_seen(frameworks: list[str]) -> dict[str, int]:
    """How many GPUs each framework sees, each asked in its own subprocess at once."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    children = {fw: subprocess.Popen([sys.executable, "-P", "-c", _PROBES[fw]], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for fw in frameworks}
    seen = {}
    for framework, child in children.items():
        try:
            out, err = child.communicate(timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise UserError(f"--device: {framework} did not say which GPUs it sees within "
                            f"{PROBE_TIMEOUT_S} s") from None
        lines = out.strip().splitlines()
        if child.returncode != 0 or not lines or not lines[-1].isdigit():
            tail = (err.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"--device: cannot ask {framework} which GPUs it sees: {tail}")
        seen[framework] = int(lines[-1])
    return seen


def resolve_device(requested: str | None, frameworks: list[str], probe=gpus_seen,
                   may_exist=gpu_may_exist) -> str:
    """The device every run of `frameworks` uses: `requested` once each framework is
    known to see it; by default the first GPU where all see one, else the CPU."""
    if requested is not None and parse_device(requested) == "cpu":
        return "cpu"
    if requested is None and not may_exist():
        return "cpu"
    seen = probe(frameworks)
    if requested is None:
        return "gpu:0" if all(count > 0 for count in seen.values()) else "cpu"
    device = parse_device(requested)
    index = gpu_index(device)
    blind = [f"{fw} sees {count} GPU{'s' * (count != 1)}" for fw, count in seen.items() if count <= index]
    if blind:
        raise UserError(f"--device {requested}: no such GPU here ({'; '.join(blind)})")
    return device
