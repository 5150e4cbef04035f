"""`xprof import`: each trace file becomes a run, read by a child process while this one
stores it; all files in one transaction, a file seen before is not imported again."""

from __future__ import annotations

import gc
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from statistics import median

from typing import TYPE_CHECKING, Callable

from profiler.errors import UserError
from profiler.traces.events import (KERNEL, MEMCPY, MEMSET, NotInTimeOrder, TraceData, TraceFormatError,
                                    whole_trace_step)
from profiler.traces.reading import TraceReading
from profiler.traces import trace_format

if TYPE_CHECKING:  # what storing needs is loaded after the first reader has forked
    from concurrent.futures import Future, ThreadPoolExecutor

    from profiler.store import Store

FRAMEWORK_OF_FORMAT = {"kineto": "torch", "xplane": "tensorflow"}


class NothingToImport(UserError):
    """A path that holds nothing to import."""


@dataclass
class ImportedRun:
    id: str
    path: str
    events: int
    kernels: int
    kernel_time_ms: float
    device: str
    memcpy: int = 0
    memset: int = 0
    duplicate_of: str | None = None
    events_pruned: bool = False  # a duplicate whose raw events `xprof prune` removed

    def as_json(self) -> dict:
        return {"id": self.id, "path": self.path, "events": self.events, "kernels": self.kernels,
                "kernel_time_ms": self.kernel_time_ms, "memcpy": self.memcpy,
                "memset": self.memset, "device": self.device,
                "already_imported": self.duplicate_of is not None, "events_pruned": self.events_pruned}


def trace_files(path: Path) -> list[Path]:
    """The trace files a path names: itself, or those under a TensorBoard log dir."""
    if not path.exists():
        raise NothingToImport(f"{path}: no such file or directory")
    if path.is_file():
        if trace_format(path) is None:
            raise NothingToImport(f"{path}: not a trace xprof reads "
                               "(.json, .json.gz, .xplane.pb, .xplane.pb.gz, or a log directory)")
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and trace_format(p) is not None)
    if not found:
        raise NothingToImport(f"{path}: a directory with no traces (looked for plugins/profile/*/"
                           "*.pt.trace.json[.gz] and *.xplane.pb)")
    return found


def _device(trace: TraceData) -> str:
    """The device name the trace reports, else where its kernels ran, else the CPU."""
    for device, facts in trace.devices.items():
        name = facts.get("name") or facts.get("device_name")
        if name:
            return str(name)
        if facts.get("device_vendor"):  # XSpace planes give facts, not a model name
            memory = facts.get("memory_size")
            size = f", {memory / 2**30:.0f} GiB" if memory else ""
            return f"{facts['device_vendor']} {device} ({facts.get('core_count', '?')} cores{size})"
    events = trace.events
    devices = sorted(set(compress(events.device, map(KERNEL.__eq__, events.kind))))
    return devices[0] if devices else "cpu"


def import_traces(store: Store | Callable[[], Store], paths, workload=None, label=None, classify=None,
                  progress=None, segment_events: int | None = None, mode=None,
                  size=None, dtype=None, host=None) -> list[ImportedRun]:
    """Import trace files and log dirs in one transaction. A Kineto trace of host ops is
    stored in segments of about `segment_events` events as it is read (the reader's
    default when None), so memory stays bounded however long it is. `store` may be a
    function that opens it: the first file's reader then starts before the store opens
    (and before this process loads what storing needs), so that both go on at once."""
    files = [f for p in paths for f in trace_files(Path(p))]
    # on every run; a trace's host is unknown unless said (it need not be this one)
    place = {"workload": workload, "label": label, "mode": mode, "size": size, "dtype": dtype, "host": host}
    if not files:
        return []
    first = TraceReading(files[0], True, segment_events)
    kept: list[Path] = []  # artifact directories this import made
    imported: list[ImportedRun] = []
    try:
        with first, _cycle_collector_paused():
            if callable(store):
                store = store()
            with store.transaction() as conn:
                for path in files:
                    if progress:
                        progress(path)
                    imported.append(_import_one(store, conn, path, place, classify, kept,
                                                segment_events, first if path is files[0] else None))
    except BaseException:
        import shutil

        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return imported


@contextmanager
def _cycle_collector_paused():
    """An import makes no reference cycles, so the cycle collector's walks over its
    growing columns only cost time (docs/ingest.md); reference counting still frees
    everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _AlreadyImported(Exception):
    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


class _RawCopy:
    """The raw trace kept beside the store, gzip-compressed. A thread hashes the file,
    then compresses it, while the reader's child process reads it and this process
    stores it (hashlib and ISA-L let go of the GIL, and the storing waits for segments
    often enough to leave the thread room), off the critical path. `check`, called between segments, stops the import as soon as the
    hash shows the file was imported before, and starts the copy once it shows it is
    new. `start` comes after the reader has forked: no thread may run at a fork."""

    def __init__(self, store: Store, path: Path, copy: Path, kept: list[Path]):
        self.store, self.path, self.copy, self.kept = store, path, copy, kept
        self.worker: ThreadPoolExecutor | None = None
        self.digest: Future | None = None
        self.copied: Future | None = None

    def start(self) -> None:
        if self.digest is None:
            from concurrent.futures import ThreadPoolExecutor

            from profiler.store.artifacts import sha256_of

            self.worker = ThreadPoolExecutor(max_workers=1)
            self.digest = self.worker.submit(sha256_of, self.path)

    def settle(self) -> None:
        """Hash and copy now, and end the thread, before the reader forks again."""
        self.check(wait=True)
        self.copied.result()
        self.close()

    def check(self, wait: bool = False) -> None:
        """Raise _AlreadyImported if a run has the file's sha256; else start the copy.
        Without `wait`, do nothing until the hash is done."""
        if self.copied is not None or not (wait or self.digest.done()):
            return
        existing = self.store.run_with_content(self.digest.result())
        if existing:
            raise _AlreadyImported(existing)
        self.copy.parent.mkdir(parents=True, exist_ok=True)
        self.kept.append(self.copy.parent)
        self.copied = self.worker.submit(_keep_copy, self.path, self.copy)

    def close(self) -> None:
        """Wait for the thread to finish (a failed import removes the copy after)."""
        if self.worker is not None:
            self.worker.shutdown(wait=True, cancel_futures=True)


def _keep_copy(path: Path, copy: Path) -> tuple[str, int]:
    from profiler.store.artifacts import keep_compressed, sha256_of

    keep_compressed(path, copy)
    return sha256_of(copy), copy.stat().st_size


def _import_one(store, conn, path: Path, place: dict, classify, kept,
                segment_events: int | None, reading: TraceReading | None) -> ImportedRun:
    from profiler.store.artifacts import trace_suffix
    from profiler.store.store import new_run_id

    run_id = new_run_id()
    raw = _RawCopy(store, path, store.artifacts_dir() / run_id / f"r0.{trace_suffix(path)}", kept)
    try:
        try:
            with store.savepoint(conn, "trace_file"):
                run = _store_trace(store, conn, run_id, path, raw, place, classify,
                                   reading or TraceReading(path, True, segment_events))
        except NotInTimeOrder:  # a segment stored was not final after all: read it
            raw.settle()        # again, with no cut by time
            with store.savepoint(conn, "trace_file"):
                run = _store_trace(store, conn, run_id, path, raw, place, classify,
                                   TraceReading(path, True, segment_events, time_cuts=False))
        copy_sha256, copy_bytes = raw.copied.result()
        store.add_artifact(conn, run_id, "trace", raw.copy, copy_sha256, copy_bytes,
                           {"repeat": 0, "format": trace_format(path), "imported_from": str(path)})
    except _AlreadyImported as imported:  # found by the hash during either reading
        return _earlier_import(store, path, imported.run_id)
    finally:
        raw.close()
    return run


def _store_trace(store, conn, run_id: str, path: Path, raw: _RawCopy, place: dict, classify,
                 reading: TraceReading) -> ImportedRun:
    """Read one trace into a new run: a child process reads it (profiler/traces/reading.py)
    while this one stores the segments it sends."""
    now = time.time()
    store.insert_run(conn, id=run_id, status="ok", framework=FRAMEWORK_OF_FORMAT[trace_format(path)],
                     **place, source="import", source_path=str(path.resolve()),
                     started_at=now, finished_at=now, repeats=1)
    stored = _Stored()

    def store_segment(segment: TraceData) -> None:
        stored.rows += store.add_events(conn, run_id, 0, segment.events, classify)
        stored.memory += store.add_memory(conn, run_id, 0, segment.memory)
        stored.count(segment)

    with reading:
        raw.start()
        for kind, trace in reading:
            raw.check()
            if kind == "rest":
                whole_trace_step(trace)
            store_segment(trace)
    raw.check(wait=True)
    if not (stored.rows or stored.memory or trace.steps):  # metadata, flows, counters only
        raise TraceFormatError(f"{path}: holds no ops, kernels, steps or memory events: "
                               "nothing to import")
    store.add_steps(conn, run_id, trace.steps)
    device = _device(trace)
    walls = [s.wall_ns for s in trace.steps]
    env = {"imported_from": str(path.resolve()), "devices": trace.devices, "device_name": device,
           "trace_events": trace.total_events}
    store.keep_figures(conn, run_id)
    store.set_run_columns(conn, run_id, device=device, env=env, content_sha256=raw.digest.result(),
                          event_count=stored.rows, memory_event_count=stored.memory,
                          step_ms_median=median(walls) / 1e6 if walls else None)
    return ImportedRun(run_id, str(path), trace.total_events, stored.kernels, stored.kernel_ns / 1e6,
                       device, stored.memcpy, stored.memset)


class _Stored:
    """What the segments of one trace put in the store, added up."""

    def __init__(self) -> None:
        self.rows = self.memory = self.kernels = self.kernel_ns = self.memcpy = self.memset = 0

    def count(self, segment: TraceData) -> None:
        self.kernels += segment.count(KERNEL)
        self.kernel_ns += segment.total_dur_ns(KERNEL)
        self.memcpy += segment.count(MEMCPY)
        self.memset += segment.count(MEMSET)


def _earlier_import(store: Store, path: Path, run_id: str) -> ImportedRun:
    """The run a file was imported as before, with what that import counted."""
    counts = dict.fromkeys((KERNEL, MEMCPY, MEMSET), (0, 0))
    counts.update(store.event_counts(run_id, (KERNEL, MEMCPY, MEMSET)))
    run = store.run(run_id)
    env = json.loads(run["env"] or "{}")
    return ImportedRun(run_id, str(path), env.get("trace_events"), counts[KERNEL][0],
                       (counts[KERNEL][1] or 0) / 1e6, env.get("device_name"), counts[MEMCPY][0],
                       counts[MEMSET][0], duplicate_of=run_id,
                       events_pruned=run["events_pruned_at"] is not None)
