"""Read PyTorch profiler (Kineto) Chrome-trace JSON, `.json` or `.json.gz`, into a TraceData.

Kineto writes one flat `traceEvents` list. Host activity (aten ops, CUDA/HIP runtime
calls) sits on (pid, thread) tracks; device activity (kernels, memcpy, memset) on
(device, stream) tracks. Times are microseconds, often with a fractional part; we keep
integer nanoseconds.

Which op launched a kernel: the kernel's `correlation` names the runtime call that
launched it, and that call was made inside the innermost CPU op open on its thread. We
find that op by time nesting rather than by "External id" because older traces (the
A100 fixtures) put the correlation id in the runtime call's and kernel's "External id",
where it collides with unrelated ops' External ids. "External id" is the link of last
resort, for device events whose runtime call is not in the trace; newer traces (the
MI250 one) agree on both links.

The file is read a piece of a few MB at a time (profiler/json_pieces.py). msgspec decodes
a piece's events into structs of only the fields kept, and one loop moves what is kept
into columns (KernelColumns): memory holds those and one piece, never the whole file
nor an object per event. Links, self time and steps need the whole trace (Kineto writes
a thread's runtime calls after all of its ops), so they are worked out at the end.
"""

from __future__ import annotations

import bisect
import math
import re
import zlib
from array import array
from contextlib import contextmanager
from functools import partial
from itertools import compress
from operator import attrgetter, mul
from pathlib import Path
from typing import Callable, Iterator, Sequence

import msgspec

from profiler.events import (
    CPU_OP,
    KERNEL,
    MEMCPY,
    MEMSET,
    RUNTIME,
    KernelColumns,
    MemoryColumns,
    StepTiming,
    TraceData,
    TraceFormatError,
    self_times,
    steps_at,
    track_order,
)
from profiler.json_pieces import ArrayPieces, Empty, PieceError

# Kineto "cat" -> KernelEvent.kind. "operator" is what torch < 1.9 called cpu_op.
HOST_KINDS = {"cpu_op": CPU_OP, "operator": CPU_OP, "cuda_runtime": RUNTIME, "cuda_driver": RUNTIME}
DEVICE_KINDS = {"kernel": KERNEL, "gpu_memcpy": MEMCPY, "gpu_memset": MEMSET}
KIND_OF_CATEGORY = {**HOST_KINDS, **DEVICE_KINDS}

MEMORY = "[memory]"
STEP_NAME = re.compile(r"ProfilerStep#([0-9]{1,18})")
# torch.optim wraps each step in a `record_function("Optimizer.step#SGD.step")`; the ops
# inside it (aten::add_ on CPU, _foreach_ kernels on GPU) are the optimizer's, which
# the op name alone does not say. They take the annotation as their op.
OPTIMIZER_SCOPE = "Optimizer.step#"
# Events the column loop leaves to _add_other: memory events and step markers, by name.
OTHER_NAMES = (MEMORY, "ProfilerStep#")
GZIP_MAGIC = b"\x1f\x8b"
# A piece of the file decoded at once: about 700 events of a CPU trace. Measured on a
# 38 MB trace: 256 KiB pieces read it in 0.19 s of CPU against 0.22 s for 1 MiB ones
# (what a piece makes stays in the CPU's caches), with 27 MB peak RSS against 35.
CHUNK_BYTES = 256 << 10
NO_ID = -(1 << 63)  # an absent "External id" in an array of them
INT64 = range(-(1 << 63), 1 << 63)


class _Malformed(Exception):
    """A defect in the parsed document; read_kineto adds the file name."""


def read_kineto(path, chunk_bytes: int = CHUNK_BYTES,
                between_pieces: Callable[[], None] | None = None) -> TraceData:
    """Read one Kineto trace, `chunk_bytes` of it at a time, calling `between_pieces()`
    after each piece. Raises TraceFormatError, naming the file, for anything that is not
    a well-formed Kineto trace."""
    path = Path(path)
    builder = _TraceBuilder()
    try:
        with _opened(path) as read:
            pieces = ArrayPieces(read, "traceEvents", _decode_events, _DOCUMENT.decode, chunk_bytes)
            for first, events in pieces:
                builder.add(events, first)
                if between_pieces:
                    between_pieces()
            devices = _devices(pieces.document.deviceProperties)
        return builder.finish(devices)
    except _Malformed as err:
        raise TraceFormatError(f"{path}: {err}") from None
    except Empty:
        raise TraceFormatError(f"{path}: empty, not a Kineto trace") from None
    except PieceError as err:
        raise TraceFormatError(f"{path}: {err}") from None
    except msgspec.ValidationError as err:
        message = str(err)
        if message.startswith("Object missing required field `traceEvents`") or (
                message.startswith("Expected `object`, got") and " - at " not in message):
            raise TraceFormatError(f"{path}: no traceEvents list, not a Kineto trace ({err})") from None
        raise TraceFormatError(f"{path}: {err}") from None
    except (msgspec.DecodeError, RecursionError) as err:
        raise TraceFormatError(f"{path}: not JSON ({err})") from None


@contextmanager
def _opened(path: Path):
    """A `read(n)` over the file's JSON text, gunzipped if it is gzip (sniffed by its
    magic rather than its suffix: exported traces get renamed)."""
    with open(path, "rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            raw.seek(0)
            yield raw.read
            return
        raw.seek(0)
        import gzip  # for gzipped traces only

        with gzip.GzipFile(fileobj=raw) as unzipped:
            def read(size: int) -> bytes:
                try:
                    return unzipped.read(size)
                except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
                    raise TraceFormatError(f"{path}: truncated or corrupt gzip ({err})") from None

            yield read


# Typed decoding: msgspec builds only the fields kept, checking their types as it goes,
# in structs the garbage collector need not track (measured on a 104k-event, 38 MB trace:
# 0.13 s against 1.9 s for json.loads into dicts, and 0.18 s for tracked structs).
class _Args(msgspec.Struct, gc=False, frozen=True):
    external_id: int | None = msgspec.field(default=None, name="External id")
    correlation: int | None = None
    device: int | None = None
    stream: int | str | None = None
    bytes: int | None = msgspec.field(default=None, name="Bytes")
    total_allocated: int | None = msgspec.field(default=None, name="Total Allocated")
    total_reserved: int | None = msgspec.field(default=None, name="Total Reserved")
    device_type: int | None = msgspec.field(default=None, name="Device Type")
    device_id: int | None = msgspec.field(default=None, name="Device Id")


_NO_ARGS = _Args()


class _Event(msgspec.Struct, gc=False):
    ph: str | None = None
    cat: str | None = None
    name: str | None = None
    ts: int | float | None = None  # int where written so: 1.7e15 µs loses ns as a float
    dur: int | float | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    args: _Args = _NO_ARGS  # `"args": null` is taken by _decode_events's second try


class _LooseEvent(_Event, gc=False):
    args: msgspec.Raw = msgspec.Raw()  # the JSON text of the args object


class _Document(msgspec.Struct):
    traceEvents: list[_Event]
    deviceProperties: list[dict] = []


_DOCUMENT = msgspec.json.Decoder(_Document)
_EVENTS = msgspec.json.Decoder(list[_Event])
_LOOSE_EVENTS = msgspec.json.Decoder(list[_LooseEvent])
_ARGS = msgspec.json.Decoder(_Args)


def _decode_events(text: bytes) -> list[_Event]:
    """A JSON array of events. An odd field in the args of an event we drop (a flow,
    metadata) cannot fail the trace: on a type error in some args the piece is decoded
    again with the args left raw, and only the args of kept events decoded."""
    try:
        return _EVENTS.decode(text)
    except msgspec.ValidationError as err:
        if ".args" not in str(err):
            raise
    events = _LOOSE_EVENTS.decode(text)
    for index, event in enumerate(events):
        args = _NO_ARGS
        if event.name == MEMORY or (event.ph == "X" and event.cat in KIND_OF_CATEGORY):
            try:
                args = _ARGS.decode(event.args) if bytes(event.args) not in (b"", b"null") else _NO_ARGS
            except (msgspec.ValidationError, msgspec.DecodeError) as err:
                raise msgspec.ValidationError(f"{err} in the args at `$[{index}]`") from None
        events[index] = _Event(event.ph, event.cat, event.name, event.ts, event.dur, event.pid,
                               event.tid, args)
    return events


def _devices(properties: list) -> dict[str, dict]:
    devices = {}
    for index, entry in enumerate(properties):
        try:
            device, facts = _device(entry)
        except _Malformed as err:
            raise _Malformed(f"deviceProperties[{index}]: {err}") from None
        devices[device] = facts
    return devices


def _device(entry: dict) -> tuple[str, dict]:
    facts = {key: value for key, value in entry.items() if key not in ("id", "totalGlobalMem")}
    if "totalGlobalMem" in entry:
        facts["total_memory_bytes"] = _integer(entry, "totalGlobalMem")
    return f"cuda:{_integer(entry, 'id')}", facts


class _Track:
    """A host thread or a device stream: its events (indices into the columns, in
    trace order) and, on a thread, the optimizer scopes."""

    __slots__ = ("device", "stream", "events", "scopes")

    def __init__(self, device: str, stream: str) -> None:
        self.device = device
        self.stream = stream
        self.events = array("q")
        self.scopes: list[tuple[str, int, int]] = []


_TS, _DUR, _NAME, _CAT, _ARGS_OF = map(attrgetter, ("ts", "dur", "name", "cat", "args"))
_EXTERNAL_ID, _CORRELATION, _BYTES, _TOTAL_ALLOCATED, _TOTAL_RESERVED = map(
    attrgetter, ("external_id", "correlation", "bytes", "total_allocated", "total_reserved"))
_TRACK_DEVICE, _TRACK_STREAM = attrgetter("device"), attrgetter("stream")
_TIMES_1000 = partial(mul, 1000)


def _ns_all(events: list[_Event], field: attrgetter) -> Iterator[int]:
    """A microsecond field of each event as integer nanoseconds, in C: a null raises
    TypeError, an infinity OverflowError, a NaN ValueError."""
    return map(round, map(_TIMES_1000, map(field, events)))


class _TraceBuilder:
    """Takes traceEvents a piece at a time, in order; `finish` links kernels to ops
    and sets self time and steps (see the module docstring)."""

    def __init__(self) -> None:
        self.events = KernelColumns()
        self.external_ids = array("q")  # per event in `events`, NO_ID where absent
        self.memory = MemoryColumns()
        self.steps: list[StepTiming] = []
        self.threads: dict[tuple, _Track] = {}  # by (pid, tid)
        self.streams: dict[tuple[int, int], _Track] = {}  # by (device, stream)
        self.names: dict[str, str] = {}  # one str object per distinct name
        self.total_events = 0

    def add(self, events: list[_Event], first_index: int) -> None:
        """Take the next piece of traceEvents, whose first event is traceEvents[first_index]."""
        try:
            self._add(events)
        except (TypeError, ValueError, OverflowError):
            for offset, event in enumerate(events):
                defect = _defect(event)
                if defect:
                    raise _Malformed(f"traceEvents[{first_index + offset}]: {defect}") from None
            raise
        self.total_events += len(events)

    def _add(self, events: list[_Event]) -> None:
        """Sort the piece's events one by one, cheaply; then fill each column from the
        host and device events in one pass (measured 2x faster than a loop filling all
        columns an event at a time). A bad value raises TypeError, ValueError or
        OverflowError, which `_defect` explains."""
        kept: list[_Event] = []
        tracks: list[_Track] = []
        memory: list[_Event] = []
        threads, kind_of = self.threads, KIND_OF_CATEGORY.get
        for event in events:
            kind, name = kind_of(event.cat), event.name
            if kind is None or event.ph != "X" or not name or name.startswith(OTHER_NAMES):
                if name == MEMORY:
                    memory.append(event)
                    continue
                if not self._add_annotation(event, kind, name or ""):
                    continue
            if kind is CPU_OP or kind is RUNTIME:
                tracks.append(threads.get((event.pid, event.tid)) or self._thread(event))
            else:
                tracks.append(self._stream(event.args))
            kept.append(event)
        self._add_columns(kept, tracks)
        self._add_memory(memory)

    def _add_annotation(self, event: _Event, kind: str | None, name: str) -> bool:
        """Take a step or an optimizer scope; True for a host or device event whose
        name only looked like one, which the caller takes."""
        if event.ph != "X":
            return False  # flows, instant events, metadata
        step = STEP_NAME.fullmatch(name) if name.startswith("ProfilerStep#") else None
        # ROCm/CUDA traces also copy the step annotation onto the GPU timeline
        # (gpu_user_annotation); taking it too would count the step twice.
        if step and event.cat != "gpu_user_annotation":
            self.steps.append(StepTiming(step=int(step[1]), wall_ns=round(event.dur * 1000),
                                         profiled=True, start_ns=round(event.ts * 1000)))
            return False
        if event.cat == "user_annotation" and name.startswith(OPTIMIZER_SCOPE):
            thread = self.threads.get((event.pid, event.tid)) or self._thread(event)
            start_ns = round(event.ts * 1000)
            thread.scopes.append((name, start_ns, start_ns + round(event.dur * 1000)))
            return False
        return kind is not None

    def _thread(self, event: _Event) -> _Track:
        if event.pid is None or event.tid is None:
            raise TypeError
        thread = self.threads[event.pid, event.tid] = _Track("cpu", str(event.tid))
        return thread

    def _stream(self, args: _Args) -> _Track:
        if args.device is None or type(args.stream) is not int:
            raise TypeError
        stream = self.streams.get((args.device, args.stream))
        if stream is None:
            # torch calls ROCm devices "cuda" too, and so do we
            stream = self.streams[args.device, args.stream] = _Track(f"cuda:{args.device}",
                                                                     str(args.stream))
        return stream

    def _add_columns(self, kept: list[_Event], tracks: list[_Track]) -> None:
        columns = self.events
        first = len(columns.name)
        columns.start_ns.extend(_ns_all(kept, _TS))
        columns.dur_ns.extend(_ns_all(kept, _DUR))
        intern = self.names.setdefault
        names = [intern(name, name) if name else "" for name in map(_NAME, kept)]
        kinds = list(map(KIND_OF_CATEGORY.__getitem__, map(_CAT, kept)))
        args = list(map(_ARGS_OF, kept))
        self.external_ids.extend([NO_ID if i is None else i for i in map(_EXTERNAL_ID, args)])
        columns.name += names
        columns.kind += kinds
        columns.op += [name if kind is CPU_OP else None for name, kind in zip(names, kinds)]
        columns.device += map(_TRACK_DEVICE, tracks)
        columns.stream += map(_TRACK_STREAM, tracks)
        columns.correlation += map(_CORRELATION, args)
        for index, track in enumerate(tracks, first):
            track.events.append(index)

    def _add_memory(self, events: list[_Event]) -> None:
        memory = self.memory
        args = list(map(_ARGS_OF, events))
        memory.ts_ns.extend(_ns_all(events, _TS))
        memory.bytes.extend(map(_BYTES, args))  # a null raises TypeError
        memory.total_allocated += map(_TOTAL_ALLOCATED, args)
        memory.total_reserved += map(_TOTAL_RESERVED, args)
        intern = self.names.setdefault
        for device in map(_memory_device, args):
            memory.device.append(intern(device, device))

    def finish(self, devices: dict[str, dict]) -> TraceData:
        events = self.events
        starts, durs = events.start_ns, events.dur_ns
        # self time counts per (device, stream): threads of two processes with one tid share it
        host_tracks: dict[str, list[_Track]] = {}
        for thread in self.threads.values():
            host_tracks.setdefault(thread.stream, []).append(thread)
        orders = {}  # thread -> its events in track order
        tracks = []
        for threads in host_tracks.values():
            if len(threads) == 1:
                order = orders[threads[0]] = track_order(starts, durs, threads[0].events)
            else:
                order = track_order(starts, durs, array("q", sorted(i for t in threads for i in t.events)))
            tracks.append(order)
        launcher_op: dict[int, str | None] = {}
        any_calls = RUNTIME in events.kind
        for thread in self.threads.values():
            calls = [i for i in thread.events if events.kind[i] is RUNTIME] if any_calls else []
            if not calls and not thread.scopes:
                continue
            order = orders.get(thread) or track_order(starts, durs, thread.events)
            if calls:
                ops = array("q", compress(order, map(CPU_OP.__eq__, map(events.kind.__getitem__, order))))
                calls.sort(key=starts.__getitem__)
                _set_enclosing_op(events, ops, calls)
                launcher_op.update((events.correlation[c], events.op[c]) for c in calls
                                   if events.correlation[c] is not None)
            _set_scope_op(events, order, thread.scopes)
        self._link_device_events(launcher_op)
        tracks += (track_order(starts, durs, stream.events) for stream in self.streams.values())
        events.self_ns = self_times(starts, durs, tracks)
        events.step = steps_at(starts, self.steps) or [None] * len(events)
        memory = self.memory
        memory.allocator = memory.peak_bytes_in_use = memory.fragmentation = [None] * len(memory)
        return TraceData(source_format="kineto", events=events, memory=memory, steps=self.steps,
                         devices=devices, total_events=self.total_events)

    def _link_device_events(self, launcher_op: dict[int, str | None]) -> None:
        events = self.events
        op_by_external_id: dict[int, str] | None = None
        for index in (index for stream in self.streams.values() for index in stream.events):
            correlation = events.correlation[index]
            if correlation in launcher_op:
                events.op[index] = launcher_op[correlation]
                continue
            if op_by_external_id is None:  # the last resort, built when first needed
                op_by_external_id = {
                    external_id: name for name, kind, external_id
                    in zip(events.name, events.kind, self.external_ids)
                    if kind is CPU_OP and external_id != NO_ID}
            events.op[index] = op_by_external_id.get(self.external_ids[index])


def _set_enclosing_op(events: KernelColumns, ops: list[int], calls: list[int]) -> None:
    """Give each runtime call the name of the innermost CPU op open on its thread when
    the call started, in one sweep over both lists in time order."""
    starts, durs = events.start_ns, events.dur_ns
    open_ops: list[int] = []
    next_op = 0
    for call in calls:
        call_start = starts[call]
        while next_op < len(ops) and starts[ops[next_op]] <= call_start:
            _close_ended(open_ops, starts, durs, starts[ops[next_op]])
            open_ops.append(ops[next_op])
            next_op += 1
        _close_ended(open_ops, starts, durs, call_start)
        events.op[call] = events.name[open_ops[-1]] if open_ops else None


def _close_ended(open_ops: list[int], starts, durs, now_ns: int) -> None:
    while open_ops and starts[open_ops[-1]] + durs[open_ops[-1]] <= now_ns:
        open_ops.pop()


def _set_scope_op(events: KernelColumns, order: Sequence[int], scopes: list[tuple[str, int, int]]) -> None:
    """Ops wholly inside an optimizer scope on their thread (`order`: its events in
    track order) take the scope as their op."""
    starts, durs, kinds = events.start_ns, events.dur_ns, events.kind
    for scope, start_ns, end_ns in scopes:
        first = bisect.bisect_left(order, start_ns, key=starts.__getitem__)
        for event in order[first:bisect.bisect_right(order, end_ns, key=starts.__getitem__)]:
            if kinds[event] is CPU_OP and starts[event] + durs[event] <= end_ns:
                events.op[event] = scope


def _memory_device(args: _Args) -> str:
    if args.device_type == 0:  # a c10::DeviceType
        return "cpu"
    if args.device_type == 1:  # HIP allocations report CUDA as well
        return f"cuda:{args.device_id}"
    return f"device_type_{args.device_type}:{args.device_id}"


# Field checks: the column passes let Python raise on a bad value (TypeError for a null,
# OverflowError past 64 bits or infinity, ValueError for NaN); these say what it was, so
# a malformed trace fails with a message naming the event and the field.


def _defect(event: _Event) -> str | None:
    """What is wrong with an event, in the order the fields are used; None if nothing."""
    name, kind, args = event.name or "", KIND_OF_CATEGORY.get(event.cat), event.args
    if name == MEMORY:
        if args.device_type is None or args.bytes is None or args.device_id is None:
            return "'Bytes', 'Device Type' and 'Device Id' are needed in a [memory] event"
        return _time_defect(event.ts, "ts") or _int64_defect(args.bytes, "Bytes")
    if event.ph != "X":
        return None
    step = STEP_NAME.fullmatch(name) if name.startswith("ProfilerStep#") else None
    if step and event.cat != "gpu_user_annotation":
        return _time_defect(event.dur, "dur") or _time_defect(event.ts, "ts")
    scope = event.cat == "user_annotation" and name.startswith(OPTIMIZER_SCOPE)
    if kind is None and not scope:
        return None
    if kind in DEVICE_KINDS.values():
        if args.device is None or args.stream is None:
            return "'device' and 'stream' are needed in a device event's args"
        if not isinstance(args.stream, int):
            return f"'stream' is {args.stream!r}, expected an integer"
    elif event.pid is None or event.tid is None:
        return "'pid' and 'tid' are needed in a host event"
    return (_time_defect(event.ts, "ts") or _time_defect(event.dur, "dur")
            or (None if scope else _int64_defect(args.external_id, "External id")))


def _time_defect(value: int | float | None, key: str) -> str | None:
    """What is wrong with a time in microseconds, kept as integer nanoseconds."""
    if value is None:
        return f"'{key}' is missing or null"
    value_ns = value * 1000
    if not math.isfinite(value_ns) or round(value_ns) not in INT64:
        return f"'{key}' is {value}, not a time in microseconds"
    return None


def _int64_defect(value: int | None, key: str) -> str | None:
    return f"'{key}' is {value}, beyond 64 bits" if value is not None and value not in INT64 else None


def _integer(mapping: dict, key: str) -> int:
    value = mapping.get(key)
    if value is None:
        raise _Malformed(f"'{key}' is missing or null")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"'{key}' is {value!r}, expected an integer")
    return value
