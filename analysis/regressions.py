"""The latest run of each configuration against the runs before it.

A configuration is (workload, framework, mode, execution, size, device). The latest
ok run's per-repeat figures are compared, per category and for the step time, with
the pooled per-repeat figures of the N ok runs before it, under the rules of
`analysis.stats`; intervals are Bonferroni-adjusted over every comparison of the
check, so a nightly job's false-alarm rate is 5% per night, not per row. Only
slowdowns are regressions. When the environment changed between the baseline and
the latest run, that change is reported beside the regression as its first suspect.
"""

from __future__ import annotations

import sqlite3

from .diff import environment_differences
from .samples import AnalysisError, RunFigures, query_rows, run_figures
from .stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    adjusted_confidence,
    is_significant,
    welch_log_ratio,
)

CONFIG_COLUMNS = ("workload", "framework", "mode", "execution", "size", "device")
STEP_KEY = "step"


def _configurations(conn, workload):
    sql = f"SELECT DISTINCT {', '.join(CONFIG_COLUMNS)} FROM runs WHERE status = 'ok'"
    params = []
    if workload:
        sql += " AND workload = ?"
        params.append(workload)
    return conn.execute(sql + " ORDER BY workload, framework, mode", params).fetchall()


def _history(conn, config, baseline: int) -> list[dict]:
    where = " AND ".join(f"{c} IS ?" for c in CONFIG_COLUMNS)
    rows = query_rows(
        conn, f"SELECT * FROM runs WHERE status = 'ok' AND {where} ORDER BY started_at DESC LIMIT ?",
        (*config, baseline + 1),
    )
    return rows[::-1]


def _series(figures: list[RunFigures], key: str) -> list[float]:
    if key == STEP_KEY:
        return [v for f in figures for v in f.step_ms]
    return [v for f in figures for v in f.per_repeat.get(key, [0.0] * len(f.repeats))]


def find_regressions(conn: sqlite3.Connection, workload: str | None = None, baseline: int = 5,
                     min_effect=DEFAULT_MIN_EFFECT, confidence=DEFAULT_CONFIDENCE) -> dict:
    comparisons = []  # (history, key, latest figures, baseline figures)
    checked = 0
    for config in _configurations(conn, workload):
        history = _history(conn, config, baseline)
        if len(history) < 2:
            continue
        checked += 1
        figures = [run_figures(conn, run) for run in history]
        latest, before = figures[-1], figures[:-1]
        keys = {STEP_KEY} | set(latest.per_repeat)
        for f in before:
            keys |= set(f.per_repeat)
        for key in sorted(keys):
            comparisons.append((history, key, latest, before))
    if workload and not checked and not _configurations(conn, workload):
        raise AnalysisError(f"no ok runs of {workload} (run `xprof run -w {workload}` first)")
    level = adjusted_confidence(confidence, len(comparisons))
    found = []
    for history, key, latest, before in comparisons:
        base_values, latest_values = _series(before, key), _series([latest], key)
        interval = welch_log_ratio(base_values, latest_values, level)
        base_ms = sum(base_values) / len(base_values) if base_values else 0.0
        latest_ms = sum(latest_values) / len(latest_values) if latest_values else 0.0
        delta = latest_ms - base_ms
        if delta <= 0 or not is_significant(interval, delta, min_effect):
            continue
        run = history[-1]
        found.append({
            "workload": run["workload"], "framework": run["framework"], "mode": run["mode"],
            "execution": run["execution"], "size": run["size"], "device": run["device"],
            "key": key, "baseline_ms": base_ms, "latest_ms": latest_ms,
            "ratio": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "latest_run": run["id"], "baseline_runs": [r["id"] for r in history[:-1]],
            "environment_changed": sorted({d for before in history[:-1]
                                           for d in environment_differences(before, run)}),
        })
    found.sort(key=lambda r: -(r["latest_ms"] - r["baseline_ms"]))
    return {
        "regressions": found,
        "configurations_checked": checked,
        "comparisons": len(comparisons),
        "baseline": baseline,
        "min_effect": min_effect,
        "confidence": confidence,
    }
