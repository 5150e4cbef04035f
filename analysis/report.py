"""The verdict per workload and mode: which framework is faster, by how much, and why.

For each (workload, mode, size) with ok runs, the latest run of each framework in its
usual execution style (torch eager, TensorFlow graph) is compared: unprofiled step
time with its interval, peak memory, how much the other execution styles change each
framework's step time, and the three categories whose per-step difference goes the
way of the gap and is largest.
"""

from __future__ import annotations

import sqlite3

from .diff import rank_differences, stability_notes, step_time_difference
from .samples import AnalysisError, latest_run, run_figures
from .stats import summarize
from .stats import DEFAULT_MIN_EFFECT

# Each framework's usual execution style, the one the verdict is about.
USUAL_EXECUTION = {"torch": "eager", "tensorflow": "graph"}
TOP_CATEGORIES = 3


def _groups(conn, workloads):
    sql = "SELECT DISTINCT workload, mode, size FROM runs WHERE status = 'ok' AND workload IS NOT NULL"
    params = list(workloads or [])
    if params:
        sql += f" AND workload IN ({', '.join('?' * len(params))})"
    return conn.execute(sql + " ORDER BY workload, mode, size", params).fetchall()


def _latest(conn, workload, framework, mode, size, execution):
    try:
        return latest_run(conn, workload, framework, mode, execution, size)
    except AnalysisError:
        return None


def _execution_effects(conn, workload, framework, mode, size, usual_figures) -> dict:
    effects = {}
    for execution in ("eager", "graph", "compiled"):
        if execution == USUAL_EXECUTION[framework]:
            continue
        run = _latest(conn, workload, framework, mode, size, execution)
        if run is None:
            continue
        row = step_time_difference(usual_figures, run_figures(conn, run))
        effects[execution] = {"run": run["id"], "step_ms": row.b_ms, "ratio": row.ratio,
                              "ci_low": row.ci_low, "ci_high": row.ci_high,
                              "significant": row.significant}
    return effects


def verdict(conn: sqlite3.Connection, workload: str, mode: str, size: str,
            min_effect=DEFAULT_MIN_EFFECT) -> dict:
    runs = {fw: _latest(conn, workload, fw, mode, size, ex) for fw, ex in USUAL_EXECUTION.items()}
    entry = {"workload": workload, "mode": mode, "size": size, "frameworks": {}}
    figures = {}
    for framework, run in runs.items():
        if run is None:
            continue
        figures[framework] = run_figures(conn, run)
        f = figures[framework]
        entry["frameworks"][framework] = {
            "run": run["id"], "execution": run["execution"], "repeats": len(f.repeats),
            "step_ms": summarize(f.step_ms) or None,
            "peak_bytes": f.peak_bytes,
            "execution_effects": _execution_effects(conn, workload, framework, mode, size, f),
        }
    if len(figures) < 2:
        missing = [fw for fw in USUAL_EXECUTION if fw not in figures]
        entry["verdict"] = f"no ok {USUAL_EXECUTION[missing[0]]} run of {missing[0]} to compare with"
        return entry
    a, b = figures["torch"], figures["tensorflow"]
    entry["notes"] = stability_notes("torch", a) + stability_notes("tensorflow", b)
    step = step_time_difference(a, b, min_effect)
    entry.update(ratio=step.ratio, ci_low=step.ci_low, ci_high=step.ci_high,
                 significant=step.significant)
    if step.significant:
        faster = "torch" if step.ratio > 1 else "tensorflow"
        factor = step.ratio if step.ratio > 1 else 1 / step.ratio
        entry["faster"] = faster
        entry["verdict"] = f"{faster} is {factor:.2f}x faster per step"
    else:
        entry["faster"] = None
        entry["verdict"] = "no significant difference in step time"
    gap_sign = 1 if step.delta_ms >= 0 else -1
    rows = [r for r in rank_differences(a, b, min_effect) if r.delta_ms * gap_sign > 0]
    entry["top_categories"] = [
        {"category": r.key, "torch_ms": r.a_ms, "tensorflow_ms": r.b_ms,
         "delta_ms": r.delta_ms, "significant": r.significant}
        for r in rows[:TOP_CATEGORIES]
    ]
    return entry


def build_report(conn: sqlite3.Connection, workloads=None, min_effect=DEFAULT_MIN_EFFECT) -> dict:
    entries = [verdict(conn, w, m, s, min_effect) for w, m, s in _groups(conn, workloads)]
    if workloads and not entries:
        raise AnalysisError(f"no ok runs of {', '.join(workloads)} (run `xprof run` first)")
    return {"workloads": entries, "ratio": "tensorflow step time / torch step time"}
