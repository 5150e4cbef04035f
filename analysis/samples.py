"""Read what a comparison needs from the store: per-repeat figures of one run.

Time basis: when a run has device activity (kernels, memcpy, memset) its time is
device time (each event's duration); a CPU-only run's time is op self time (an op's
duration less the ops nested in it), so nested aten ops are counted once. Each
profiled step is one sample; a repeat's figure for a key is the median over its
profiled steps, zeros included (a step that never ran the op spent 0 ms on it). The
median, because one step in a few dozen is hit by something else on a shared machine
(a 4.8 ms step among 0.3 ms ones was seen here) and a mean would carry it whole.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from profiler.errors import UserError

from .stats import summarize


def workload_label(workload, mode=None, size=None) -> str:
    """'cnn train small'; an imported run may lack any of them: those are left out, and a
    run with none is an 'imported trace'."""
    return " ".join(str(part) for part in (workload, mode, size) if part) or "imported trace"

DEVICE_KINDS = ("kernel", "memcpy", "memset")
# On the CPU, the part of a profiled step that no op accounts for: the framework's
# dispatch and runtime, Python, the profiler's own cost. Dominant for small models.
BETWEEN_OPS = "(between ops)"
BY_COLUMNS = {"category": "COALESCE(category, 'other')", "op": "COALESCE(op, name)", "kernel": "name"}


# A repeat whose median step (timed or profiled) is more than this many times off the
# median repeat's ran while the machine did something else: it is left out, and said
# so. Healthy repeats here differ by up to 1.5x; under load, two of five profiled
# repeats ran 5x slower than the other three and hid a 3x slowdown from the interval.
OUTLIER_FACTOR = 2.0
UNSTABLE_SPREAD = 1.5


def outlier_repeats(step_ms: dict[int, float]) -> dict[int, float]:
    """Repeats whose median step is more than OUTLIER_FACTOR slower than the median
    repeat's (a busy machine slows a process down, it never speeds one up):
    repeat -> factor. Needs 3 repeats."""
    if len(step_ms) < 3 or min(step_ms.values()) <= 0:
        return {}
    center = median(step_ms.values())
    return {r: v / center for r, v in step_ms.items() if v / center > OUTLIER_FACTOR}


class AnalysisError(UserError, ValueError):
    """A comparison that cannot be made (unknown run, nothing to compare)."""


@dataclass
class RunFigures:
    run: dict
    basis: str  # "device" or "cpu"
    repeats: list[int]
    # key -> one value (ms per step) per repeat, in `repeats` order
    per_repeat: dict[str, list[float]] = field(default_factory=dict)
    step_ms: list[float] = field(default_factory=list)  # median unprofiled step per repeat
    profiled_step_ms: list[float] = field(default_factory=list)
    steps_profiled: bool = False  # no unprofiled steps (an import): step_ms are profiled ones
    peak_bytes: int | None = None
    allocations_per_step: float | None = None

    excluded: dict[int, float] = field(default_factory=dict)  # repeat -> its factor off
    spread: float | None = None  # slowest / fastest per-repeat median step, kept repeats

    def mean(self, key: str) -> float:
        return summarize(self.per_repeat.get(key, []))


def query_rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    """Rows as dicts, leaving the connection's row factory as it found it (the CLI
    hands the same connection to code that unpacks plain tuples)."""
    previous = conn.row_factory
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.row_factory = previous


def run_figures(conn: sqlite3.Connection, run: dict, by: str = "category") -> RunFigures:
    run_id = run["id"]
    has_device = conn.execute(
        "SELECT 1 FROM kernels WHERE run_id = ? AND kind IN ('kernel', 'memcpy', 'memset') LIMIT 1",
        (run_id,),
    ).fetchone()
    basis = "device" if has_device else "cpu"
    kinds = DEVICE_KINDS if has_device else ("cpu_op",)
    time_column = "dur_ns" if has_device else "self_ns"

    steps = defaultdict(list)  # (repeat) -> profiled step numbers
    plain = defaultdict(list)
    profiled_walls = defaultdict(list)
    step_wall_ms = {}
    for row in query_rows(conn, "SELECT repeat, step, wall_ns, profiled FROM steps WHERE run_id = ?", (run_id,)):
        if row["profiled"]:
            steps[row["repeat"]].append(row["step"])
            profiled_walls[row["repeat"]].append(row["wall_ns"] / 1e6)
            step_wall_ms[row["repeat"], row["step"]] = row["wall_ns"] / 1e6
        else:
            plain[row["repeat"]].append(row["wall_ns"] / 1e6)
    # imported traces have no unprofiled steps: their profiled steps stand in
    timing = plain if any(plain.values()) else profiled_walls
    excluded = outlier_repeats({r: median(v) for r, v in timing.items() if v})
    excluded.update(outlier_repeats({r: median(v) for r, v in profiled_walls.items() if v}))
    if 2 * len(excluded) >= len(steps):
        excluded = {}  # no majority left to trust: keep all, the spread note warns
    repeats = [r for r in sorted(steps) if r not in excluded]
    figures = RunFigures(run, basis, repeats, excluded=excluded)
    figures.step_ms = [median(timing[r]) for r in sorted(timing) if timing[r] and r not in excluded]
    figures.profiled_step_ms = [median(profiled_walls[r]) for r in repeats]
    figures.steps_profiled = timing is profiled_walls
    if len(figures.step_ms) >= 2:
        figures.spread = max(figures.step_ms) / min(figures.step_ms)

    per_step: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    placeholders = ", ".join("?" * len(kinds))
    for row in query_rows(
        conn,
        f"SELECT repeat, step, {BY_COLUMNS[by]} AS key, SUM({time_column}) AS ns FROM kernels"
        f" WHERE run_id = ? AND kind IN ({placeholders}) AND step IS NOT NULL"
        " GROUP BY repeat, step, key",
        (run_id, *kinds),
    ):
        per_step[row["key"]][row["repeat"], row["step"]] = (row["ns"] or 0) / 1e6
    if basis == "cpu" and per_step:
        in_ops = defaultdict(float)
        for values in per_step.values():
            for where, ms in values.items():
                in_ops[where] += ms
        per_step[BETWEEN_OPS] = {
            where: max(wall - in_ops[where], 0.0) for where, wall in step_wall_ms.items()
        }
    for key, values in per_step.items():
        figures.per_repeat[key] = [
            median(values.get((r, step), 0.0) for step in steps[r]) for r in repeats
        ]

    memory = query_rows(
        conn,
        "SELECT repeat, MAX(total_allocated) AS peak, SUM(bytes > 0) AS allocations"
        " FROM memory_events WHERE run_id = ? GROUP BY repeat",
        (run_id,),
    )
    device_peak = conn.execute("SELECT MAX(peak_bytes) FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
    peaks = [r["peak"] for r in memory if r["peak"] is not None]
    figures.peak_bytes = device_peak or (max(peaks) if peaks else None)
    profiled_steps = sum(len(v) for v in steps.values())
    if memory and profiled_steps:
        figures.allocations_per_step = sum(r["allocations"] or 0 for r in memory) / profiled_steps
    return figures


def resolve_run(conn: sqlite3.Connection, ref: str) -> dict:
    """A run by its id or an unambiguous prefix of it."""
    if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
        raise AnalysisError(f"{ref!r} is not a run id (ids are hex, see `xprof runs`)")
    rows = query_rows(conn, "SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC",
                 (ref.lower() + "%",))
    if not rows:
        raise AnalysisError(f"no run with id {ref!r} (see `xprof runs`)")
    exact = [r for r in rows if r["id"] == ref]
    if exact:
        return dict(exact[0])
    if len(rows) > 1:
        shown = ", ".join(r["id"] for r in rows[:5])
        raise AnalysisError(f"run id prefix {ref!r} is ambiguous: {len(rows)} runs match ({shown})")
    return dict(rows[0])


def latest_run(conn: sqlite3.Connection, workload: str, framework: str, mode: str | None = None,
               execution: str | None = None, size: str | None = None) -> dict:
    """The newest `ok` run of a framework on a workload."""
    sql = "SELECT * FROM runs WHERE status = 'ok' AND workload = ? AND framework = ?"
    params = [workload, framework]
    for column, value in (("mode", mode), ("execution", execution), ("size", size)):
        if value:
            sql += f" AND {column} = ?"
            params.append(value)
    rows = query_rows(conn, sql + " ORDER BY started_at DESC LIMIT 1", params)
    if not rows:
        from workloads.catalog import WORKLOADS

        what = " ".join(v for v in (size, mode, execution) if v)
        hint = f"xprof run -w {workload} -f {framework}"
        for flag, value in (("--suite", size), ("--mode", mode), ("--exec", execution)):
            if value:
                hint += f" {flag} {value}"
        if workload not in WORKLOADS:  # not one xprof profiles: only imports can be of it
            hint = f"xprof import TRACE --workload {workload}" + (f" --mode {mode}" if mode else "")
        raise AnalysisError(
            f"no ok {what + ' ' if what else ''}run of {workload!r} in {framework} (run `{hint}`)"
        )
    return dict(rows[0])
