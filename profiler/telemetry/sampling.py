"""The sampler protocol, the sample record, and the thread that polls samplers on a
timer, so the run orchestration never knows which source it is talking to."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, Sequence

# TelemetrySample.source values
NVML = "nvml"
HOST = "host"

# The NVIDIA driver refreshes GPU utilization every 1/6 s to 1 s depending on the
# product, so polling faster than this buys nothing but load.
DEFAULT_INTERVAL_S = 1.0


@dataclass(slots=True)
class TelemetrySample:
    """One reading of one device: a row of the store's `samples` table.

    `utilization_pct` and the memory figures describe the device: the GPU, or for the
    host the whole machine (system CPU %, system RAM). `cpu_pct` and `rss_bytes`
    describe the watched process (the framework subprocess) and only come from the
    host sampler. A metric the source does not have or the device does not report
    is None.
    """

    ts_ns: int  # wall clock, time.time_ns(), so samples line up across processes
    source: str  # NVML or HOST
    device: str  # "gpu:0", "host"
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    power_w: float | None = None
    sm_clock_mhz: int | None = None
    temperature_c: int | None = None
    cpu_pct: float | None = None  # watched process, % of one core (can exceed 100)
    rss_bytes: int | None = None  # watched process


class Sampler(Protocol):
    def sample(self) -> list[TelemetrySample]:
        """The current readings; [] when the source is absent on this machine."""
        ...


class SamplerThread(threading.Thread):
    """Calls every sampler every `interval_s` seconds on a daemon thread.

    A daemon, so a forgotten `stop()` never keeps the interpreter alive. The first
    error of each failing sampler is kept in `errors` (one line each); the thread
    keeps calling it, as device errors are often transient, and keeps the others going.
    """

    def __init__(self, samplers: Sequence[Sampler], interval_s: float = DEFAULT_INTERVAL_S):
        super().__init__(name="xprof-telemetry", daemon=True)
        self.samplers = list(samplers)
        self.interval_s = interval_s
        self.errors: list[str] = []
        self._failed: set[int] = set()  # indexes into self.samplers already in errors
        self._samples: list[TelemetrySample] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self) -> None:
        # Event.wait rather than sleep: stop() ends the wait at once, whatever the interval.
        while True:
            self._sample_all()
            if self._stopping.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def drain(self) -> list[TelemetrySample]:
        """The samples collected since the last drain, oldest first."""
        with self._lock:
            drained, self._samples = self._samples, []
        return drained

    def _sample_all(self) -> None:
        for position, sampler in enumerate(self.samplers):
            try:
                samples = sampler.sample()
            except Exception as exc:  # noqa: BLE001 - recorded in errors, see the class docstring
                self._record_error(position, sampler, exc)
                continue
            with self._lock:
                self._samples.extend(samples)

    def _record_error(self, position: int, sampler: Sampler, exc: Exception) -> None:
        if position in self._failed:
            return
        self._failed.add(position)
        self.errors.append(f"{type(sampler).__name__}: {type(exc).__name__}: {exc}")

