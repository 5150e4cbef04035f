"""The records every collector produces and the store keeps.

Times are nanoseconds on the trace's own clock (`start_ns`), durations in
nanoseconds (`dur_ns`). Readers of torch (Kineto JSON) and TensorFlow (XSpace)
traces both return a `TraceData`, so the run orchestration and `xprof import` do not
know which framework a trace came from.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .errors import UserError

# KernelEvent.kind values
KERNEL = "kernel"  # a device compute kernel (Kineto cat "kernel"; XSpace kernel_details)
MEMCPY = "memcpy"
MEMSET = "memset"
CPU_OP = "cpu_op"  # a framework op on a host thread (aten::..., TF op on tf_Compute)
RUNTIME = "runtime"  # CUDA/HIP runtime calls (cudaLaunchKernel, ...)
KINDS = (KERNEL, MEMCPY, MEMSET, CPU_OP, RUNTIME)


@dataclass(slots=True)
class KernelEvent:
    name: str
    kind: str
    start_ns: int
    dur_ns: int
    device: str  # "cpu", "cuda:0", "/device:GPU:0", ...
    stream: str  # CUDA stream / XSpace line / host thread id
    op: str | None = None  # the framework op behind it (aten::addmm, MatMul)
    self_ns: int | None = None  # dur_ns minus nested children on the same track
    correlation: int | None = None
    step: int | None = None  # profiled step it falls in, when known


@dataclass(slots=True)
class MemoryEvent:
    ts_ns: int
    bytes: int  # positive for an allocation, negative for a free
    total_allocated: int | None
    device: str
    allocator: str | None = None
    total_reserved: int | None = None
    peak_bytes_in_use: int | None = None
    fragmentation: float | None = None


@dataclass(slots=True)
class StepTiming:
    step: int
    wall_ns: int
    profiled: bool
    start_ns: int | None = None  # on the trace's clock, for profiled steps
    repeat: int = 0
    peak_bytes: int | None = None  # device allocator peak during the step (GPU only)
    reserved_bytes: int | None = None


@dataclass
class TraceData:
    """What one trace file holds, framework-neutral."""

    source_format: str  # "kineto" or "xplane"
    events: list[KernelEvent] = field(default_factory=list)
    memory: list[MemoryEvent] = field(default_factory=list)
    steps: list[StepTiming] = field(default_factory=list)  # profiled steps seen in the trace
    devices: dict[str, dict] = field(default_factory=dict)  # device -> facts (name, memory, ...)
    total_events: int = 0  # every event the file held, kept or not

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)

    def total_dur_ns(self, kind: str) -> int:
        return sum(e.dur_ns for e in self.events if e.kind == kind)


class TraceFormatError(UserError, ValueError):
    """A trace file that cannot be read: truncated, foreign, or malformed."""


def assign_self_time(events: list[KernelEvent]) -> None:
    """Set `self_ns` on every event: its duration less that of events nested in it on
    the same track (device, stream). Ops nest (aten::linear holds aten::addmm), so
    summing self time counts each nanosecond once."""
    tracks: dict[tuple[str, str], list[KernelEvent]] = {}
    for event in events:
        tracks.setdefault((event.device, event.stream), []).append(event)
    for track in tracks.values():
        track.sort(key=lambda e: (e.start_ns, -e.dur_ns))
        open_events: list[KernelEvent] = []
        for event in track:
            event.self_ns = event.dur_ns
            end = event.start_ns + event.dur_ns
            while open_events and open_events[-1].start_ns + open_events[-1].dur_ns <= event.start_ns:
                open_events.pop()
            if open_events:
                parent = open_events[-1]
                # a child that overruns its parent (clock jitter) only takes what fits
                inside = min(end, parent.start_ns + parent.dur_ns) - event.start_ns
                parent.self_ns -= max(inside, 0)
            open_events.append(event)


def assign_steps(events: list[KernelEvent], steps: list[StepTiming]) -> None:
    """Give each event the profiled step whose window holds its start."""
    windows = sorted(
        (s.start_ns, s.start_ns + s.wall_ns, s.step) for s in steps if s.start_ns is not None
    )
    if not windows:
        return
    starts = [w[0] for w in windows]
    for event in events:
        i = bisect.bisect_right(starts, event.start_ns) - 1
        if i >= 0 and event.start_ns < windows[i][1]:
            event.step = windows[i][2]
