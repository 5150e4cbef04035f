"""Kineto events into columns; each kernel linked to the op that launched it, self time
and steps worked out, and segments cut where events are final; see docs/ingest.md."""

from __future__ import annotations

import bisect
import re
import sys
from array import array
from functools import partial
from itertools import accumulate, compress, repeat
from operator import add, attrgetter, mul, sub
from typing import Iterator, Sequence

from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME
from profiler.traces.events import EventColumns, MemoryColumns, NotInTimeOrder, self_times, steps_at
from profiler.traces.events import StepTiming, TraceData, track_order
from workloads.layers import LAYER_SCOPE

# Kineto "cat" -> TraceEvent.kind. "operator" is what torch < 1.9 called cpu_op.
HOST_KINDS = {"cpu_op": CPU_OP, "operator": CPU_OP, "cuda_runtime": RUNTIME, "cuda_driver": RUNTIME}
DEVICE_KINDS = {"kernel": KERNEL, "gpu_memcpy": MEMCPY, "gpu_memset": MEMSET}
KIND_OF_CATEGORY = {**HOST_KINDS, **DEVICE_KINDS}

MEMORY = "[memory]"
STEP_NAME = re.compile(r"ProfilerStep#([0-9]{1,18})")
# torch.optim wraps each step in a `record_function("Optimizer.step#SGD.step")`; the ops
# inside it (aten::add_ on CPU, _foreach_ kernels on GPU) are the optimizer's, which
# the op name alone does not say. They take the annotation as their op.
OPTIMIZER_SCOPE = "Optimizer.step#"
# xprof's torch workloads put each layer's forward ops in a record_function(LAYER_SCOPE +
# layer); a backward function (BACKWARD_FUNCTION) takes the layer of the forward op with
# its autograd sequence number, and so do the ops inside it, as "<layer>:backward".
BACKWARD_FUNCTION = "autograd::engine::evaluate_function: "
BACKWARD = ":backward"
# Events the column loop leaves to _add_annotation: memory events and step markers, by name.
OTHER_NAMES = (MEMORY, "ProfilerStep#")
NO_ID = -(1 << 63)  # an absent "External id" in an array of them
_INT_BYTES = sys.getsizeof(1 << 40)
# Events held before a cut is looked for: 8,192 make under 1 MB of columns, and small
# segments let an import store one while its reader reads the next
# (profiler/traces/reading.py): 0.40 s against 0.56 s with 65,536, measured in process
# on a 104k-event trace.
SEGMENT_EVENTS = 1 << 13


class Track:
    """A host thread or a device stream: its events (indices into the columns, in
    trace order) and, on a thread, the optimizer and layer scopes."""

    __slots__ = ("device", "stream", "events", "scopes", "layers")

    def __init__(self, device: str, stream: str) -> None:
        self.device = device
        self.stream = stream
        self.events = array("q")
        self.scopes: list[tuple[str, int, int]] = []
        self.layers: list[tuple[str, int, int]] = []


_TS, _DUR, _NAME, _CAT, _ARGS_OF = map(attrgetter, ("ts", "dur", "name", "cat", "args"))
_EXTERNAL_ID, _CORRELATION, _BYTES, _TOTAL_ALLOCATED, _TOTAL_RESERVED, _SEQUENCE = map(
    attrgetter, ("external_id", "correlation", "bytes", "total_allocated", "total_reserved", "sequence"))
_INPUT_DIMS, _INPUT_TYPE, _CONCRETE_INPUTS = map(attrgetter, ("input_dims", "input_type", "concrete_inputs"))
_TRACK_DEVICE, _TRACK_STREAM = attrgetter("device"), attrgetter("stream")
_TIMES_1000 = partial(mul, 1000)


def _ns_all(events: list, field: attrgetter) -> Iterator[int]:
    """A microsecond field of each event as integer nanoseconds, in C: a null raises
    TypeError, an infinity OverflowError, a NaN ValueError."""
    return map(round, map(_TIMES_1000, map(field, events)))


class TraceBuilder:
    """Takes traceEvents a piece at a time, in order; `cut` may give the events that
    are final so far, and `finish` the rest, with kernels linked to ops and self time
    and steps set (see the module docstring). Cuts are looked for every
    `segment_events` events; None: never."""

    def __init__(self, segment_events: int | None = None) -> None:
        self.events = EventColumns()
        self.external_ids = array("q")  # per event in `events`, NO_ID where absent
        self.sequences = array("q")  # autograd sequence numbers, NO_ID where absent
        # the layer of each forward op's sequence number, kept across segments
        self.sequence_layers: dict[int, str] = {}
        self.memory = MemoryColumns()
        self.steps: list[StepTiming] = []
        self.threads: dict[tuple, Track] = {}  # by (pid, tid)
        self.streams: dict[tuple[int, int], Track] = {}  # by (device, stream)
        self.names: dict[str, str] = {}  # one str object per distinct name
        self.shapes: dict[tuple, str | None] = {}  # shapes text by its raw JSON pieces
        self.total_events = 0
        self.segment_events = segment_events
        # how many events held makes the next look for a cut: the first comes early, so
        # that storing can start while the rest is read (profiler/traces/reading.py)
        self.cut_at = segment_events and max(1, segment_events // 4)
        self.final_until: int | None = None  # the events cut so far ended by then
        self.held_last = 0  # events held after the piece before

    def add(self, events: list) -> None:
        """Take the next piece of traceEvents (decoded structs with ph, cat, name, ts,
        dur, pid, tid and args). A bad value raises TypeError, ValueError or
        OverflowError, which the reader explains; an event that changes what `cut`
        gave raises NotInTimeOrder."""
        self._add(events)
        self.total_events += len(events)

    def _add(self, events: list) -> None:
        """Sort the piece's events one by one, cheaply; then fill each column from the
        host and device events in one pass, rather than filling all columns an event at
        a time (see docs/ingest.md)."""
        kept: list = []
        tracks: list[Track] = []
        memory: list = []
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

    def _add_annotation(self, event, kind: str | None, name: str) -> bool:
        """Take a step or an optimizer scope; True for a host or device event whose
        name only looked like one, which the caller takes."""
        if event.ph != "X":
            return False  # flows, instant events, metadata
        step = STEP_NAME.fullmatch(name) if name.startswith("ProfilerStep#") else None
        # ROCm/CUDA traces also copy the step annotation onto the GPU timeline
        # (gpu_user_annotation); taking it too would count the step twice.
        if step and event.cat != "gpu_user_annotation":
            step = StepTiming(step=int(step[1]), wall_ns=round(event.dur * 1000), profiled=True,
                              start_ns=round(event.ts * 1000))
            if step.wall_ns < 0:
                raise ValueError("a negative duration")
            self._check_after_cut(step.start_ns)
            self.steps.append(step)
            return False
        if event.cat == "user_annotation" and name.startswith((OPTIMIZER_SCOPE, LAYER_SCOPE)):
            thread = self.threads.get((event.pid, event.tid)) or self._thread(event)
            start_ns, dur_ns = round(event.ts * 1000), round(event.dur * 1000)
            if dur_ns < 0:
                raise ValueError("a negative duration")
            self._check_after_cut(start_ns)
            if name.startswith(LAYER_SCOPE):
                thread.layers.append((name[len(LAYER_SCOPE):], start_ns, start_ns + dur_ns))
            else:
                thread.scopes.append((name, start_ns, start_ns + dur_ns))
            return False
        return kind is not None

    def _thread(self, event) -> Track:
        if event.pid is None or event.tid is None:
            raise TypeError
        thread = self.threads[event.pid, event.tid] = Track("cpu", str(event.tid))
        return thread

    def _stream(self, args) -> Track:
        if args.device is None or type(args.stream) is not int:
            raise TypeError
        stream = self.streams.get((args.device, args.stream))
        if stream is None:
            # torch calls ROCm devices "cuda" too, and so do we
            stream = self.streams[args.device, args.stream] = Track(f"cuda:{args.device}",
                                                                     str(args.stream))
        return stream

    def _check_after_cut(self, start_ns: int) -> None:
        """A step or scope must start after what was cut, or it could hold cut events."""
        if self.final_until is not None and start_ns <= self.final_until:
            raise NotInTimeOrder

    def _add_columns(self, kept: list, tracks: list[Track]) -> None:
        columns = self.events
        first = len(columns.name)
        columns.start_ns.extend(_ns_all(kept, _TS))
        columns.dur_ns.extend(_ns_all(kept, _DUR))
        if kept and min(columns.dur_ns[first:]) < 0:
            raise ValueError("a negative duration")
        intern = self.names.setdefault
        names = [intern(name, name) if name else "" for name in map(_NAME, kept)]
        kinds = list(map(KIND_OF_CATEGORY.__getitem__, map(_CAT, kept)))
        if self.final_until is not None and kept and (
                min(columns.start_ns[first:]) < self.final_until or kinds.count(CPU_OP) < len(kinds)):
            raise NotInTimeOrder
        args = list(map(_ARGS_OF, kept))
        self.external_ids.extend([NO_ID if i is None else i for i in map(_EXTERNAL_ID, args)])
        self.sequences.extend([NO_ID if i is None else i for i in map(_SEQUENCE, args)])
        columns.shapes += self._shapes(args)
        columns.layer += repeat(None, len(args))
        columns.name += names
        columns.kind += kinds
        columns.op += [name if kind is CPU_OP else None for name, kind in zip(names, kinds)]
        columns.device += map(_TRACK_DEVICE, tracks)
        columns.stream += map(_TRACK_STREAM, tracks)
        columns.correlation += map(_CORRELATION, args)
        for index, track in enumerate(tracks, first):
            track.events.append(index)

    def _shapes(self, args: list) -> list[str | None]:
        """Each event's shapes text (_shapes_text), made once per distinct shapes: the
        raw JSON pieces are taken and looked up in C, and only new ones are decoded
        (a trace repeats a few thousand shapes over its steps)."""
        keys = list(zip(map(bytes, map(_INPUT_DIMS, args)), map(bytes, map(_INPUT_TYPE, args)),
                        map(bytes, map(_CONCRETE_INPUTS, args))))
        known = self.shapes
        for key in dict.fromkeys(keys).keys() - known.keys():
            known[key] = _shapes_text(*key)
        return list(map(known.__getitem__, keys))

    def _add_memory(self, events: list) -> None:
        memory = self.memory
        args = list(map(_ARGS_OF, events))
        memory.ts_ns.extend(_ns_all(events, _TS))
        memory.bytes.extend(map(_BYTES, args))  # a null raises TypeError
        memory.total_allocated += map(_TOTAL_ALLOCATED, args)
        memory.total_reserved += map(_TOTAL_RESERVED, args)
        intern = self.names.setdefault
        for device in map(_memory_device, args):
            memory.device.append(intern(device, device))

    def held_bytes(self) -> int:
        """About what the held events' columns take: their lists and arrays, and an int
        object for each correlation id (strings are shared, one per distinct name)."""
        events = self.events
        return (sum(map(sys.getsizeof, events.columns())) + sys.getsizeof(self.external_ids)
                + _INT_BYTES * len(events.correlation))

    def never_cut(self) -> None:
        self.cut_at = None

    def cut(self) -> TraceData | None:
        """The events that nothing to come can change, with all memory events so far, as
        a TraceData to store now (its steps are those so far); None when too few are
        held or the trace so far allows no cut (see the module docstring). Memory
        events depend on nothing else: once a quarter of `segment_events` are held they
        are given on their own even where events cannot be (Kineto writes them all after
        the ops, and a GPU's trace is never cut)."""
        head = self._cut_events()
        if head is None and self.segment_events and len(self.memory) >= max(1, self.segment_events // 4):
            head = TraceBuilder()
            head.names, head.steps = self.names, self.steps
            head.memory, self.memory = self.memory, MemoryColumns()
            head = head.finish({})
        return head

    def _cut_events(self) -> TraceData | None:
        events = self.events
        # a piece that brought no event (Kineto writes memory events after all the ops):
        # look for a cut now, so that the rest left for the end is small
        stalled = len(events) == self.held_last > 1
        self.held_last = len(events)
        if self.cut_at is None or (len(events) < self.cut_at and not stalled):
            return None
        if self.streams or RUNTIME in events.kind:  # links to come: never
            self.cut_at = None
            return None
        quiet = _last_quiet_point(events.start_ns, events.dur_ns)
        if not self.steps or quiet is None:  # a trace without steps is made one step at the end
            self.cut_at = len(events) + self.segment_events
            return None
        count, self.final_until = quiet
        self.cut_at = len(events) - count + self.segment_events
        head = TraceBuilder()
        head.names, head.steps, head.shapes = self.names, self.steps, self.shapes
        head.events, head.external_ids = events.split(count), self.external_ids[:count]
        self.external_ids = self.external_ids[count:]
        head.sequences, self.sequences = self.sequences[:count], self.sequences[count:]
        head.sequence_layers = self.sequence_layers
        head.memory, self.memory = self.memory, MemoryColumns()
        for key, thread in self.threads.items():
            held = bisect.bisect_left(thread.events, count)
            part = head.threads[key] = Track(thread.device, thread.stream)
            part.events, part.scopes, part.layers = thread.events[:held], thread.scopes, thread.layers
            thread.events = array("q", map(sub, thread.events[held:], repeat(count)))
        return head.finish({})

    def finish(self, devices: dict[str, dict]) -> TraceData:
        events = self.events
        starts, durs = events.start_ns, events.dur_ns
        # self time counts per (device, stream): threads of two processes with one tid share it
        host_tracks: dict[str, list[Track]] = {}
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
        launcher_op: dict[int, tuple[str | None, str | None]] = {}
        any_calls = RUNTIME in events.kind
        if any(thread.layers for thread in self.threads.values()) or self.sequence_layers:
            for thread in self.threads.values():
                orders[thread] = orders.get(thread) or track_order(starts, durs, thread.events)
            self._set_layers(orders)
        for thread in self.threads.values():
            calls = [i for i in thread.events if events.kind[i] is RUNTIME] if any_calls else []
            if not calls and not thread.scopes:
                continue
            order = orders.get(thread) or track_order(starts, durs, thread.events)
            if calls:
                ops = array("q", compress(order, map(CPU_OP.__eq__, map(events.kind.__getitem__, order))))
                calls.sort(key=starts.__getitem__)
                _set_enclosing_op(events, ops, calls)
                launcher_op.update((events.correlation[c], (events.op[c], events.layer[c])) for c in calls
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

    def _set_layers(self, orders: dict[Track, Sequence[int]]) -> None:
        """Events wholly inside a layer scope on their thread (`orders`: each thread's
        events in track order) take its layer, the innermost where scopes nest; then a
        backward function, on any thread, takes the layer of the forward op with its
        sequence number, and so does what runs inside it."""
        events = self.events
        starts, durs, names, kinds, layers = events.start_ns, events.dur_ns, events.name, events.kind, events.layer
        sequences, sequence_layers = self.sequences, self.sequence_layers
        numbered = {}  # each thread's events with a sequence number, in track order
        for thread, order in orders.items():
            _set_inside(events, order, sorted(thread.layers, key=lambda scope: (scope[1], -scope[2])))
            numbered[thread] = list(compress(order, map(NO_ID.__ne__, map(sequences.__getitem__, order))))
            for event in numbered[thread]:
                if layers[event] is not None and kinds[event] is CPU_OP:
                    sequence_layers.setdefault(sequences[event], layers[event])
        for thread, order in orders.items():
            backward = []
            for event in numbered[thread]:
                if names[event].startswith(BACKWARD_FUNCTION):
                    layer = sequence_layers.get(sequences[event])
                    if layer is not None:
                        backward.append((layer + BACKWARD, starts[event], starts[event] + durs[event]))
            _set_inside(events, order, backward)

    def _link_device_events(self, launcher_op: dict[int, tuple[str | None, str | None]]) -> None:
        events = self.events
        op_by_external_id: dict[int, str] | None = None
        for index in (index for stream in self.streams.values() for index in stream.events):
            correlation = events.correlation[index]
            if correlation in launcher_op:
                events.op[index], events.layer[index] = launcher_op[correlation]
                continue
            if events.op[index] is not None:  # found already (profiler/traces/kineto_spill.py)
                continue
            if op_by_external_id is None:  # the last resort, built when first needed
                op_by_external_id = {
                    external_id: name for name, kind, external_id
                    in zip(events.name, events.kind, self.external_ids)
                    if kind is CPU_OP and external_id != NO_ID}
            events.op[index] = op_by_external_id.get(self.external_ids[index])


def _last_quiet_point(start_ns: array, dur_ns: array) -> tuple[int, int] | None:
    """(k, t): the largest k (0 < k < number of events) such that the events before k
    all end by t and those from k on all start at t or later; None if there is none.
    One pass in C for the latest end so far, then a walk back from the last event,
    which finds the point within a few dozen events in a trace of ops."""
    ends = array("q", accumulate(map(add, start_ns, dur_ns), max))  # latest end up to each
    earliest_start = start_ns[-1]
    for count in range(len(ends) - 1, 0, -1):
        earliest_start = min(earliest_start, start_ns[count])
        if ends[count - 1] <= earliest_start:
            return count, ends[count - 1]
    return None


def _set_enclosing_op(events: EventColumns, ops: list[int], calls: list[int]) -> None:
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


def _set_inside(events: EventColumns, order: Sequence[int], scopes: list[tuple[str, int, int]]) -> None:
    """Events wholly inside a scope on their thread take its name as their layer, a
    later scope's over an earlier one's."""
    if not scopes:
        return
    starts, durs, layer = events.start_ns, events.dur_ns, events.layer
    order_starts = array("q", map(starts.__getitem__, order))  # bisected in C, without a key
    for scope, start_ns, end_ns in scopes:
        first = bisect.bisect_left(order_starts, start_ns)
        candidates = order[first:bisect.bisect_right(order_starts, end_ns, first)]
        ends = map(add, order_starts[first:first + len(candidates)], map(durs.__getitem__, candidates))
        inside = compress(candidates, map(end_ns.__ge__, ends))
        any(map(layer.__setitem__, inside, repeat(scope)))  # in C: setitem returns None


def _shapes_text(dims: bytes, types: bytes, values: bytes) -> str | None:
    """An op's input dims, types and scalar values as one JSON text,
    `[[dims...], [types...], [values...]]`; None where the trace recorded no dims."""
    if not dims:
        return None
    return f"[{dims.decode()},{(types or b'[]').decode()},{(values or b'[]').decode()}]"


def _set_scope_op(events: EventColumns, order: Sequence[int], scopes: list[tuple[str, int, int]]) -> None:
    """Ops wholly inside an optimizer scope on their thread (`order`: its events in
    track order) take the scope as their op."""
    starts, durs, kinds = events.start_ns, events.dur_ns, events.kind
    for scope, start_ns, end_ns in scopes:
        first = bisect.bisect_left(order, start_ns, key=starts.__getitem__)
        for event in order[first:bisect.bisect_right(order, end_ns, key=starts.__getitem__)]:
            if kinds[event] is CPU_OP and starts[event] + durs[event] <= end_ns:
                events.op[event] = scope


def _memory_device(args) -> str:
    if args.device_type == 0:  # a c10::DeviceType
        return "cpu"
    if args.device_type == 1:  # HIP allocations report CUDA as well
        return f"cuda:{args.device_id}"
    return f"device_type_{args.device_type}:{args.device_id}"
