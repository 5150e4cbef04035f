"""Every read of the store that analysis, the views and the exports make, as plain rows."""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Iterator

from profiler.errors import UserError
from profiler.store.rows import DEVICE_KINDS, GROUPINGS

# What makes runs one configuration to follow over time (regressions): on a fleet's store,
# the same workload on two hosts is two series.
CONFIGURATION = ("workload", "framework", "mode", "execution", "size", "dtype", "device", "batch_size", "host")
# pg_advisory_xact_lock class of an import's content (its sha256's first 32 bits the object)
CONTENT_LOCK = 0x7869  # "xi"
# Step numbers wide enough for "every step" in a range (see steps_clause).
FIRST_STEP, LAST_STEP = -(1 << 63), (1 << 63) - 1


class RunNotFound(UserError, LookupError):
    """A run reference that names no run, or more than one."""


class EventsPruned(UserError, LookupError):
    """A run whose raw events `xprof prune` removed, asked for them."""


def _nulls_first(columns) -> str:
    """ORDER BY columns with NULLs first on both backends (PostgreSQL puts them last)."""
    return ", ".join(f"{column} NULLS FIRST" for column in columns)


def steps_clause(steps: tuple[int, int] | None) -> tuple[str, tuple]:
    """SQL that keeps the events or steps of an inclusive range of steps (None: all)."""
    if steps is None:
        return "", ()
    return " AND step BETWEEN ? AND ?", steps


class Queries:
    """Read-only queries over `self.connection` (mixed into `Store`)."""

    connection: sqlite3.Connection
    path: object
    errors: tuple
    # `--host`: the runs listed, configurations followed and recent runs shown are this
    # host's only (None: every host's)
    only_host: str | None = None

    def _host_clause(self, prefix: str = " AND") -> tuple[str, tuple]:
        if self.only_host is None:
            return "", ()
        if self.only_host == "":  # runs of no host: imported traces
            return f"{prefix} host IS NULL", ()
        return f"{prefix} host = ?", (self.only_host,)

    def _dicts(self, sql: str, params=()) -> list[dict]:
        return [dict(row) for row in self._cursor(sql, params, dicts=True)]

    def _rows(self, sql: str, params=()) -> list[tuple]:
        return self._cursor(sql, params).fetchall()

    def _cursor(self, sql: str, params=(), dicts: bool = False):
        from profiler.store.store import StoreError

        try:
            if not isinstance(self.connection, sqlite3.Connection):
                return self.connection.query(sql, params, dicts)
            cursor = self.connection.cursor()
            cursor.row_factory = sqlite3.Row if dicts else None
            return cursor.execute(sql, params)
        except self.errors as error:
            if getattr(self, "url", None):
                raise StoreError(self.describe(error)) from None
            raise StoreError(f"cannot read store {self.path}: {' '.join(str(error).split())}") from None

    def meta(self, key: str) -> str | None:
        row = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else None

    # -- runs ---------------------------------------------------------------------

    def runs(self, limit: int | None = None) -> list[dict]:
        """Stored runs, newest first."""
        where, params = self._host_clause(" WHERE")
        sql = f"SELECT * FROM runs{where} ORDER BY started_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._dicts(sql, params)

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
                      execution: str | None = None, size: str | None = None, dtype: str | None = None,
                      device: str | None = None, batch_size: int | None = None) -> dict | None:
        """The newest `ok` run of a framework on a workload, of the configuration values
        given, at `batch_size` (None: the size's own batch); None when there is none."""
        sql = "SELECT * FROM runs WHERE status = 'ok' AND workload = ? AND framework = ? AND batch_size IS ?"
        params = [workload, framework, batch_size]
        for column, value in (("mode", mode), ("execution", execution), ("size", size), ("dtype", dtype),
                              ("device", device)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        clause, host = self._host_clause()
        rows = self._dicts(sql + clause + " ORDER BY started_at DESC LIMIT 1", (*params, *host))
        return rows[0] if rows else None

    def other_batch_sizes(self, workload: str, framework: str, mode: str | None = None) -> list[int]:
        """The batch sizes (`--batch-size`) of ok runs of a framework on a workload."""
        sql = "SELECT DISTINCT batch_size FROM runs WHERE status = 'ok' AND workload = ? AND framework = ?" \
              " AND batch_size IS NOT NULL"
        params = [workload, framework]
        if mode:
            sql += " AND mode = ?"
            params.append(mode)
        return [size for size, in self._rows(sql + " ORDER BY batch_size", params)]

    def has_runs_of(self, workload: str, mode: str) -> bool:
        return bool(self._rows("SELECT 1 FROM runs WHERE workload = ? AND mode = ? LIMIT 1",
                               (workload, mode)))

    def compared_groups(self, workloads=None) -> list[tuple]:
        """(workload, mode, size, dtype, device, batch_size) of every ok run with a workload,
        each once."""
        columns = "workload, mode, size, dtype, device, batch_size"
        sql = f"SELECT DISTINCT {columns} FROM runs WHERE status = 'ok' AND workload IS NOT NULL"
        params = list(workloads or [])
        if params:
            sql += f" AND workload IN ({', '.join('?' * len(params))})"
        clause, host = self._host_clause()
        return self._rows(sql + clause + f" ORDER BY {_nulls_first(columns.split(', '))}", (*params, *host))

    def configurations(self, workload: str | None = None, as_of: float | None = None) -> list[tuple]:
        """The CONFIGURATION of every ok run (started up to `as_of`), each once."""
        sql = f"SELECT DISTINCT {', '.join(CONFIGURATION)} FROM runs WHERE status = 'ok' AND started_at <= ?"
        params = [math.inf if as_of is None else as_of]
        if workload:
            sql += " AND workload = ?"
            params.append(workload)
        clause, host = self._host_clause()
        return self._rows(sql + clause + f" ORDER BY {_nulls_first(CONFIGURATION)}", (*params, *host))

    def configuration_history(self, configuration: tuple, count: int | None = None,
                              as_of: float | None = None) -> list[dict]:
        """The newest `count` (None: all) ok runs of a configuration started up to
        `as_of` (None: now), oldest first."""
        where = " AND ".join(f"{c} IS ?" for c in CONFIGURATION)
        limit = "" if count is None else f" LIMIT {int(count)}"
        rows = self._dicts(f"SELECT * FROM runs WHERE status = 'ok' AND {where} AND started_at <= ?"
                           f" ORDER BY started_at DESC{limit}",
                           (*configuration, math.inf if as_of is None else as_of))
        return rows[::-1]

    def runs_not_ok(self, configuration: tuple, since: float, as_of: float | None = None) -> list[dict]:
        """The runs of a configuration that did not finish ok (failed, interrupted, still
        running) started from `since` up to `as_of`, oldest first."""
        # a run that failed before its worker said which device it ran on has none
        where = " AND ".join(f"({c} IS ? OR {c} IS NULL)" if c == "device" else f"{c} IS ?" for c in CONFIGURATION)
        return self._dicts(f"SELECT id, status, error, started_at FROM runs WHERE status != 'ok' AND {where}"
                           " AND started_at >= ? AND started_at <= ? ORDER BY started_at",
                           (*configuration, since, math.inf if as_of is None else as_of))

    def run_with_content(self, sha256: str) -> str | None:
        """The id of a run imported from a file with this sha256. On a server, inside the
        caller's transaction, this first waits for any other import of the same content to
        end (an advisory lock until the transaction does), so a file is stored once."""
        if getattr(self, "url", None):
            self._rows("SELECT pg_advisory_xact_lock(?, ?)", (CONTENT_LOCK, int(sha256[:8], 16) - (1 << 31)))
        rows = self._rows("SELECT id FROM runs WHERE content_sha256 = ? LIMIT 1", (sha256,))
        return rows[0][0] if rows else None

    def running_runs(self) -> list[dict]:
        clause, host = self._host_clause()
        return self._dicts(f"SELECT * FROM runs WHERE status = 'running'{clause} ORDER BY started_at", host)

    def hosts(self) -> list[str]:
        """Every host with a run in the store."""
        return [host for host, in self._rows("SELECT DISTINCT host FROM runs WHERE host IS NOT NULL ORDER BY host")]

    def repeats_stored(self, run_id: str) -> int:
        return self._rows("SELECT count(DISTINCT repeat) FROM steps WHERE run_id = ?", (run_id,))[0][0]

    def newest_ok_runs(self, limit: int, source: str | None = None) -> list[dict]:
        clause, host = self._host_clause()
        sql = "SELECT * FROM runs WHERE status = 'ok'" + clause
        params: list = [*host]
        if source:
            sql += " AND source = ?"
            params.append(source)
        return self._dicts(sql + " ORDER BY started_at DESC LIMIT ?", (*params, limit))

    def last_ok_finish(self) -> float | None:
        """When the newest ok run finished: it changes only when a run lands."""
        return self._rows("SELECT MAX(finished_at) FROM runs WHERE status = 'ok'")[0][0]

    # -- what the figures of a run are made of ------------------------------------

    def has_device_events(self, run_id: str) -> bool:
        """Whether the run's figures are device time (kernels, copies) rather than CPU time."""
        return self._rows("SELECT basis = 'device' FROM runs WHERE id = ?", (run_id,))[0][0] == 1

    def step_rows(self, run_id: str) -> list[dict]:
        """repeat, step, wall_ns, profiled of every step of a run."""
        return self._dicts("SELECT repeat, step, wall_ns, profiled FROM steps WHERE run_id = ?", (run_id,))

    def step_walls_ns(self, run_id: str, profiled: bool) -> list[int]:
        """Wall times of a run's profiled or unprofiled steps, by repeat and step."""
        return [row[0] for row in self._rows(
            "SELECT wall_ns FROM steps WHERE run_id = ? AND profiled = ? ORDER BY repeat, step",
            (run_id, int(profiled)))]

    def time_per_step(self, run_id: str, by: str) -> list[dict]:
        """Nanoseconds per (repeat, step, key) of the run's timed events (device events, or
        CPU ops by self time), keyed by category, op or kernel. Category and op come from the
        figures kept when the run finished; kernel from its raw events."""
        if by in GROUPINGS:
            return self._dicts("SELECT repeat, step, key, time_ns AS ns FROM figure_rows"
                               " WHERE run_id = ? AND grouping = ?", (run_id, GROUPINGS[by]))
        self.require_events(run_id, f"--by {by}")
        device = self.has_device_events(run_id)
        kinds = DEVICE_KINDS if device else ("cpu_op",)
        return self._dicts(
            f"SELECT repeat, step, name AS key, SUM({'dur_ns' if device else 'self_ns'}) AS ns"
            f" FROM event_rows WHERE run_id = ? AND kind IN ({', '.join('?' * len(kinds))})"
            " AND step IS NOT NULL GROUP BY repeat, step, key", (run_id, *kinds))

    def attribution_events(self, run_id: str, what: str) -> Iterator[tuple]:
        """(repeat, step, name, op, category, kind, device, stream, start_ns, dur_ns,
        self_ns, correlation, layer, shapes) of the run's events, each repeat's in time
        order, outer before inner at equal starts: what layer and roofline tables read."""
        self.require_events(run_id, what)
        return self._cursor("SELECT repeat, step, name, op, category, kind, device, stream, start_ns, dur_ns,"
                            " self_ns, correlation, layer, shapes FROM event_rows WHERE run_id = ?"
                            " ORDER BY repeat, start_ns, dur_ns DESC, seq", (run_id,))

    def calibrations(self, host: str | None = None) -> list[dict]:
        """The newest calibration of each (host, device, framework, dtype), newest first."""
        where, params = ("WHERE host = ?", (host,)) if host is not None else ("", ())
        return self._dicts(
            "SELECT * FROM calibrations WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER ("
            "PARTITION BY host, device, framework, dtype ORDER BY measured_at DESC, id DESC) AS newest"
            f" FROM calibrations {where}) AS ranked WHERE newest = 1) ORDER BY measured_at DESC, id DESC", params)

    def require_events(self, run_id: str, what: str) -> None:
        """EventsPruned when the run's raw events are gone, naming what needs them."""
        pruned = self._rows("SELECT events_pruned_at FROM runs WHERE id = ?", (run_id,))
        if pruned and pruned[0][0] is not None:
            day = time.strftime("%Y-%m-%d", time.localtime(pruned[0][0]))
            raise EventsPruned(f"run {run_id}'s raw events were pruned on {day}, and {what} needs "
                               "them; keep them longer next time (xprof prune --older-than, "
                               "or the daemon's --keep-events)")

    def memory_per_repeat(self, run_id: str) -> list[dict]:
        """Peak allocated bytes and the number of allocations of each repeat that had
        memory events (kept when the run finished)."""
        return self._dicts("SELECT repeat, peak_allocated AS peak, allocations FROM repeats"
                           " WHERE run_id = ? AND allocations IS NOT NULL", (run_id,))

    def device_peak_bytes(self, run_id: str) -> int | None:
        """The largest device allocator peak a step of the run recorded (GPU runs)."""
        return self._rows("SELECT MAX(peak_bytes) FROM steps WHERE run_id = ?", (run_id,))[0][0]

    def event_counts(self, run_id: str, kinds: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """kind -> (events, total ns) for each of `kinds` the run has."""
        marks = ", ".join("?" * len(kinds))
        return {kind: (n, ns) for kind, n, ns in self._rows(
            "SELECT s.text, SUM(t.events), SUM(t.dur_ns) FROM kind_totals t JOIN repeats r ON r.id = t.repeat_id"
            f" JOIN strings s ON s.id = t.kind_id WHERE r.run_id = ? AND s.text IN ({marks}) GROUP BY s.text",
            (run_id, *kinds))}

    # -- timelines ----------------------------------------------------------------

    def profiled_steps(self, run_id: str, repeat: int, steps=None) -> list[tuple[int, int, int]]:
        """(step, start_ns, wall_ns) of a repeat's profiled steps with a start, in time order."""
        clause, params = steps_clause(steps)
        return self._rows("SELECT step, start_ns, wall_ns FROM steps WHERE run_id = ? AND repeat = ?"
                          f" AND profiled = 1 AND start_ns IS NOT NULL{clause} ORDER BY start_ns",
                          (run_id, repeat, *params))

    def profiled_step_range(self, run_id: str, repeat: int) -> tuple[int | None, int | None]:
        return self._rows("SELECT MIN(step), MAX(step) FROM steps WHERE run_id = ? AND repeat = ?"
                          " AND profiled = 1", (run_id, repeat))[0]

    def timeline(self, run_id: str, repeat: int, steps=None) -> Iterator[tuple]:
        """(name, kind, op, category, device, stream, start_ns, dur_ns) of a repeat's
        events in time order, streamed."""
        self.require_events(run_id, "--format perfetto")
        clause, params = steps_clause(steps)
        return self._cursor("SELECT name, kind, op, category, device, stream, start_ns, dur_ns"
                            f" FROM event_rows WHERE run_id = ? AND repeat = ?{clause} ORDER BY start_ns, seq",
                            (run_id, repeat, *params))

    def allocated_over_time(self, run_id: str, repeat: int, start_ns: int, end_ns: int) -> list[tuple]:
        """(ts_ns, total_allocated) of a repeat's memory events between two times."""
        return self._rows("SELECT ts_ns, total_allocated FROM memory_rows WHERE run_id = ? AND repeat = ?"
                          " AND total_allocated IS NOT NULL AND ts_ns BETWEEN ? AND ? ORDER BY ts_ns",
                          (run_id, repeat, start_ns, end_ns))

    def profiled_span(self, run_id: str, repeat: int) -> tuple[int | None, int | None]:
        """Start of a repeat's first profiled step and end of its last."""
        return self._rows("SELECT MIN(start_ns), MAX(start_ns + wall_ns) FROM steps WHERE run_id = ?"
                          " AND repeat = ? AND profiled = 1 AND start_ns IS NOT NULL", (run_id, repeat))[0]

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
        for run_id in run_ids:
            self.require_events(run_id, "--format csv")
        marks = ", ".join("?" * len(run_ids))
        clause, params = steps_clause(steps)
        return {
            "runs.csv": self._cursor(
                "SELECT id, status, framework, framework_version, workload, mode, execution,"
                " size, dtype, device, batch_size, host, step_ms_median, event_count AS kernel_count, memory_event_count,"
                f" started_at, source, label FROM runs WHERE id IN ({marks}) ORDER BY started_at, id", run_ids),
            "steps.csv": self._cursor(
                "SELECT run_id, repeat, step, profiled, wall_ns, start_ns, peak_bytes"
                f" FROM steps WHERE run_id IN ({marks}){clause and ' AND profiled = 1' + clause}"
                " ORDER BY run_id, repeat, profiled, step", (*run_ids, *params)),
            "kernels.csv": self._cursor(
                "SELECT run_id, repeat, step, kind, category, op, name, device, stream,"
                f" start_ns, dur_ns, self_ns FROM event_rows WHERE run_id IN ({marks}){clause}"
                " ORDER BY run_id, repeat, start_ns, seq", (*run_ids, *params)),
        }

    # -- retention ----------------------------------------------------------------

    def runs_to_prune(self, started_before: float, keep_last: int) -> list[dict]:
        """Finished runs started before `started_before` that still hold raw events or
        traces, but for the `keep_last` newest ok runs of each configuration (failed ones
        never take their place), oldest first."""
        return self._dicts(
            "SELECT * FROM (SELECT r.*, row_number() OVER (PARTITION BY "
            f"{', '.join(CONFIGURATION)} ORDER BY status = 'ok' DESC, started_at DESC) AS newness FROM runs r"
            " WHERE status != 'running' AND events_pruned_at IS NULL"
            " AND (EXISTS (SELECT 1 FROM repeats p WHERE p.run_id = r.id)"
            "      OR EXISTS (SELECT 1 FROM artifacts a WHERE a.run_id = r.id AND a.kind = 'trace'))) AS ranked"
            " WHERE newness > ? AND started_at < ? ORDER BY started_at", (keep_last, started_before))

    def raw_counts(self, run_ids: list[str]) -> dict:
        """What pruning `run_ids` would remove: {"runs", "events", "memory_events", "artifact_bytes"}."""
        if not run_ids:
            return {"runs": 0, "events": 0, "memory_events": 0, "artifact_bytes": 0}
        marks = ", ".join("?" * len(run_ids))
        repeats = f"SELECT id FROM repeats WHERE run_id IN ({marks})"
        return {"runs": len(run_ids),
                "events": self._rows(f"SELECT count(*) FROM events WHERE repeat_id IN ({repeats})", run_ids)[0][0],
                "memory_events": self._rows(f"SELECT count(*) FROM memory_events WHERE repeat_id IN ({repeats})",
                                            run_ids)[0][0],
                "artifact_bytes": self._rows(f"SELECT COALESCE(SUM(bytes), 0) FROM artifacts WHERE run_id IN"
                                             f" ({marks}) AND kind = 'trace'", run_ids)[0][0]}

    # -- telemetry ----------------------------------------------------------------

    def utilization_samples(self, run_id: str, device: str) -> list[float]:
        """The NVML utilization (percent) of `device` sampled while a run's workers ran."""
        return [value for value, in self._rows(
            "SELECT utilization_pct FROM samples WHERE run_id = ? AND source = 'nvml' AND device = ?"
            " AND utilization_pct IS NOT NULL ORDER BY ts_ns", (run_id, device))]

    def recent_samples(self, since_ns: int, limit: int) -> list[dict]:
        """Telemetry samples after `since_ns`, newest first."""
        return self._dicts("SELECT * FROM samples WHERE ts_ns > ? ORDER BY ts_ns DESC LIMIT ?",
                           (since_ns, limit))
