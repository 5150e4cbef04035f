"""Hand stored runs to reviewers: Perfetto/Chrome trace, TensorBoard log dir, CSV tables.

Each export reads one repeat of each run (the first, unless told) and can be sliced to
a range of profiled steps, so a reviewer's viewer is not handed a gigabyte.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import sqlite3
from pathlib import Path

from profiler.errors import UserError


class ExportError(UserError):
    pass


def parse_step_range(text: str | None) -> tuple[int, int] | None:
    """'3' -> (3, 3); '2:5' -> (2, 5), inclusive; '2:' from 2 on, ':5' up to 5; None ->
    every step."""
    if not text:
        return None
    first, colon, last = text.partition(":")
    try:
        low = int(first) if first or not colon else -(1 << 63)
        high = int(last) if last else ((1 << 63) - 1 if colon else low)
    except ValueError:
        raise ExportError(f"--steps {text!r}: expected N, FIRST:LAST, FIRST: or :LAST, e.g. 2:5") from None
    if low > high:
        raise ExportError(f"--steps {text!r}: FIRST is after LAST")
    return low, high


def describe_steps(steps: tuple[int, int]) -> str:
    """The range as the user wrote it: '2:5', '2:' or ':5'."""
    low, high = steps
    return f"{'' if low == -(1 << 63) else low}:{'' if high == (1 << 63) - 1 else high}"


def _step_clause(steps):
    if steps is None:
        return "", ()
    return " AND step BETWEEN ? AND ?", steps


def _writable(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    return path


def _run_label(run: dict) -> str:
    what = " ".join(str(v) for v in (run["framework"], run["execution"], run["workload"]) if v)
    return f"{what} ({run['id'][:8]})"


def write_perfetto(conn: sqlite3.Connection, runs: list[dict], path: Path, repeat: int = 0,
                   steps=None) -> int:
    """One Chrome-trace JSON: a process per run, aligned at its first profiled step,
    kernels and ops on a track per (device, stream), steps on a track of their own,
    memory as a counter. Returns the number of events written."""
    path = _writable(path)
    written = 0
    try:
        out = open(path, "w")
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    with out:
        out.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        first = True

        def emit(event):
            nonlocal first, written
            out.write(("" if first else ",\n") + json.dumps(event, separators=(",", ":")))
            first = False
            written += 1

        for pid, run in enumerate(runs, start=1):
            _perfetto_run(conn, run, pid, repeat, steps, emit)
        out.write("\n]}\n")
    return written


def _perfetto_run(conn, run, pid, repeat, steps, emit) -> None:
    clause, params = _step_clause(steps)
    step_rows = conn.execute(
        "SELECT step, start_ns, wall_ns FROM steps WHERE run_id = ? AND repeat = ? AND profiled"
        f" AND start_ns IS NOT NULL{clause} ORDER BY start_ns", (run["id"], repeat, *params)).fetchall()
    if not step_rows:
        first, last = conn.execute("SELECT MIN(step), MAX(step) FROM steps WHERE run_id = ? AND repeat = ?"
                                   " AND profiled", (run["id"], repeat)).fetchone()
        raise ExportError(f"run {run['id']} has no profiled steps in repeat {repeat}"
                          + (f" within steps {describe_steps(steps)}" if steps else "")
                          + (f" (its profiled steps are {first}:{last})" if first is not None else ""))
    origin = step_rows[0][1]
    emit({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": _run_label(run)}})
    emit({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
    emit({"ph": "M", "name": "thread_name", "pid": pid, "tid": 0, "args": {"name": "steps"}})
    for step, start_ns, wall_ns in step_rows:
        emit({"ph": "X", "name": f"step {step}", "cat": "step", "pid": pid, "tid": 0,
              "ts": (start_ns - origin) / 1000, "dur": wall_ns / 1000})
    tracks: dict[tuple, int] = {}
    for name, kind, op, category, device, stream, start_ns, dur_ns in conn.execute(
        "SELECT name, kind, op, category, device, stream, start_ns, dur_ns FROM kernels"
        f" WHERE run_id = ? AND repeat = ?{clause} ORDER BY start_ns", (run["id"], repeat, *params)
    ):
        track = (device, stream)
        if track not in tracks:
            tracks[track] = len(tracks) + 1
            label = f"{device} stream {stream}" if device != "cpu" else f"cpu thread {stream}"
            emit({"ph": "M", "name": "thread_name", "pid": pid, "tid": tracks[track],
                  "args": {"name": label}})
        emit({"ph": "X", "name": name, "cat": kind, "pid": pid, "tid": tracks[track],
              "ts": (start_ns - origin) / 1000, "dur": dur_ns / 1000,
              "args": {"op": op, "category": category}})
    end = step_rows[-1][1] + step_rows[-1][2]
    for ts_ns, total in conn.execute(
        "SELECT ts_ns, total_allocated FROM memory_events WHERE run_id = ? AND repeat = ?"
        " AND total_allocated IS NOT NULL AND ts_ns BETWEEN ? AND ? ORDER BY ts_ns",
        (run["id"], repeat, origin, end),
    ):
        emit({"ph": "C", "name": "memory allocated (bytes)", "pid": pid,
              "ts": (ts_ns - origin) / 1000, "args": {"bytes": total}})


def write_tensorboard(conn: sqlite3.Connection, runs: list[dict], directory: Path,
                      repeat: int = 0) -> list[Path]:
    """A log dir TensorBoard and XProf open: plugins/profile/<run>/<host>.{pt.trace.json.gz,
    xplane.pb}, from the raw traces kept as artifacts."""
    written = []
    for run in runs:
        row = conn.execute(
            "SELECT path, summary FROM artifacts WHERE run_id = ? AND kind = 'trace'"
            " ORDER BY json_extract(summary, '$.repeat') = ? DESC LIMIT 1", (run["id"], repeat),
        ).fetchone()
        if row is None or not Path(row[0]).exists():
            raise ExportError(f"run {run['id']} has no raw trace kept (its artifact is missing)")
        source = Path(row[0])
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


def write_csv(conn: sqlite3.Connection, runs: list[dict], directory: Path, steps=None) -> list[Path]:
    """runs.csv, steps.csv, and kernels.csv (every op/kernel of the chosen steps)."""
    ids = [r["id"] for r in runs]
    marks = ", ".join("?" * len(ids))
    clause, params = _step_clause(steps)
    tables = {
        "runs.csv": (f"SELECT id, status, framework, framework_version, workload, mode, execution,"
                     f" size, device, host, step_ms_median, kernel_count, memory_event_count,"
                     f" started_at, source, label FROM runs WHERE id IN ({marks})", ids),
        "steps.csv": (f"SELECT run_id, repeat, step, profiled, wall_ns, start_ns, peak_bytes"
                      f" FROM steps WHERE run_id IN ({marks}){clause and ' AND profiled' + clause}"
                      " ORDER BY run_id, repeat,"
                      " profiled, step", (*ids, *params)),
        "kernels.csv": (f"SELECT run_id, repeat, step, kind, category, op, name, device, stream,"
                        f" start_ns, dur_ns, self_ns FROM kernels WHERE run_id IN ({marks}){clause}"
                        " ORDER BY run_id, repeat, start_ns", (*ids, *params)),
    }
    written = []
    for name, (sql, values) in tables.items():
        path = _writable(directory / name)
        cursor = conn.execute(sql, values)
        try:
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(d[0] for d in cursor.description)
                writer.writerows(cursor)
        except OSError as error:
            raise ExportError(f"cannot write {path}: {error.strerror}") from None
        written.append(path)
    return written
