"""Read TensorFlow profiler XSpace files (`*.xplane.pb`) into a TraceData, with
TensorFlow's own `xplane_pb2` loaded without importing TensorFlow."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import re
import zlib
from pathlib import Path
from types import ModuleType

from profiler.errors import UserError
from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME
from profiler.traces.events import assign_self_time, assign_steps, EventColumns, MemoryColumns
from profiler.traces.events import MemoryEvent, StepTiming, TraceData, TraceEvent, TraceFormatError

XPLANE_PB2_FILE = ("tsl", "profiler", "protobuf", "xplane_pb2.py")
INSTALL_HINT = "reading .xplane.pb traces needs TensorFlow's profiler protos: pip install tensorflow"

GZIP_MAGIC = b"\x1f\x8b"  # `*.xplane.pb.gz`, as some tools store them

DEVICE_PLANE_PREFIX = "/device:"
HOST_PLANE_PREFIX = "/host:"  # /host:CPU, and /host:CUPTI when a tracer leaves it unmerged
# Device lines other than "Stream #N..." are derived by the profiler from the stream
# lines ("XLA Modules", "XLA Ops", "Steps", "Framework Ops", "Source code", ...) and
# would count every kernel twice.
STREAM_LINE_PREFIX = "Stream #"

MEMORY_ALLOCATION = "MemoryAllocation"
MEMORY_DEALLOCATION = "MemoryDeallocation"
# A graph op on a TF executor thread is named "<node name>:<op type>", e.g.
# "sequential/dense/MatMul:_MklMatMul". Node names hold no ':' or spaces, which keeps
# out runtime annotations like "ExecutorState::Process" or "EagerLocalExecute: MatMul".
TF_OP_EVENT = re.compile(r"^(?P<node>[\w.\-/>]+):(?P<type>[A-Za-z_]\w*)$")
# An eager op shows as "EagerExecute" with the op type in `eager_op`; `is_func` marks
# a whole tf.function call, whose ops appear on their own under TF_OP_EVENT.
EAGER_EXECUTE = "EagerExecute"
RUNTIME_CALL = re.compile(r"^(cu|hip)[A-Z]\w*$")  # cuLaunchKernel, hipModuleLaunchKernel
GPU_ALLOCATOR = re.compile(r"^GPU_(\d+)_bfc$")


class TensorFlowMissing(UserError, ImportError):
    """TensorFlow, whose profiler protos read XSpace files, is not installed."""


@functools.cache
def load_xplane_pb2() -> ModuleType:
    """TensorFlow's `xplane_pb2` module, without importing the `tensorflow` package."""
    tensorflow = importlib.util.find_spec("tensorflow")  # finds it, does not run it
    if tensorflow is None or not tensorflow.submodule_search_locations:
        raise TensorFlowMissing(INSTALL_HINT)
    for location in tensorflow.submodule_search_locations:
        source = Path(location).joinpath(*XPLANE_PB2_FILE)
        if source.is_file():
            break
    else:
        missing = "/".join(XPLANE_PB2_FILE)
        raise TensorFlowMissing(f"{INSTALL_HINT} (the installed one has no {missing})")
    spec = importlib.util.spec_from_file_location("_xprof_xplane_pb2", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_xplane(path) -> TraceData:
    """Device kernels, copies and memsets, host TF ops and runtime calls, memory events
    and profiled steps from one XSpace file (plain or gzipped). Raises TraceFormatError
    for a file that is not a readable XSpace."""
    space = _parse(Path(path))
    trace = TraceData(source_format="xplane")
    events: list[TraceEvent] = []
    memory: list[MemoryEvent] = []
    for plane in space.planes:
        trace.total_events += sum(len(line.events) for line in plane.lines)
        reader = _PlaneReader(plane)
        if plane.name.startswith(DEVICE_PLANE_PREFIX):
            kept = _read_device_plane(reader, events)
            if kept:
                trace.devices[plane.name] = reader.plane_facts()
        elif plane.name.startswith(HOST_PLANE_PREFIX):
            _read_host_plane(reader, events, memory, trace.steps)
    memory.sort(key=lambda m: m.ts_ns)
    trace.steps = _outermost_per_step(trace.steps)
    assign_self_time(events)
    assign_steps(events, trace.steps)
    trace.events, trace.memory = EventColumns.of(events), MemoryColumns.of(memory)
    return trace


def _parse(path: Path):
    pb2 = load_xplane_pb2()
    from google.protobuf.message import DecodeError  # present wherever TensorFlow is

    try:
        data = path.read_bytes()
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot read XSpace file: {err.strerror or err}") from err
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise TraceFormatError(f"{path}: truncated or corrupt gzip ({err})") from err
    space = pb2.XSpace()
    try:
        space.ParseFromString(data)
    except DecodeError as err:
        raise TraceFormatError(f"{path}: not an XSpace protobuf (truncated or foreign file)") from err
    if not space.planes:
        raise TraceFormatError(f"{path}: XSpace holds no planes (empty or not a profiler trace)")
    return space


class _PlaneReader:
    """Names and stat values of one plane's events, resolved through its metadata."""

    def __init__(self, plane):
        self.plane = plane
        self.stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        self.event_metadata = dict(plane.event_metadata.items())
        self._metadata_stats: dict[int, dict] = {}

    def stats(self, stats) -> dict:
        values = {}
        for stat in stats:
            kind = stat.WhichOneof("value")
            if kind is None:
                continue
            value = getattr(stat, kind)
            if kind == "ref_value":  # a string kept once, as a stat metadata name
                value = self.stat_names.get(value, "")
            values[self.stat_names.get(stat.metadata_id, str(stat.metadata_id))] = value
        return values

    def events(self, line):
        """(name, start_ns, dur_ns, stats) for each timed event on the line; stats put on
        the event's metadata apply to every event of that name, the event's own win."""
        for event in line.events:
            if event.WhichOneof("data") == "num_occurrences":
                continue
            metadata = self.event_metadata.get(event.metadata_id)
            name = metadata.name if metadata is not None else ""
            shared = self._stats_of_metadata(event.metadata_id, metadata)
            stats = {**shared, **self.stats(event.stats)}
            start_ns = line.timestamp_ns + event.offset_ps // 1000
            yield name, start_ns, event.duration_ps // 1000, stats

    def plane_facts(self) -> dict:
        """Plane-level stats (device_vendor, clock_rate in kHz, core_count, memory_size
        and memory_bandwidth in bytes and bytes/s, compute_cap_major/minor, ...)."""
        stats = self.stats(self.plane.stats)
        return {name: value for name, value in stats.items() if not isinstance(value, bytes)}

    def _stats_of_metadata(self, metadata_id: int, metadata) -> dict:
        if metadata_id not in self._metadata_stats:
            self._metadata_stats[metadata_id] = {} if metadata is None else self.stats(metadata.stats)
        return self._metadata_stats[metadata_id]


def _read_device_plane(reader: _PlaneReader, events: list[TraceEvent]) -> int:
    kept = 0
    for line in reader.plane.lines:
        if line.name and not line.name.startswith(STREAM_LINE_PREFIX):
            continue
        stream = line.name or str(line.id)
        for name, start_ns, dur_ns, stats in reader.events(line):
            kind = _device_event_kind(name, stats)
            if kind is None:
                continue
            events.append(
                TraceEvent(
                    name=name,
                    kind=kind,
                    start_ns=start_ns,
                    dur_ns=dur_ns,
                    device=reader.plane.name,
                    stream=stream,
                    op=_framework_op(stats),
                    correlation=_as_int(stats.get("correlation_id")),
                )
            )
            kept += 1
    return kept


def _device_event_kind(name: str, stats: dict) -> str | None:
    if "kernel_details" in stats:
        return KERNEL
    if "memcpy_details" in stats:
        return MEMCPY
    if "memset_details" in stats or "memset" in name.lower():
        return MEMSET
    return None


def _framework_op(stats: dict) -> str | None:
    """The op behind a device kernel or runtime call: `tf_op` ("name:Type") when it
    names one, else the XLA `hlo_op`. JAX writes tf_op "XlaModule:" for every
    kernel, which names nothing."""
    tf_op = stats.get("tf_op")
    if isinstance(tf_op, str):
        node, _, op_type = tf_op.rpartition(":")
        if node and op_type:
            return tf_op
    hlo_op = stats.get("hlo_op")
    return hlo_op if isinstance(hlo_op, str) and hlo_op else None


def _read_host_plane(reader: _PlaneReader, events: list[TraceEvent], memory: list[MemoryEvent],
                     steps: list[StepTiming]) -> None:
    for line in reader.plane.lines:
        thread = line.name or str(line.id)
        for name, start_ns, dur_ns, stats in reader.events(line):
            if name in (MEMORY_ALLOCATION, MEMORY_DEALLOCATION):
                allocation = _memory_event(name, start_ns, stats)
                if allocation is not None:
                    memory.append(allocation)
                continue
            step = _as_int(stats.get("step_num"))
            if step is not None:
                steps.append(StepTiming(step=step, wall_ns=dur_ns, profiled=True, start_ns=start_ns))
                continue
            event = _host_event(name, start_ns, dur_ns, thread, stats)
            if event is not None:
                events.append(event)


def _host_event(name: str, start_ns: int, dur_ns: int, thread: str, stats: dict) -> TraceEvent | None:
    graph_op = TF_OP_EVENT.match(name)
    if graph_op:
        return TraceEvent(name, CPU_OP, start_ns, dur_ns, "cpu", thread, op=graph_op["type"])
    eager_op = stats.get("eager_op")
    if name == EAGER_EXECUTE and isinstance(eager_op, str) and not stats.get("is_func"):
        return TraceEvent(eager_op, CPU_OP, start_ns, dur_ns, "cpu", thread, op=eager_op)
    correlation = _as_int(stats.get("correlation_id"))
    if RUNTIME_CALL.match(name) and correlation is not None:
        return TraceEvent(
            name, RUNTIME, start_ns, dur_ns, "cpu", thread, op=_framework_op(stats), correlation=correlation
        )
    return None


def _memory_event(name: str, ts_ns: int, stats: dict) -> MemoryEvent | None:
    """An allocator's TraceMe: `allocation_bytes` is what the allocator handed out
    (`requested_bytes` rounded up), `bytes_allocated` its total in use afterwards."""
    sizes = (stats[key] for key in ("allocation_bytes", "requested_bytes", "num_bytes") if key in stats)
    size = _as_int(next(sizes, None))
    if size is None:
        return None
    allocator = stats.get("allocator_name")
    allocator = allocator if isinstance(allocator, str) and allocator else None
    fragmentation = stats.get("fragmentation")
    return MemoryEvent(
        ts_ns=ts_ns,
        bytes=size if name == MEMORY_ALLOCATION else -size,
        total_allocated=_as_int(stats.get("bytes_allocated")),
        device=_allocator_device(allocator),
        allocator=allocator,
        total_reserved=_as_int(stats.get("bytes_reserved")),
        peak_bytes_in_use=_as_int(stats.get("peak_bytes_in_use")),
        fragmentation=float(fragmentation) if isinstance(fragmentation, (int, float)) else None,
    )


def _allocator_device(allocator: str | None) -> str:
    """GPU_0_bfc -> /device:GPU:0; host allocators (bfc_cpu_allocator_for_gpu, the
    pinned GPU_host_bfc, cpu) -> cpu."""
    gpu = GPU_ALLOCATOR.match(allocator or "")
    return f"{DEVICE_PLANE_PREFIX}GPU:{gpu[1]}" if gpu else "cpu"


def _outermost_per_step(steps: list[StepTiming]) -> list[StepTiming]:
    """One StepTiming per step number: when step annotations nest (a user's Trace
    around Keras's own), the longest one is the step."""
    longest: dict[int, StepTiming] = {}
    for step in steps:
        if step.step not in longest or step.wall_ns > longest[step.step].wall_ns:
            longest[step.step] = step
    return sorted(longest.values(), key=lambda s: (s.start_ns, s.step))


def _as_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
