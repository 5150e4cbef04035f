"""The latest ok run of each configuration against the runs before it: only slowdowns,
Bonferroni-adjusted over every comparison; see docs/statistics.md."""

from __future__ import annotations

from analysis.diff import environment_differences
from analysis.figures import RunFigures, run_figures
from analysis.runs import AnalysisError
from analysis.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    adjusted_confidence,
    is_significant,
    welch_log_ratio,
)
from profiler.store import Store

STEP_KEY = "step"


def _series(figures: list[RunFigures], key: str) -> list[float]:
    if key == STEP_KEY:
        return [v for f in figures for v in f.step_ms]
    return [v for f in figures for v in f.per_repeat.get(key, [0.0] * len(f.repeats))]


def find_regressions(store: Store, workload: str | None = None, baseline: int = 5,
                     min_effect=DEFAULT_MIN_EFFECT, confidence=DEFAULT_CONFIDENCE) -> dict:
    comparisons = []  # (history, key, latest figures, baseline figures)
    checked = 0
    configurations = store.configurations(workload)
    for config in configurations:
        history = store.configuration_history(config, baseline + 1)
        if len(history) < 2:
            continue
        checked += 1
        figures = [run_figures(store, run) for run in history]
        latest, before = figures[-1], figures[:-1]
        keys = {STEP_KEY} | set(latest.per_repeat)
        for f in before:
            keys |= set(f.per_repeat)
        for key in sorted(keys):
            comparisons.append((history, key, latest, before))
    if workload and not configurations:
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
