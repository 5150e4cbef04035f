"""The interface every framework's collector offers the worker, and where each one is."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

MODULES = {"torch": "profiler.collect.torch_collector", "tensorflow": "profiler.collect.tf_collector"}


@runtime_checkable
class Collector(Protocol):
    """Builds a framework's workload, reports its environment and device memory, and
    runs steps under the framework's own profiler."""

    framework: str

    def environment(self) -> dict:
        """Versions, threads, the GPUs the framework sees (`framework_gpus`, their names;
        `gpus` in a run's environment is NVML's, where there is a driver) and the device
        of the workload built last: stored with each run."""
        ...

    def build(self, request: dict):
        """The workload a request names, ready to `step()` and `synchronize()`."""
        ...

    def device_memory(self, workload) -> tuple[int | None, int | None]:
        """Peak and reserved device bytes since the last call, then reset; (None, None)
        on the CPU."""
        ...

    def profile_steps(self, workload, steps: int, out_dir: Path,
                      timed_step: Callable[[int], dict]) -> tuple[list[dict], Path]:
        """`steps` steps under the profiler: their `timed_step` records and the trace file."""
        ...


def collector_for(framework: str) -> Collector:
    """The collector of `framework`; imports the framework."""
    return importlib.import_module(MODULES[framework]).COLLECTOR


def device_facts(device: str, name: str | None) -> dict:
    """The device a run used ('cpu' or 'gpu:N') and its name, as the environment records them."""
    return {"device": device, "device_name": name or "cpu"}
