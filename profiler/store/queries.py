"""Every read of the store that analysis, the views and the exports make, as plain rows."""

from __future__ import annotations

import sqlite3
from typing import Iterator

from profiler.errors import UserError

DEVICE_KINDS = ("kernel", "memcpy", "memset")
# What `--by` groups event time by: its category, its framework op, its own name.
GROUPINGS = {"category": "COALESCE(category, 'other')", "op": "COALESCE(op, name)", "kernel": "name"}
# What makes runs one configuration to follow over time (regressions).
CONFIGURATION = ("workload", "framework", "mode", "execution", "size", "device")
# Step numbers wide enough for "every step" in a range (see steps_clause).
FIRST_STEP, LAST_STEP = -(1 << 63), (1 << 63) - 1


class RunNotFound(UserError, LookupError):
    """A run reference that names no run, or more than one."""


def steps_clause(steps: tuple[int, int] | None) -> tuple[str, tuple]:
    """SQL that keeps the events or steps of an inclusive range of steps (None: all)."""
    if steps is None:
        return "", ()
    return " AND step BETWEEN ? AND ?", steps


class Queries:
    """Read-only queries over `self.connection` (mixed into `Store`)."""

    connection: sqlite3.Connection
    path: object

    def _dicts(self, sql: str, params=()) -> list[dict]:
        return [dict(row) for row in self._cursor(sql, params, sqlite3.Row)]

    def _rows(self, sql: str, params=()) -> list[tuple]:
        return self._cursor(sql, params).fetchall()

    def _cursor(self, sql: str, params=(), row_factory=None) -> sqlite3.Cursor:
        from profiler.store.store import StoreError

        try:
            cursor = self.connection.cursor()
            cursor.row_factory = row_factory
            return cursor.execute(sql, params)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read store {self.path}: {error}") from None

    def meta(self, key: str) -> str | None:
        row = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else None

    # -- runs ---------------------------------------------------------------------

    def runs(self, limit: int | None = None) -> list[dict]:
        """Stored runs, newest first."""
        sql = "SELECT * FROM runs ORDER BY started_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._dicts(sql)

    def run_count(self) -> int:
        return self._rows("SELECT count(*) FROM runs")[0][0]

    def run(self, ref: str) -> dict:
        """A run by its id or an unambiguous prefix of it."""
        if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
            raise RunNotFound(f"{ref!r} is not a run id (ids are hex, see `xprof runs`)")
        rows = self._dicts("SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC",
                           (ref.lower() + "%",))
        if not rows:
            raise RunNotFound(f"no run with id {ref!r} (see `xprof runs`)")
        exact = [r for r in rows if r["id"] == ref]
        if exact:
            return exact[0]
        if len(rows) > 1:
            shown = ", ".join(r["id"] for r in rows[:5])
            raise RunNotFound(f"run id prefix {ref!r} is ambiguous: {len(rows)} runs match ({shown})")
        return rows[0]

    def latest_ok_run(self, workload: str, framework: str, mode: str | None = None,
                      execution: str | None = None, size: str | None = None) -> dict | None:
        """The newest `ok` run of a framework on a workload; None when there is none."""
        sql = "SELECT * FROM runs WHERE status = 'ok' AND workload = ? AND framework = ?"
        params = [workload, framework]
        for column, value in (("mode", mode), ("execution", execution), ("size", size)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = self._dicts(sql + " ORDER BY started_at DESC LIMIT 1", params)
        return rows[0] if rows else None

    def has_runs_of(self, workload: str, mode: str) -> bool:
        return bool(self._rows("SELECT 1 FROM runs WHERE workload = ? AND mode = ? LIMIT 1",
                               (workload, mode)))

    def compared_groups(self, workloads=None) -> list[tuple]:
        """(workload, mode, size) of every ok run with a workload, each once."""
        sql = "SELECT DISTINCT workload, mode, size FROM runs WHERE status = 'ok' AND workload IS NOT NULL"
        params = list(workloads or [])
        if params:
            sql += f" AND workload IN ({', '.join('?' * len(params))})"
        return self._rows(sql + " ORDER BY workload, mode, size", params)

    def configurations(self, workload: str | None = None) -> list[tuple]:
        """The CONFIGURATION of every ok run, each once."""
        sql = f"SELECT DISTINCT {', '.join(CONFIGURATION)} FROM runs WHERE status = 'ok'"
        params = []
        if workload:
            sql += " AND workload = ?"
            params.append(workload)
        return self._rows(sql + " ORDER BY workload, framework, mode", params)

    def configuration_history(self, configuration: tuple, count: int) -> list[dict]:
        """The newest `count` ok runs of a configuration, oldest first."""
        where = " AND ".join(f"{c} IS ?" for c in CONFIGURATION)
        rows = self._dicts(f"SELECT * FROM runs WHERE status = 'ok' AND {where}"
                           " ORDER BY started_at DESC LIMIT ?", (*configuration, count))
        return rows[::-1]

    def run_with_content(self, sha256: str) -> str | None:
        """The id of a run imported from a file with this sha256."""
        rows = self._rows("SELECT id FROM runs WHERE content_sha256 = ? LIMIT 1", (sha256,))
        return rows[0][0] if rows else None

    def running_runs(self) -> list[dict]:
        return self._dicts("SELECT * FROM runs WHERE status = 'running' ORDER BY started_at")

    def repeats_stored(self, run_id: str) -> int:
        return self._rows("SELECT count(DISTINCT repeat) FROM steps WHERE run_id = ?", (run_id,))[0][0]

    def newest_ok_runs(self, limit: int, source: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs WHERE status = 'ok'"
        params: list = []
        if source:
            sql += " AND source = ?"
            params.append(source)
        return self._dicts(sql + " ORDER BY started_at DESC LIMIT ?", (*params, limit))

    def last_ok_finish(self) -> float | None:
        """When the newest ok run finished: it changes only when a run lands."""
        return self._rows("SELECT MAX(finished_at) FROM runs WHERE status = 'ok'")[0][0]

    # -- what the figures of a run are made of ------------------------------------

    def has_device_events(self, run_id: str) -> bool:
        marks = ", ".join("?" * len(DEVICE_KINDS))
        return bool(self._rows(f"SELECT 1 FROM events WHERE run_id = ? AND kind IN ({marks}) LIMIT 1",
                               (run_id, *DEVICE_KINDS)))

    def step_rows(self, run_id: str) -> list[dict]:
        """repeat, step, wall_ns, profiled of every step of a run."""
        return self._dicts("SELECT repeat, step, wall_ns, profiled FROM steps WHERE run_id = ?", (run_id,))

    def step_walls_ns(self, run_id: str, profiled: bool) -> list[int]:
        """Wall times of a run's profiled or unprofiled steps, by repeat and step."""
        return [row[0] for row in self._rows(
            "SELECT wall_ns FROM steps WHERE run_id = ? AND profiled = ? ORDER BY repeat, step",
            (run_id, int(profiled)))]

    def time_per_step(self, run_id: str, by: str, kinds: tuple[str, ...], self_time: bool) -> list[dict]:
        """Nanoseconds of events of `kinds` per (repeat, step, key), keyed by GROUPINGS[by];
        own time (less nested events) when `self_time`, else whole durations."""
        column = "self_ns" if self_time else "dur_ns"
        marks = ", ".join("?" * len(kinds))
        return self._dicts(
            f"SELECT repeat, step, {GROUPINGS[by]} AS key, SUM({column}) AS ns FROM events"
            f" WHERE run_id = ? AND kind IN ({marks}) AND step IS NOT NULL GROUP BY repeat, step, key",
            (run_id, *kinds))

    def memory_per_repeat(self, run_id: str) -> list[dict]:
        """Peak allocated bytes and the number of allocations of each repeat."""
        return self._dicts("SELECT repeat, MAX(total_allocated) AS peak, SUM(bytes > 0) AS allocations"
                           " FROM memory_events WHERE run_id = ? GROUP BY repeat", (run_id,))

    def device_peak_bytes(self, run_id: str) -> int | None:
        """The largest device allocator peak a step of the run recorded (GPU runs)."""
        return self._rows("SELECT MAX(peak_bytes) FROM steps WHERE run_id = ?", (run_id,))[0][0]

    def event_counts(self, run_id: str, kinds: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """kind -> (events, total ns) for each of `kinds` the run has."""
        marks = ", ".join("?" * len(kinds))
        return {kind: (n, ns) for kind, n, ns in self._rows(
            f"SELECT kind, count(*), SUM(dur_ns) FROM events WHERE run_id = ? AND kind IN ({marks})"
            " GROUP BY kind", (run_id, *kinds))}

    # -- timelines ----------------------------------------------------------------

    def profiled_steps(self, run_id: str, repeat: int, steps=None) -> list[tuple[int, int, int]]:
        """(step, start_ns, wall_ns) of a repeat's profiled steps with a start, in time order."""
        clause, params = steps_clause(steps)
        return self._rows("SELECT step, start_ns, wall_ns FROM steps WHERE run_id = ? AND repeat = ?"
                          f" AND profiled AND start_ns IS NOT NULL{clause} ORDER BY start_ns",
                          (run_id, repeat, *params))

    def profiled_step_range(self, run_id: str, repeat: int) -> tuple[int | None, int | None]:
        return self._rows("SELECT MIN(step), MAX(step) FROM steps WHERE run_id = ? AND repeat = ?"
                          " AND profiled", (run_id, repeat))[0]

    def timeline(self, run_id: str, repeat: int, steps=None) -> Iterator[tuple]:
        """(name, kind, op, category, device, stream, start_ns, dur_ns) of a repeat's
        events in time order, streamed."""
        clause, params = steps_clause(steps)
        return self._cursor("SELECT name, kind, op, category, device, stream, start_ns, dur_ns"
                            f" FROM events WHERE run_id = ? AND repeat = ?{clause} ORDER BY start_ns",
                            (run_id, repeat, *params))

    def allocated_over_time(self, run_id: str, repeat: int, start_ns: int, end_ns: int) -> list[tuple]:
        """(ts_ns, total_allocated) of a repeat's memory events between two times."""
        return self._rows("SELECT ts_ns, total_allocated FROM memory_events WHERE run_id = ? AND repeat = ?"
                          " AND total_allocated IS NOT NULL AND ts_ns BETWEEN ? AND ? ORDER BY ts_ns",
                          (run_id, repeat, start_ns, end_ns))

    def profiled_span(self, run_id: str, repeat: int) -> tuple[int | None, int | None]:
        """Start of a repeat's first profiled step and end of its last."""
        return self._rows("SELECT MIN(start_ns), MAX(start_ns + wall_ns) FROM steps WHERE run_id = ?"
                          " AND repeat = ? AND profiled AND start_ns IS NOT NULL", (run_id, repeat))[0]

    # -- artifacts and tables for export ------------------------------------------

    def trace_artifact(self, run_id: str, repeat: int) -> str | None:
        """The path of the raw trace kept for a repeat (the first repeat's when that one's
        is missing)."""
        rows = self._rows("SELECT path FROM artifacts WHERE run_id = ? AND kind = 'trace'"
                          " ORDER BY json_extract(summary, '$.repeat') = ? DESC LIMIT 1", (run_id, repeat))
        return rows[0][0] if rows else None

    def export_tables(self, run_ids: list[str], steps=None) -> dict[str, sqlite3.Cursor]:
        """The CSV export's tables, each a cursor with its column names in `description`:
        the runs, their steps, and every event of the chosen steps."""
        marks = ", ".join("?" * len(run_ids))
        clause, params = steps_clause(steps)
        return {
            "runs.csv": self._cursor(
                "SELECT id, status, framework, framework_version, workload, mode, execution,"
                " size, device, host, step_ms_median, event_count AS kernel_count, memory_event_count,"
                f" started_at, source, label FROM runs WHERE id IN ({marks})", run_ids),
            "steps.csv": self._cursor(
                "SELECT run_id, repeat, step, profiled, wall_ns, start_ns, peak_bytes"
                f" FROM steps WHERE run_id IN ({marks}){clause and ' AND profiled' + clause}"
                " ORDER BY run_id, repeat, profiled, step", (*run_ids, *params)),
            "kernels.csv": self._cursor(
                "SELECT run_id, repeat, step, kind, category, op, name, device, stream,"
                f" start_ns, dur_ns, self_ns FROM events WHERE run_id IN ({marks}){clause}"
                " ORDER BY run_id, repeat, start_ns", (*run_ids, *params)),
        }

    # -- telemetry ----------------------------------------------------------------

    def recent_samples(self, since_ns: int, limit: int) -> list[dict]:
        """Telemetry samples after `since_ns`, newest first."""
        return self._dicts("SELECT * FROM samples WHERE ts_ns > ? ORDER BY ts_ns DESC LIMIT ?",
                           (since_ns, limit))
