"""A GPU trace's events held in a temporary SQLite file until the trace has been read, so
memory stays flat however large it is; see docs/ingest.md."""

from __future__ import annotations

import sqlite3
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from profiler.errors import UserError
from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, StepTiming, TraceData
from profiler.traces.kineto_columns import NO_ID, TraceBuilder, Track

# Columns held that make the reader spill: 16 MiB. TraceBuilder.held_bytes reckons about
# 108 bytes an event of the A100 fixture repeated (tracemalloc measures 96), so some 155k
# events are held, and a trace of about 265k events with its flows is read without disk.
SPILL_BYTES = 16 << 20
# Kinds by code in the spilled table; device kinds first, so `kind <= LAST_DEVICE_KIND`.
_KIND_CODES = (KERNEL, MEMCPY, MEMSET, CPU_OP, RUNTIME)
_CODE_OF_KIND = {kind: code for code, kind in enumerate(_KIND_CODES)}
_LAST_DEVICE_KIND = _CODE_OF_KIND[MEMSET]

_SCHEMA = """
    CREATE TABLE ev (idx INTEGER PRIMARY KEY, name INTEGER NOT NULL, kind INTEGER NOT NULL,
                     start INTEGER NOT NULL, dur INTEGER NOT NULL, track INTEGER NOT NULL,
                     corr INTEGER, ext INTEGER, seq INTEGER, shapes INTEGER);
"""
# The call each device event belongs to, and the op an unlaunched one takes by External
# id: the later of two with one id wins, as in TraceBuilder.finish.
_LINKS = f"""
    CREATE TABLE calls (corr INTEGER PRIMARY KEY, idx INTEGER NOT NULL, start INTEGER NOT NULL);
    INSERT OR REPLACE INTO calls SELECT corr, idx, start FROM ev
        WHERE kind = {_CODE_OF_KIND[RUNTIME]} AND corr IS NOT NULL ORDER BY idx;
    CREATE TABLE ext_ops (ext INTEGER PRIMARY KEY, name INTEGER NOT NULL);
    INSERT OR REPLACE INTO ext_ops SELECT ext, name FROM ev
        WHERE kind = {_CODE_OF_KIND[CPU_OP]} AND ext IS NOT NULL ORDER BY idx;
"""
_IN_TIME_ORDER = f"""
    SELECT e.name, e.kind, e.start, e.dur, e.track, e.corr, e.ext, e.seq, e.shapes, c.start, x.name
    FROM ev e
    LEFT JOIN calls c ON e.kind <= {_LAST_DEVICE_KIND} AND c.corr = e.corr
    LEFT JOIN ext_ops x ON e.kind <= {_LAST_DEVICE_KIND} AND c.corr IS NULL AND x.ext = e.ext
    ORDER BY COALESCE(c.start, e.start), COALESCE(c.idx, e.idx), e.idx
"""


class Spill:
    """Events of the trace in `path` moved out of a TraceBuilder (`add`), given back in
    parts (`finish`). `close` deletes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._disk():
            # "": a temporary file, deleted when the connection closes (or the process dies)
            self.db = sqlite3.connect("", isolation_level=None)
            self.db.execute("PRAGMA journal_mode = OFF")
            self.db.execute("PRAGMA synchronous = OFF")
            self.db.executescript(_SCHEMA)
            self.db.execute("BEGIN")
        self.names: list[str] = []
        self.name_ids: dict[str, int] = {}
        self.tracks: list[tuple] = []  # by id: ("thread", pid, tid) or ("stream", device, stream)
        self.track_ids: dict[tuple, int] = {}

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _disk(self) -> Iterator[None]:
        """A full temporary directory is the user's to fix: one line. (SQLite writes in
        $SQLITE_TMPDIR, else $TMPDIR, else /var/tmp, else /tmp: the first it can.)"""
        try:
            yield
        except sqlite3.Error as err:
            raise UserError(f"{self.path}: cannot hold its events in a temporary file ({err}); "
                            "set SQLITE_TMPDIR to a directory with room") from None

    def add(self, builder: TraceBuilder) -> None:
        """Move the events the builder holds into the database; its steps, scopes,
        memory events and tracks stay (the tracks empty)."""
        events = builder.events
        if not len(events):
            return
        track_of = array("q", bytes(8 * len(events)))
        for kind, tracks in (("thread", builder.threads), ("stream", builder.streams)):
            for key, track in tracks.items():
                track_id = self._track_id((kind, *key))
                for index in track.events:
                    track_of[index] = track_id
                track.events = array("q")
        name_ids = [self._name_id(name) for name in events.name]
        shape_ids = [None if shapes is None else self._name_id(shapes) for shapes in events.shapes]
        with self._disk():
            self.db.executemany(
                "INSERT INTO ev (name, kind, start, dur, track, corr, ext, seq, shapes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                zip(name_ids, map(_CODE_OF_KIND.__getitem__, events.kind), events.start_ns,
                    events.dur_ns, track_of, events.correlation,
                    [None if i == NO_ID else i for i in builder.external_ids],
                    [None if i == NO_ID else i for i in builder.sequences], shape_ids))
        builder.events = type(events)()
        builder.external_ids = array("q")
        builder.sequences = array("q")

    def _name_id(self, name: str) -> int:
        return _number(name, self.names, self.name_ids)

    def _track_id(self, key: tuple) -> int:
        return _number(key, self.tracks, self.track_ids)

    def finish(self, builder: TraceBuilder, devices: dict[str, dict],
               on_segment: Callable[[TraceData], None], segment_events: int) -> TraceData:
        """Give every event back in parts of about `segment_events`, finished, through
        `on_segment`; return the last part with the memory events left, the devices and
        every step (a trace without steps is given one, its whole span, as
        events.whole_trace_step gives one)."""
        self.add(builder)
        whole = not builder.steps  # the trace is one step: every event is in it
        with self._disk():
            if whole:
                start, end = self.db.execute("SELECT MIN(start), MAX(start + dur) FROM ev").fetchone()
                if start is not None:
                    builder.steps.append(StepTiming(0, end - start, True, start))
            self.db.executescript(_LINKS)
            return self._parts(builder, devices, on_segment, segment_events, whole)

    def _parts(self, builder: TraceBuilder, devices: dict[str, dict],
               on_segment: Callable[[TraceData], None], segment_events: int, whole: bool) -> TraceData:
        part = self._part(builder)
        latest_end = None  # of the host events in the part
        names, tracks, kinds = self.names, self.tracks, _KIND_CODES
        for name, kind, start, dur, track, corr, ext, seq, shapes, call_start, ext_op in self.db.execute(
                _IN_TIME_ORDER):
            if kind > _LAST_DEVICE_KIND:
                # a cut only before a host event: a device event stays with its call
                if len(part.events) >= segment_events and start >= latest_end:
                    on_segment(_in_the_whole_step(part.finish({}), whole))
                    part = self._part(builder)
                    latest_end = None
                end = start + dur
                if latest_end is None or end > latest_end:
                    latest_end = end
            kind = kinds[kind]
            name = names[name]
            key = tracks[track]
            holder = part.threads if key[0] == "thread" else part.streams
            part_track = holder.get(key[1:]) or self._part_track(builder, part, key)
            columns = part.events
            part_track.events.append(len(columns.name))
            columns.name.append(name)
            columns.kind.append(kind)
            columns.start_ns.append(start)
            columns.dur_ns.append(dur)
            columns.device.append(part_track.device)
            columns.stream.append(part_track.stream)
            # a device event whose call is not in the trace takes its op here
            columns.op.append(name if kind is CPU_OP else (names[ext_op] if ext_op is not None else None))
            columns.correlation.append(corr)
            columns.layer.append(None)
            columns.shapes.append(None if shapes is None else names[shapes])
            part.external_ids.append(NO_ID if ext is None else ext)
            part.sequences.append(NO_ID if seq is None else seq)
        part.memory = builder.memory
        rest = _in_the_whole_step(part.finish(devices), whole)
        rest.total_events = builder.total_events
        return rest

    @staticmethod
    def _part(builder: TraceBuilder) -> TraceBuilder:
        part = TraceBuilder()
        part.names, part.steps, part.sequence_layers = builder.names, builder.steps, builder.sequence_layers
        return part

    @staticmethod
    def _part_track(builder: TraceBuilder, part: TraceBuilder, key: tuple) -> Track:
        kind, *where = key
        where = tuple(where)
        source = (builder.threads if kind == "thread" else builder.streams)[where]
        track = Track(source.device, source.stream)
        track.scopes, track.layers = source.scopes, source.layers
        (part.threads if kind == "thread" else part.streams)[where] = track
        return track


def _in_the_whole_step(part: TraceData, whole: bool) -> TraceData:
    """A part of a trace that is one step: every event in it, one of no length at the
    trace's very end too (see events.whole_trace_step)."""
    if whole:
        part.events.step = [0] * len(part.events)
    return part


def _number(value, values: list, numbers: dict) -> int:
    """The index of `value` in `values`, appended if new (`numbers` is the reverse map)."""
    number = numbers.get(value)
    if number is None:
        number = numbers[value] = len(values)
        values.append(value)
    return number
