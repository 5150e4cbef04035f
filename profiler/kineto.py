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
"""

from __future__ import annotations

import bisect
import gzip
import math
import re
import zlib
from pathlib import Path

import msgspec

from profiler.events import (
    CPU_OP,
    KERNEL,
    MEMCPY,
    MEMSET,
    RUNTIME,
    KernelEvent,
    MemoryEvent,
    StepTiming,
    TraceData,
    TraceFormatError,
    assign_self_time,
    assign_steps,
)

# Kineto "cat" -> KernelEvent.kind. "operator" is what torch < 1.9 called cpu_op.
HOST_KINDS = {"cpu_op": CPU_OP, "operator": CPU_OP, "cuda_runtime": RUNTIME, "cuda_driver": RUNTIME}
DEVICE_KINDS = {"kernel": KERNEL, "gpu_memcpy": MEMCPY, "gpu_memset": MEMSET}

STEP_NAME = re.compile(r"ProfilerStep#([0-9]{1,18})")
# torch.optim wraps each step in a `record_function("Optimizer.step#SGD.step")`; the ops
# inside it (aten::add_ on CPU, _foreach_ kernels on GPU) are the optimizer's, which
# the op name alone does not say. They take the annotation as their op.
OPTIMIZER_SCOPE = "Optimizer.step#"
GZIP_MAGIC = b"\x1f\x8b"


class _Malformed(Exception):
    """A defect in the parsed document; read_kineto adds the file name."""


def read_kineto(path) -> TraceData:
    """Read one Kineto trace. Raises TraceFormatError, naming the file, for anything
    that is not a well-formed Kineto trace."""
    path = Path(path)
    document = _decode(path, _load_bytes(path))
    try:
        return _parse_document(document)
    except _Malformed as err:
        raise TraceFormatError(f"{path}: {err}") from None


def _load_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    # sniff the magic rather than trust the suffix: exported traces get renamed
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
            raise TraceFormatError(f"{path}: truncated or corrupt gzip ({err})") from None
    if not raw.strip():
        raise TraceFormatError(f"{path}: empty, not a Kineto trace")
    return raw


# Typed decoding: msgspec builds only the fields kept, checking their types as it goes
# (measured on a 104k-event, 38 MB trace: 0.3 s against 1.9 s for json.loads into
# dicts). `args` stays raw until an event is kept, so an odd field in an event we drop
# cannot fail the trace.
class _Args(msgspec.Struct):
    external_id: int | None = msgspec.field(default=None, name="External id")
    correlation: int | None = None
    device: int | None = None
    stream: int | str | None = None
    bytes: int | None = msgspec.field(default=None, name="Bytes")
    total_allocated: int | None = msgspec.field(default=None, name="Total Allocated")
    total_reserved: int | None = msgspec.field(default=None, name="Total Reserved")
    device_type: int | None = msgspec.field(default=None, name="Device Type")
    device_id: int | None = msgspec.field(default=None, name="Device Id")


class _Event(msgspec.Struct):
    ph: str | None = None
    cat: str | None = None
    name: str | None = None
    ts: int | float | None = None  # int where written so: 1.7e15 µs loses ns as a float
    dur: int | float | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    args: msgspec.Raw = msgspec.Raw()  # the JSON text of the args object, decoded on use


class _Document(msgspec.Struct):
    traceEvents: list[_Event]
    deviceProperties: list[dict] = []


_DOCUMENT = msgspec.json.Decoder(_Document)
_ARGS = msgspec.json.Decoder(_Args)
_NO_ARGS = _Args()


def _decode(path: Path, raw: bytes) -> _Document:
    try:
        return _DOCUMENT.decode(raw)
    except msgspec.ValidationError as err:
        if str(err).startswith("Object missing required field `traceEvents`") or \
                str(err).startswith("Expected `object`, got"):
            raise TraceFormatError(f"{path}: no traceEvents list, not a Kineto trace ({err})") from None
        raise TraceFormatError(f"{path}: {err}") from None
    except (msgspec.DecodeError, RecursionError) as err:
        raise TraceFormatError(f"{path}: not JSON ({err})") from None


def _parse_document(document: _Document) -> TraceData:
    trace = TraceData(
        source_format="kineto",
        devices=_devices(document.deviceProperties),
        total_events=len(document.traceEvents),
    )
    links = _OpLinks()
    for index, raw in enumerate(document.traceEvents):
        try:
            _read_event(raw, trace, links)
        except _Malformed as err:
            raise _Malformed(f"traceEvents[{index}]: {err}") from None
    links.resolve()
    assign_self_time(trace.events)
    assign_steps(trace.events, trace.steps)
    return trace


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


def _decode_args(raw: _Event) -> _Args:
    if not raw.args or bytes(raw.args) == b"null":
        return _NO_ARGS
    try:
        return _ARGS.decode(raw.args)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise _Malformed(f"args: {err}") from None


def _read_event(raw: _Event, trace: TraceData, links: _OpLinks) -> None:
    """Add one traceEvents entry to the trace, or drop it (flows, metadata, annotations)."""
    name = raw.name or ""
    cat = raw.cat
    if name == "[memory]":
        trace.memory.append(_memory_event(raw))
        return
    if raw.ph != "X":
        return
    step = STEP_NAME.fullmatch(name) if name.startswith("ProfilerStep#") else None
    # ROCm/CUDA traces also copy the step annotation onto the GPU timeline
    # (gpu_user_annotation); taking it too would count the step twice.
    if step and cat != "gpu_user_annotation":
        trace.steps.append(
            StepTiming(step=int(step[1]), wall_ns=_ns(raw.dur, "dur"), profiled=True,
                       start_ns=_ns(raw.ts, "ts"))
        )
    elif cat == "user_annotation" and name.startswith(OPTIMIZER_SCOPE):
        links.add_scope(_thread(raw), name, _ns(raw.ts, "ts"), _ns(raw.dur, "dur"))
    elif cat in HOST_KINDS:
        args, thread = _decode_args(raw), _thread(raw)
        kind = HOST_KINDS[cat]
        event = KernelEvent(name, kind, _ns(raw.ts, "ts"), _ns(raw.dur, "dur"), "cpu",
                            str(thread[1]), name if kind == CPU_OP else None,
                            correlation=args.correlation)
        trace.events.append(event)
        links.add_host(event, thread, args.external_id)
    elif cat in DEVICE_KINDS:
        args = _decode_args(raw)
        if args.device is None or args.stream is None:
            raise _Malformed("'device' and 'stream' are needed in a device event's args")
        if not isinstance(args.stream, int):
            raise _Malformed(f"'stream' is {args.stream!r}, expected an integer")
        # torch calls ROCm devices "cuda" too, and so do we
        event = KernelEvent(name, DEVICE_KINDS[cat], _ns(raw.ts, "ts"), _ns(raw.dur, "dur"),
                            f"cuda:{args.device}", str(args.stream), correlation=args.correlation)
        trace.events.append(event)
        links.add_device(event, args.external_id)


def _memory_event(raw: _Event) -> MemoryEvent:
    args = _decode_args(raw)
    if args.device_type is None or args.bytes is None or args.device_id is None:
        raise _Malformed("'Bytes', 'Device Type' and 'Device Id' are needed in a [memory] event")
    if args.device_type == 0:  # a c10::DeviceType
        device = "cpu"
    elif args.device_type == 1:  # HIP allocations report CUDA as well
        device = f"cuda:{args.device_id}"
    else:
        device = f"device_type_{args.device_type}:{args.device_id}"
    return MemoryEvent(
        ts_ns=_ns(raw.ts, "ts"),
        bytes=args.bytes,
        total_allocated=args.total_allocated,
        device=device,
        total_reserved=args.total_reserved,
    )


class _OpLinks:
    """Collects what linking kernels to ops needs during the one pass over the events,
    then sets `op` on runtime calls and device events (see the module docstring)."""

    def __init__(self) -> None:
        self.op_by_external_id: dict[int, str] = {}
        self.threads: dict[tuple, tuple[list[KernelEvent], list[KernelEvent]]] = {}
        self.device_events: list[tuple[KernelEvent, int | None]] = []
        self.scopes: dict[tuple, list[tuple[str, int, int]]] = {}

    def add_host(self, event: KernelEvent, thread: tuple, external_id: int | None) -> None:
        ops, calls = self.threads.setdefault(thread, ([], []))
        if event.kind == CPU_OP:
            ops.append(event)
            if external_id is not None:
                self.op_by_external_id[external_id] = event.name
        else:
            calls.append(event)

    def add_scope(self, thread: tuple, name: str, start_ns: int, dur_ns: int) -> None:
        self.scopes.setdefault(thread, []).append((name, start_ns, start_ns + dur_ns))

    def add_device(self, event: KernelEvent, external_id: int | None) -> None:
        self.device_events.append((event, external_id))

    def resolve(self) -> None:
        launcher_op: dict[int, str | None] = {}
        for thread, (ops, calls) in self.threads.items():
            _set_enclosing_op(ops, calls)  # sorts ops by start
            starts = [op.start_ns for op in ops]
            for scope, start_ns, end_ns in self.scopes.get(thread, ()):
                for op in ops[bisect.bisect_left(starts, start_ns):bisect.bisect_right(starts, end_ns)]:
                    if op.start_ns + op.dur_ns <= end_ns:
                        op.op = scope
            launcher_op.update((c.correlation, c.op) for c in calls if c.correlation is not None)
        for event, external_id in self.device_events:
            if event.correlation in launcher_op:
                event.op = launcher_op[event.correlation]
            else:
                event.op = self.op_by_external_id.get(external_id)


def _set_enclosing_op(ops: list[KernelEvent], calls: list[KernelEvent]) -> None:
    """Give each runtime call the name of the innermost CPU op open on its thread when
    the call started, in one sweep over both lists in time order."""
    ops.sort(key=lambda e: (e.start_ns, -e.dur_ns))  # outer before inner at equal starts
    calls.sort(key=lambda e: e.start_ns)
    open_ops: list[KernelEvent] = []
    next_op = 0
    for call in calls:
        while next_op < len(ops) and ops[next_op].start_ns <= call.start_ns:
            _close_ended(open_ops, ops[next_op].start_ns)
            open_ops.append(ops[next_op])
            next_op += 1
        _close_ended(open_ops, call.start_ns)
        call.op = open_ops[-1].name if open_ops else None


def _close_ended(open_ops: list[KernelEvent], now_ns: int) -> None:
    while open_ops and open_ops[-1].start_ns + open_ops[-1].dur_ns <= now_ns:
        open_ops.pop()


# Field access: every value the reader uses is checked here, so a malformed trace
# fails with a message naming the field instead of a TypeError later on.


def _thread(raw: _Event) -> tuple:
    """(pid, tid): the host thread. The Chrome trace format allows ints or strings."""
    if raw.pid is None or raw.tid is None:
        raise _Malformed("'pid' and 'tid' are needed in a host event")
    return raw.pid, raw.tid


def _ns(value: int | float | None, key: str) -> int:
    """A microsecond field as integer nanoseconds."""
    if value is None:
        raise _Malformed(f"'{key}' is missing or null")
    value_ns = value * 1000
    if not math.isfinite(value_ns):
        raise _Malformed(f"'{key}' is {value}, not a time in microseconds")
    return round(value_ns)


def _integer(mapping: dict, key: str) -> int:
    value = mapping.get(key)
    if value is None:
        raise _Malformed(f"'{key}' is missing or null")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"'{key}' is {value!r}, expected an integer")
    return value
