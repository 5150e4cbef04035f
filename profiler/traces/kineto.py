"""Read PyTorch profiler (Kineto) Chrome-trace JSON, `.json` or `.json.gz`, into a
TraceData, a piece at a time; see docs/ingest.md."""

from __future__ import annotations

import math
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import msgspec

from profiler.traces.events import TraceData, TraceFormatError, whole_trace_step
from profiler.traces.json_pieces import ArrayPieces, Empty, PieceError
from profiler.traces.kineto_columns import (
    DEVICE_KINDS,
    KIND_OF_CATEGORY,
    MEMORY,
    LAYER_SCOPE,
    OPTIMIZER_SCOPE,
    SEGMENT_EVENTS,
    STEP_NAME,
    TraceBuilder,
)

GZIP_MAGIC = b"\x1f\x8b"
# A piece of the file decoded at once: about 700 events of a CPU trace. Measured on a
# 38 MB trace: 256 KiB pieces read it in 0.19 s of CPU against 0.22 s for 1 MiB ones
# (what a piece makes stays in the CPU's caches), with 27 MB peak RSS against 35.
CHUNK_BYTES = 256 << 10
INT64 = range(-(1 << 63), 1 << 63)


class _Malformed(Exception):
    """A defect in the parsed document; read_kineto adds the file name."""


def read_kineto(path, chunk_bytes: int = CHUNK_BYTES, between_pieces: Callable[[], None] | None = None,
                on_segment: Callable[[TraceData], None] | None = None,
                segment_events: int | None = None, time_cuts: bool = True,
                spill_bytes: int | None = None) -> TraceData:
    """Read one Kineto trace, `chunk_bytes` of it at a time, calling `between_pieces()`
    after each piece. With `on_segment`, events final before the trace ends are given to
    it in segments of about `segment_events` (default SEGMENT_EVENTS; see
    profiler/traces/kineto_columns.py), and the TraceData returned holds the rest, with every
    step; NotInTimeOrder then means the segments given are void. `time_cuts` False
    gives no segment before the end but memory events (a re-read after NotInTimeOrder).
    A trace that cannot be cut as it is read (a GPU's) moves its events to disk once
    their columns hold `spill_bytes` (default SPILL_BYTES; see profiler/traces/kineto_spill.py) and, with
    `on_segment`, gives them in segments at the end. With `on_segment`, a trace without
    step markers comes back as one step, its whole span. Raises TraceFormatError, naming
    the file, for anything that is not a well-formed Kineto trace."""
    path = Path(path)
    segment_events = (segment_events or SEGMENT_EVENTS) if on_segment else None
    builder = TraceBuilder(segment_events)
    if not time_cuts:
        builder.never_cut()
    spill = None
    try:
        with _opened(path) as read:
            pieces = ArrayPieces(read, "traceEvents", _decode_events, _DOCUMENT.decode, chunk_bytes)
            for first, events in pieces:
                if first == 0 and pieces.head_document.deviceProperties:
                    builder.never_cut()  # a GPU's trace: runtime calls come after all ops
                _add(builder, events, first)
                segment = on_segment and builder.cut()
                if segment:
                    on_segment(segment)
                if on_segment and builder.cut_at is None:
                    spill = _spilled(path, builder, spill, spill_bytes)
                if between_pieces:
                    between_pieces()
            devices = _devices(pieces.document.deviceProperties)
        if not builder.total_events:
            raise TraceFormatError(f"{path}: traceEvents is empty, nothing to import")
        if spill:
            return spill.finish(builder, devices, on_segment, segment_events)
        trace = builder.finish(devices)
        if on_segment:  # read to be stored: in this process, beside the storing one
            whole_trace_step(trace)
        return trace
    except _Malformed as err:
        raise TraceFormatError(f"{path}: {err}") from None
    except Empty:
        raise TraceFormatError(f"{path}: empty, not a Kineto trace") from None
    except PieceError as err:
        raise TraceFormatError(f"{path}: {err}") from None
    except msgspec.ValidationError as err:
        message = str(err)
        if message.startswith("Object missing required field `traceEvents`") or (
                message.startswith("Expected `object`, got") and " - at " not in message
                and " in the args at " not in message):
            raise TraceFormatError(f"{path}: no traceEvents list, not a Kineto trace ({err})") from None
        raise TraceFormatError(f"{path}: {err}") from None
    except (msgspec.DecodeError, RecursionError) as err:
        raise TraceFormatError(f"{path}: not JSON ({err})") from None
    finally:
        if spill:
            spill.close()


def _add(builder: TraceBuilder, events: list[_Event], first_index: int) -> None:
    """Give the builder one piece; a bad value in it becomes a message naming the event
    (by its index in traceEvents) and the field."""
    try:
        builder.add(events)
    except (TypeError, ValueError, OverflowError):
        for offset, event in enumerate(events):
            defect = _defect(event)
            if defect:
                raise _Malformed(f"traceEvents[{first_index + offset}]: {defect}") from None
        raise


def _spilled(path: Path, builder: TraceBuilder, spill, spill_bytes: int | None):
    """The spill, made if need be, once the builder's columns hold too many bytes (its
    events are moved there)."""
    from profiler.traces import kineto_spill  # for GPU traces only

    if builder.held_bytes() >= (spill_bytes or kineto_spill.SPILL_BYTES):
        spill = spill or kineto_spill.Spill(path)
        spill.add(builder)
    return spill


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
    # record_shapes: kept as JSON text, for FLOPs and bytes (analysis/costs.py)
    input_dims: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Input type")
    concrete_inputs: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Concrete Inputs")
    # the autograd sequence number that ties a backward function to its forward op
    sequence: int | None = msgspec.field(default=None, name="Sequence number")


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
    scope = event.cat == "user_annotation" and name.startswith((OPTIMIZER_SCOPE, LAYER_SCOPE))
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
    if key == "dur" and value < 0:
        return f"'dur' is {value}, a negative duration"
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
