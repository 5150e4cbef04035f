"""What an exported review shows, as plain data: per-run breakdowns, step-time
distributions, memory over time, and the diff of the first two runs when they are of
one workload."""

from __future__ import annotations

import sqlite3

from .diff import compare
from .samples import AnalysisError, run_figures

MEMORY_POINTS = 400


def _memory_timeline(conn, run_id: str) -> list[tuple[float, int]]:
    """Allocated bytes over the profiled steps of the first repeat (ms from its first
    step), thinned to a few hundred points."""
    start, end = conn.execute(
        "SELECT MIN(start_ns), MAX(start_ns + wall_ns) FROM steps WHERE run_id = ? AND repeat = 0"
        " AND profiled AND start_ns IS NOT NULL", (run_id,)).fetchone()
    if start is None:
        return []
    rows = conn.execute(
        "SELECT ts_ns, total_allocated FROM memory_events WHERE run_id = ? AND repeat = 0"
        " AND total_allocated IS NOT NULL AND ts_ns BETWEEN ? AND ? ORDER BY ts_ns",
        (run_id, start, end)).fetchall()
    if not rows:
        return []
    stride = max(len(rows) // MEMORY_POINTS, 1)
    return [((ts - start) / 1e6, total) for ts, total in rows[::stride]]


def review_summary(conn: sqlite3.Connection, runs: list[dict]) -> dict:
    summary = {"runs": [], "diff": None}
    for run in runs:
        figures = run_figures(conn, run)
        # an imported trace has no unprofiled steps: its profiled ones stand in, as in the diff
        steps = [row[0] / 1e6 for row in conn.execute(
            "SELECT wall_ns FROM steps WHERE run_id = ? AND profiled = ? ORDER BY repeat, step",
            (run["id"], figures.steps_profiled))]
        summary["runs"].append({
            "id": run["id"], "framework": run["framework"], "execution": run["execution"],
            "workload": run["workload"], "mode": run["mode"], "size": run["size"],
            "device": run["device"], "status": run["status"], "repeats": len(figures.repeats),
            "step_ms": steps, "steps_profiled": figures.steps_profiled,
            "categories": {k: sum(v) / len(v) for k, v in figures.per_repeat.items() if v},
            "peak_bytes": figures.peak_bytes,
            "memory": _memory_timeline(conn, run["id"]),
        })
    if len(runs) >= 2:
        try:
            summary["diff"] = compare(conn, runs[0], runs[1])
        except AnalysisError as error:
            summary["diff_unavailable"] = str(error)
    return summary
