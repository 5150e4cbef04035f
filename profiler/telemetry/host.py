"""Host telemetry with psutil: system CPU and memory, and CPU and RSS of the watched
process (a worker); host facts for the run's environment."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import psutil

from profiler.processes import host_name
from profiler.telemetry.sampling import HOST, TelemetrySample

CPUINFO = Path("/proc/cpuinfo")


class HostSampler:
    """One TelemetrySample for the host per call.

    cpu_percent in psutil is the usage since the previous call on the same object, so
    the psutil.Process is kept between calls and both counters are primed here; the
    first sample then covers the time since construction, not a meaningless 0.0.
    """

    def __init__(self, pid: int | None = None):
        self.pid = pid if pid is not None else os.getpid()
        # System-wide cpu_percent keeps one module-level baseline, shared by every
        # caller in this process; one HostSampler per process keeps its intervals honest.
        psutil.cpu_percent(None)
        self._process = _watch(self.pid)

    def sample(self) -> list[TelemetrySample]:
        memory = psutil.virtual_memory()
        reading = TelemetrySample(
            ts_ns=time.time_ns(),
            source=HOST,
            device="host",
            utilization_pct=psutil.cpu_percent(None),
            memory_used_bytes=memory.used,
            memory_total_bytes=memory.total,
        )
        if self._process is not None:
            self._add_process_figures(reading)
        return [reading]

    def _add_process_figures(self, reading: TelemetrySample) -> None:
        # An exited process (reaped, or a zombie its parent has not waited for yet,
        # which psutil still reads as rss 0) leaves the system figures only.
        try:
            with self._process.oneshot():
                if self._process.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.ZombieProcess(self.pid)
                reading.cpu_pct = self._process.cpu_percent(None)
                reading.rss_bytes = self._process.memory_info().rss
        except psutil.NoSuchProcess:
            self._process = None  # exited processes do not come back


def _watch(pid: int) -> psutil.Process | None:
    """A primed psutil.Process for pid, or None if it has already exited."""
    try:
        process = psutil.Process(pid)
        process.cpu_percent(None)
    except psutil.NoSuchProcess:
        return None
    return process


def environment() -> dict:
    """Host facts for the run fingerprint."""
    return {
        "hostname": host_name(),
        "cpu_model": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "memory_total_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def cpu_model() -> str:
    """The CPU's marketing name; platform.processor() is often just "x86_64" on Linux."""
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor()
