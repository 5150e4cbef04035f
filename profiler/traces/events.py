"""The records every trace reader produces and the store keeps: trace events, memory
events, steps, held as columns; times in nanoseconds on the trace's own clock."""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass, field, fields
from itertools import compress, count, islice, repeat
from operator import add, attrgetter, eq, le, neg
from typing import Iterable, Iterator, Sequence

from profiler.errors import UserError

# TraceEvent.kind values
KERNEL = "kernel"  # a device compute kernel (Kineto cat "kernel"; XSpace kernel_details)
MEMCPY = "memcpy"
MEMSET = "memset"
CPU_OP = "cpu_op"  # a framework op on a host thread (aten::..., TF op on tf_Compute)
RUNTIME = "runtime"  # CUDA/HIP runtime calls (cudaLaunchKernel, ...)
KINDS = (KERNEL, MEMCPY, MEMSET, CPU_OP, RUNTIME)


@dataclass(slots=True)
class TraceEvent:
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
    layer: str | None = None  # the model layer it ran for ("head", "head:backward"), when recorded
    shapes: str | None = None  # its inputs' dims, types and values as JSON ([[dims], [types], [values]])


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


class _Columns:
    """Records of one dataclass held as columns, one per field in field order: a list,
    or an array of 64-bit ints for a field that is always an int (8 bytes an event
    rather than an object of 28 or more). A 100k-event trace is a dozen lists rather than
    100k objects, and the store's rows are a zip of them. Iterating gives the records."""

    record: type

    def columns(self) -> list:
        return [getattr(self, f.name) for f in fields(self.record)]

    def rows(self, *leading) -> Iterator[tuple]:
        """Each record as a tuple of its fields, after the `leading` values."""
        return zip(*map(repeat, leading), *self.columns())

    def __iter__(self) -> Iterator:
        return map(self.record, *self.columns())

    def __getitem__(self, index: int):
        return self.record(*(column[index] for column in self.columns()))

    def __len__(self) -> int:
        return len(self.columns()[0])

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and all(
            list(a) == list(b) for a, b in zip(self.columns(), other.columns()))

    def split(self, count: int):
        """New columns of the first `count` records; these keep the rest."""
        head = type(self)()
        for f in fields(self.record):
            column = getattr(self, f.name)
            setattr(head, f.name, column[:count])
            setattr(self, f.name, column[count:])
        return head

    @classmethod
    def of(cls, records: Iterable):
        """Columns holding `records`, in their order."""
        columns = cls()
        # attrgetter reads a record's fields in one C call; dataclasses.astuple
        # deep-copies, and cost 23 µs a row
        rows = map(attrgetter(*(f.name for f in fields(cls.record))), records)
        for column, values in zip(columns.columns(), zip(*rows)):
            column.extend(values)
        return columns


class EventColumns(_Columns):
    """KernelEvents as columns (see _Columns); the readers of large traces fill them."""

    record = TraceEvent

    def __init__(self) -> None:
        self.name: list[str] = []
        self.kind: list[str] = []
        self.start_ns = array("q")
        self.dur_ns = array("q")
        self.device: list[str] = []
        self.stream: list[str] = []
        self.op: list[str | None] = []
        self.self_ns: Sequence[int | None] = []  # see self_times
        self.correlation: list[int | None] = []
        self.step: list[int | None] = []
        self.layer: list[str | None] = []
        self.shapes: list[str | None] = []

    def count(self, kind: str) -> int:
        return self.kind.count(kind)

    def total_dur_ns(self, kind: str) -> int:
        return sum(compress(self.dur_ns, map(kind.__eq__, self.kind)))


class MemoryColumns(_Columns):
    """MemoryEvents as columns (see _Columns)."""

    record = MemoryEvent

    def __init__(self) -> None:
        self.ts_ns = array("q")
        self.bytes = array("q")
        self.total_allocated: list[int | None] = []
        self.device: list[str] = []
        self.allocator: list[str | None] = []
        self.total_reserved: list[int | None] = []
        self.peak_bytes_in_use: list[int | None] = []
        self.fragmentation: list[float | None] = []


@dataclass
class TraceData:
    """What one trace file holds, framework-neutral."""

    source_format: str  # "kineto" or "xplane"
    events: EventColumns = field(default_factory=EventColumns)
    memory: MemoryColumns = field(default_factory=MemoryColumns)
    steps: list[StepTiming] = field(default_factory=list)  # profiled steps seen in the trace
    devices: dict[str, dict] = field(default_factory=dict)  # device -> facts (name, memory, ...)
    total_events: int = 0  # every event the file held, kept or not

    def count(self, kind: str) -> int:
        return self.events.count(kind)

    def total_dur_ns(self, kind: str) -> int:
        return self.events.total_dur_ns(kind)


class TraceFormatError(UserError, ValueError):
    """A trace file that cannot be read: truncated, foreign, or malformed."""


class NotInTimeOrder(Exception):
    """A reader that gave events as final met a later one that changes them (one out
    of time order): the caller drops what it was given and reads the trace again whole."""


def track_order(start_ns: Sequence[int], dur_ns: Sequence[int], indices: Sequence[int]) -> Sequence[int]:
    """The indices of a track's events by start, outer before inner at equal starts,
    then in trace order: the order self time and links walk a track in. A track
    already in that order (Kineto writes a thread's ops so) comes back as it is, without
    the sort's tuple per event (130 bytes each, the most of a large import's memory)."""
    starts = array("q", map(start_ns.__getitem__, indices))
    if all(map(le, starts, islice(starts, 1, None))):
        ties = compress(count(), map(eq, starts, islice(starts, 1, None)))
        if all(dur_ns[indices[k]] >= dur_ns[indices[k + 1]] for k in ties):
            return indices
    order = sorted(zip(starts, map(neg, map(dur_ns.__getitem__, indices)), indices))
    return array("q", (index for _, _, index in order))


def self_times(start_ns: Sequence[int], dur_ns: Sequence[int], tracks: Iterable[Sequence[int]]) -> array:
    """Each event's duration less that of the events nested in it on its track (a
    device and stream; each given in track_order). Ops nest (aten::linear holds
    aten::addmm), so summing self time counts each nanosecond once."""
    self_ns = array("q", dur_ns)
    for track in tracks:
        open_events: list[tuple[int, int]] = []  # (end, index), innermost last
        for event in track:
            start = start_ns[event]
            while open_events and open_events[-1][0] <= start:
                open_events.pop()
            end = start + dur_ns[event]
            if open_events:
                # a child that overruns its parent (clock jitter) only takes what fits
                parent_end, parent = open_events[-1]
                inside = (end if end < parent_end else parent_end) - start
                if inside > 0:
                    self_ns[parent] -= inside
            open_events.append((end, event))
    return self_ns


def steps_at(start_ns: Iterable[int], steps: list[StepTiming]) -> list[int | None] | None:
    """The profiled step whose window holds each start, or None where none does; None
    for all when no step has a start."""
    windows = sorted(
        (s.start_ns, s.start_ns + s.wall_ns, s.step) for s in steps if s.start_ns is not None
    )
    if not windows:
        return None
    starts = [w[0] for w in windows] + [math.inf]
    found = []
    # starts come mostly in order: look the window up only when leaving the last one
    window = None
    low = high = -math.inf
    for start in start_ns:
        if not low <= start < high:
            i = bisect.bisect_right(starts, start) - 1
            window = windows[i] if i >= 0 else None
            low, high = (starts[i] if i >= 0 else -math.inf), starts[i + 1]
        found.append(window[2] if window is not None and start < window[1] else None)
    return found


def whole_trace_step(trace: TraceData) -> None:
    """A trace without step markers is one step, from its first event to its last."""
    events = trace.events
    if trace.steps or not len(events):
        return
    start = min(events.start_ns)
    end = max(map(add, events.start_ns, events.dur_ns))
    trace.steps.append(StepTiming(0, end - start, True, start))
    # every event starts within it, one of no length at its very end too (which a
    # window's end, exclusive, would leave out)
    events.step = [0] * len(events)


def assign_self_time(events: list[TraceEvent]) -> None:
    """Set `self_ns` on every event (see self_times); tracks are (device, stream)."""
    tracks: dict[tuple[str, str], list[int]] = {}
    for i, event in enumerate(events):
        tracks.setdefault((event.device, event.stream), []).append(i)
    start_ns, dur_ns = [e.start_ns for e in events], [e.dur_ns for e in events]
    found = self_times(start_ns, dur_ns, (track_order(start_ns, dur_ns, t) for t in tracks.values()))
    for event, self_ns in zip(events, found):
        event.self_ns = self_ns


def assign_steps(events: list[TraceEvent], steps: list[StepTiming]) -> None:
    """Give each event the profiled step whose window holds its start."""
    found = steps_at((e.start_ns for e in events), steps)
    if found is not None:
        for event, step in zip(events, found):
            event.step = step
