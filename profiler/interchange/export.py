"""Stored runs for viewers: a Perfetto/Chrome trace, a TensorBoard log dir, CSV tables;
one repeat each, optionally a range of profiled steps."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

from dataclasses import dataclass
from typing import Callable

from profiler.errors import UserError
from profiler.store import Store
from profiler.store.queries import FIRST_STEP, LAST_STEP


SLICED_FORMATS = ("perfetto", "csv")


class ExportError(UserError):
    pass


@dataclass
class Exported:
    """What an export wrote: its files, and for a trace the number of events in it."""

    format: str
    output: Path
    paths: list[Path]
    runs: int
    events: int | None = None


def parse_step_range(text: str | None, fmt: str) -> tuple[int, int] | None:
    """'3' -> (3, 3); '2:5' -> (2, 5), inclusive; '2:' from 2 on, ':5' up to 5; None ->
    every step. Only the formats that hold events take a range."""
    if not text:
        return None
    if fmt not in SLICED_FORMATS:
        raise ExportError(f"--steps slices perfetto and csv exports; {fmt} takes whole runs")
    first, colon, last = text.partition(":")
    try:
        low = int(first) if first or not colon else FIRST_STEP
        high = int(last) if last else (LAST_STEP if colon else low)
    except ValueError:
        raise ExportError(f"--steps {text!r}: expected N, FIRST:LAST, FIRST: or :LAST, e.g. 2:5") from None
    if low > high:
        raise ExportError(f"--steps {text!r}: FIRST is after LAST")
    return low, high


def describe_steps(steps: tuple[int, int]) -> str:
    """The range as the user wrote it: '2:5', '2:' or ':5'."""
    low, high = steps
    return f"{'' if low == FIRST_STEP else low}:{'' if high == LAST_STEP else high}"


def write(store: Store, runs: list[dict], fmt: str, output: Path, steps=None, repeat: int = 0,
          label: Callable[[dict], str] = str) -> Exported:
    """Export `runs` as a Perfetto trace, a TensorBoard log dir or CSV tables."""
    if fmt == "perfetto":
        events = write_perfetto(store, runs, output, label, repeat, steps)
        return Exported(fmt, output, [output], len(runs), events)
    if fmt == "tensorboard":
        return Exported(fmt, output, write_tensorboard(store, runs, output, repeat), len(runs))
    if fmt == "csv":
        return Exported(fmt, output, write_csv(store, runs, output, steps), len(runs))
    raise ExportError(f"{fmt} is not a trace or table format (perfetto, tensorboard, csv)")


def writable(path: Path) -> Path:
    """`path`, once its directory exists; one line when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    return path


def write_perfetto(store: Store, runs: list[dict], path: Path, label: Callable[[dict], str],
                   repeat: int = 0, steps=None) -> int:
    """One Chrome-trace JSON: a process per run (named `label(run)`), aligned at its
    first profiled step, kernels and ops on a track per (device, stream), steps on a
    track of their own, memory as a counter. Returns the number of events written."""
    path = writable(path)
    partial = path.with_name(path.name + ".partial")  # a failed export leaves no half file
    written = 0
    try:
        out = open(partial, "w")
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    try:
        with out:
            out.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
            first = True

            def emit(event):
                nonlocal first, written
                out.write(("" if first else ",\n") + json.dumps(event, separators=(",", ":")))
                first = False
                written += 1

            for pid, run in enumerate(runs, start=1):
                _perfetto_run(store, run, label(run), pid, repeat, steps, emit)
            out.write("\n]}\n")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _perfetto_run(store: Store, run, label, pid, repeat, steps, emit) -> None:
    step_rows = store.profiled_steps(run["id"], repeat, steps)
    if not step_rows:
        first, last = store.profiled_step_range(run["id"], repeat)
        raise ExportError(f"run {run['id']} has no profiled steps in repeat {repeat}"
                          + (f" within steps {describe_steps(steps)}" if steps else "")
                          + (f" (its profiled steps are {first}:{last})" if first is not None else ""))
    origin = step_rows[0][1]
    emit({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": label}})
    emit({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
    emit({"ph": "M", "name": "thread_name", "pid": pid, "tid": 0, "args": {"name": "steps"}})
    for step, start_ns, wall_ns in step_rows:
        emit({"ph": "X", "name": f"step {step}", "cat": "step", "pid": pid, "tid": 0,
              "ts": (start_ns - origin) / 1000, "dur": wall_ns / 1000})
    tracks: dict[tuple, int] = {}
    for name, kind, op, category, device, stream, start_ns, dur_ns in store.timeline(run["id"], repeat, steps):
        track = (device, stream)
        if track not in tracks:
            tracks[track] = len(tracks) + 1
            name_of_track = f"{device} stream {stream}" if device != "cpu" else f"cpu thread {stream}"
            emit({"ph": "M", "name": "thread_name", "pid": pid, "tid": tracks[track],
                  "args": {"name": name_of_track}})
        emit({"ph": "X", "name": name, "cat": kind, "pid": pid, "tid": tracks[track],
              "ts": (start_ns - origin) / 1000, "dur": dur_ns / 1000,
              "args": {"op": op, "category": category}})
    end = step_rows[-1][1] + step_rows[-1][2]
    for ts_ns, total in store.allocated_over_time(run["id"], repeat, origin, end):
        emit({"ph": "C", "name": "memory allocated (bytes)", "pid": pid,
              "ts": (ts_ns - origin) / 1000, "args": {"bytes": total}})


def write_tensorboard(store: Store, runs: list[dict], directory: Path,
                      repeat: int = 0) -> list[Path]:
    """A log dir TensorBoard and XProf open: plugins/profile/<run>/<host>.{pt.trace.json.gz,
    xplane.pb}, from the raw traces kept as artifacts."""
    written = []
    for run in runs:
        store.require_events(run["id"], "--format tensorboard")
        kept = store.trace_artifact(run["id"], repeat)
        source = kept and store.artifact_file(kept)
        if source is None or not source.exists():
            raise ExportError(f"run {run['id']} has no raw trace kept (its artifact is missing)")
        host = (run.get("host") or "xprof").replace("/", "_")
        target_dir = directory / "plugins" / "profile" / run["id"]
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            if source.name.endswith(".xplane.pb.gz"):
                target = target_dir / f"{host}.xplane.pb"
                with gzip.open(source, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                target = target_dir / f"{host}.pt.trace.json.gz"
                shutil.copyfile(source, target)
        except OSError as error:
            raise ExportError(f"cannot write {target_dir}: {error.strerror}") from None
        written.append(target)
    return written


def write_csv(store: Store, runs: list[dict], directory: Path, steps=None) -> list[Path]:
    """runs.csv, steps.csv, and kernels.csv (every op/kernel of the chosen steps)."""
    written = []
    for name, cursor in store.export_tables([r["id"] for r in runs], steps).items():
        path = writable(directory / name)
        try:
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(d[0] for d in cursor.description)
                writer.writerows(cursor)
        except OSError as error:
            raise ExportError(f"cannot write {path}: {error.strerror}") from None
        written.append(path)
    return written
