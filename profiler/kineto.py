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

import gzip
import json
import math
import re
import zlib
from pathlib import Path

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
    document = _load_json(path)
    try:
        return _parse_document(document)
    except _Malformed as err:
        raise TraceFormatError(f"{path}: {err}") from None


def _load_json(path: Path) -> object:
    raw = path.read_bytes()
    # sniff the magic rather than trust the suffix: exported traces get renamed
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
            raise TraceFormatError(f"{path}: truncated or corrupt gzip ({err})") from None
    if not raw.strip():
        raise TraceFormatError(f"{path}: empty, not a Kineto trace")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise TraceFormatError(f"{path}: not JSON ({err})") from None


def _parse_document(document: object) -> TraceData:
    if not isinstance(document, dict):
        raise _Malformed(f"top level is a JSON {JSON_TYPES[type(document)]}, not an object")
    raw_events = document.get("traceEvents")
    if not isinstance(raw_events, list):
        raise _Malformed("no traceEvents list, not a Kineto trace")
    trace = TraceData(
        source_format="kineto",
        devices=_devices(document.get("deviceProperties", [])),
        total_events=len(raw_events),
    )
    links = _OpLinks()
    for index, raw in enumerate(raw_events):
        try:
            _read_event(raw, trace, links)
        except _Malformed as err:
            raise _Malformed(f"traceEvents[{index}]: {err}") from None
    links.resolve()
    assign_self_time(trace.events)
    assign_steps(trace.events, trace.steps)
    return trace


def _devices(properties: object) -> dict[str, dict]:
    if not isinstance(properties, list):
        raise _Malformed("deviceProperties is not a list")
    devices = {}
    for index, entry in enumerate(properties):
        try:
            device, facts = _device(entry)
        except _Malformed as err:
            raise _Malformed(f"deviceProperties[{index}]: {err}") from None
        devices[device] = facts
    return devices


def _device(entry: object) -> tuple[str, dict]:
    if not isinstance(entry, dict):
        raise _Malformed("not an object")
    facts = {key: value for key, value in entry.items() if key not in ("id", "totalGlobalMem")}
    if "totalGlobalMem" in entry:
        facts["total_memory_bytes"] = _integer(entry, "totalGlobalMem")
    return f"cuda:{_integer(entry, 'id')}", facts


def _read_event(raw: object, trace: TraceData, links: _OpLinks) -> None:
    """Add one traceEvents entry to the trace, or drop it (flows, metadata, annotations)."""
    if not isinstance(raw, dict):
        raise _Malformed("not an object")
    name = _optional(raw, "name", str) or ""
    cat = _optional(raw, "cat", str)
    if name == "[memory]":
        trace.memory.append(_memory_event(raw))
        return
    if raw.get("ph") != "X":
        return
    step = STEP_NAME.fullmatch(name)
    # ROCm/CUDA traces also copy the step annotation onto the GPU timeline
    # (gpu_user_annotation); taking it too would count the step twice.
    if step and cat != "gpu_user_annotation":
        trace.steps.append(
            StepTiming(step=int(step[1]), wall_ns=_ns(raw, "dur"), profiled=True, start_ns=_ns(raw, "ts"))
        )
    elif cat == "user_annotation" and name.startswith(OPTIMIZER_SCOPE):
        links.add_scope(_thread(raw), name, _ns(raw, "ts"), _ns(raw, "dur"))
    elif cat in HOST_KINDS:
        args, thread = _args(raw), _thread(raw)
        event = _host_event(raw, name, HOST_KINDS[cat], args, thread)
        trace.events.append(event)
        links.add_host(event, thread, _optional(args, "External id", int))
    elif cat in DEVICE_KINDS:
        args = _args(raw)
        event = _device_event(raw, name, DEVICE_KINDS[cat], args)
        trace.events.append(event)
        links.add_device(event, _optional(args, "External id", int))


def _host_event(raw: dict, name: str, kind: str, args: dict, thread: tuple) -> KernelEvent:
    return KernelEvent(
        name=name,
        kind=kind,
        start_ns=_ns(raw, "ts"),
        dur_ns=_ns(raw, "dur"),
        device="cpu",
        stream=str(thread[1]),
        op=name if kind == CPU_OP else None,
        correlation=_optional(args, "correlation", int),
    )


def _device_event(raw: dict, name: str, kind: str, args: dict) -> KernelEvent:
    return KernelEvent(
        name=name,
        kind=kind,
        start_ns=_ns(raw, "ts"),
        dur_ns=_ns(raw, "dur"),
        # torch calls ROCm devices "cuda" too, and so do we
        device=f"cuda:{_integer(args, 'device')}",
        stream=str(_integer(args, "stream")),
        correlation=_optional(args, "correlation", int),
    )


def _memory_event(raw: dict) -> MemoryEvent:
    args = _args(raw)
    device_type = _integer(args, "Device Type")  # a c10::DeviceType
    if device_type == 0:
        device = "cpu"
    elif device_type == 1:  # HIP allocations report CUDA as well
        device = f"cuda:{_integer(args, 'Device Id')}"
    else:
        device = f"device_type_{device_type}:{_integer(args, 'Device Id')}"
    return MemoryEvent(
        ts_ns=_ns(raw, "ts"),
        bytes=_integer(args, "Bytes"),
        total_allocated=_optional(args, "Total Allocated", int),
        device=device,
        total_reserved=_optional(args, "Total Reserved", int),
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
            for scope, start_ns, end_ns in self.scopes.get(thread, ()):
                for op in ops:
                    if start_ns <= op.start_ns and op.start_ns + op.dur_ns <= end_ns:
                        op.op = scope
            _set_enclosing_op(ops, calls)
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


# Field access: every value the reader uses is type-checked here, so a malformed trace
# fails with a message naming the field instead of a KeyError or TypeError later on.

JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
EXPECTED = {
    int: "an integer",
    str: "a string",
    dict: "an object",
    (int, float): "a number",
    (int, str): "an integer or a string",
}


def _args(raw: dict) -> dict:
    return _optional(raw, "args", dict) or {}


def _thread(raw: dict) -> tuple:
    """(pid, tid): the host thread. The Chrome trace format allows ints or strings."""
    return _required(raw, "pid", (int, str)), _required(raw, "tid", (int, str))


def _ns(raw: dict, key: str) -> int:
    """A microsecond field as integer nanoseconds."""
    value = _required(raw, key, (int, float))
    value_ns = value * 1000
    if isinstance(value_ns, float) and not math.isfinite(value_ns):
        raise _Malformed(f"'{key}' is {value}, not a time in microseconds")
    return round(value_ns)


def _integer(mapping: dict, key: str) -> int:
    return _required(mapping, key, int)


def _required(mapping: dict, key: str, types):
    if mapping.get(key) is None:
        raise _Malformed(f"'{key}' is missing or null")
    return _optional(mapping, key, types)


def _optional(mapping: dict, key: str, types):
    value = mapping.get(key)
    # bool is an int subclass in Python, but never a valid count or time
    if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise _Malformed(f"'{key}' is a JSON {JSON_TYPES[type(value)]}, expected {EXPECTED[types]}")
    return value

