"""Run A against run B: per-step time by category, op or kernel, ranked by |delta|."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from analysis.figures import UNSTABLE_SPREAD, RunFigures, run_figures
from analysis.runs import AnalysisError
from analysis.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    adjusted_confidence,
    is_significant,
    summarize,
    summarize_pair,
    welch_log_ratio,
)
from profiler.store import Store

# Environment facts that make two runs comparable. Framework and its version differ by
# design in a cross-framework diff and are compared only between runs of one framework.
HOST_KEYS = ("hostname", "cpu_model", "logical_cores", "device_name", "driver_version",
             "cuda_driver_version", "gpus")
FRAMEWORK_KEYS = ("framework_version", "threads", "cuda", "cudnn", "cuda_build", "cpu_allocator")


@dataclass
class DiffRow:
    key: str
    a_ms: float
    b_ms: float
    delta_ms: float
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    significant: bool


def rank_differences(a: RunFigures, b: RunFigures, min_effect=DEFAULT_MIN_EFFECT,
                     confidence=DEFAULT_CONFIDENCE) -> list[DiffRow]:
    keys = sorted(set(a.per_repeat) | set(b.per_repeat))
    level = adjusted_confidence(confidence, len(keys))
    rows = []
    for key in keys:
        a_values = a.per_repeat.get(key, [0.0] * len(a.repeats))
        b_values = b.per_repeat.get(key, [0.0] * len(b.repeats))
        interval = welch_log_ratio(a_values, b_values, level)
        a_ms, b_ms = summarize_pair(a_values, b_values)
        delta = b_ms - a_ms
        rows.append(DiffRow(key, a_ms, b_ms, delta, interval.estimate, interval.low,
                            interval.high, is_significant(interval, delta, min_effect)))
    rows.sort(key=lambda r: -abs(r.delta_ms))
    return rows


def step_time_difference(a: RunFigures, b: RunFigures, min_effect=DEFAULT_MIN_EFFECT,
                         confidence=DEFAULT_CONFIDENCE) -> DiffRow:
    """Unprofiled step time, B against A (per-repeat medians); profiled step time on
    both sides where one has no other (an imported trace), so like meets like."""
    a_steps, b_steps = ((a.profiled_step_ms, b.profiled_step_ms)
                        if a.steps_profiled or b.steps_profiled else (a.step_ms, b.step_ms))
    interval = welch_log_ratio(a_steps, b_steps, confidence)
    a_ms, b_ms = summarize_pair(a_steps, b_steps)
    return DiffRow("step", a_ms, b_ms, b_ms - a_ms, interval.estimate, interval.low,
                   interval.high, is_significant(interval, b_ms - a_ms, min_effect))


def environment_differences(run_a: dict, run_b: dict) -> list[str]:
    """What differs between the environments of two runs, in words."""
    env_a = json.loads(run_a.get("env") or "{}")
    env_b = json.loads(run_b.get("env") or "{}")
    keys = HOST_KEYS + (FRAMEWORK_KEYS if run_a["framework"] == run_b["framework"] else ())
    # a fact one side never recorded (an imported trace's host) is not a difference; one
    # recorded as null (no CUDA) is
    return [f"{k}: {env_a[k]!r} vs {env_b[k]!r}" for k in keys
            if k in env_a and k in env_b and env_a[k] != env_b[k]]


def side(run: dict, figures: RunFigures) -> dict:
    return {
        "id": run["id"], "framework": run["framework"], "workload": run["workload"],
        "mode": run["mode"], "execution": run["execution"], "size": run["size"],
        "dtype": run["dtype"], "device": run["device"], "batch_size": run["batch_size"], "host": run.get("host"),
        "repeats": len(figures.repeats), "basis": figures.basis,
        "step_ms": summarize(figures.step_ms) or None,
        "profiled_step_ms": summarize(figures.profiled_step_ms) or None,
        "peak_bytes": figures.peak_bytes, "allocations_per_step": figures.allocations_per_step,
        "excluded_repeats": {str(r): factor for r, factor in figures.excluded.items()},
        "spread": figures.spread,
    }


def stability_notes(label: str, figures: RunFigures) -> list[str]:
    """What a reader must know about how steady a run's repeats were."""
    notes = []
    run_id = figures.run["id"]
    for repeat, factor in sorted(figures.excluded.items()):
        notes.append(f"{label} ({run_id[:8]}): repeat {repeat} left out, its median step was "
                     f"{factor:.1f}x the other repeats' (the machine was busy?)")
    if figures.spread and figures.spread > UNSTABLE_SPREAD:
        notes.append(f"{label} ({run_id[:8]}) is unstable: its repeats' median steps range "
                     f"{figures.spread:.1f}x; intervals are wide, rerun on a quieter machine "
                     "or with more --repeats")
    return notes


def compare(store: Store, run_a: dict, run_b: dict, by: str = "category",
            min_effect=DEFAULT_MIN_EFFECT, confidence=DEFAULT_CONFIDENCE) -> dict:
    for run in (run_a, run_b):
        if run["status"] != "ok":
            raise AnalysisError(f"run {run['id']} is {run['status']}, not ok: nothing to compare")
    if (run_a["workload"], run_a["mode"]) != (run_b["workload"], run_b["mode"]):
        raise AnalysisError(
            f"runs {run_a['id']} and {run_b['id']} are of different workloads "
            f"({run_a['workload']}/{run_a['mode']} vs {run_b['workload']}/{run_b['mode']})"
        )
    if run_a["id"] == run_b["id"]:
        raise AnalysisError(f"run {run_a['id']} compared with itself: give two different runs")
    if by == "layer":
        from analysis.attribution import layer_figures

        a, b = layer_figures(store, run_a), layer_figures(store, run_b)
    else:
        a, b = run_figures(store, run_a, by), run_figures(store, run_b, by)
    notes = stability_notes("A", a) + stability_notes("B", b)
    if len(a.repeats) < 2 or len(b.repeats) < 2:
        notes.append("fewer than 2 repeats on a side: no interval, nothing can be significant "
                     "(profile with --repeats 3 or more; an imported trace is one repeat, so "
                     "compare imports by their ratios only)")
    if a.basis != b.basis:
        notes.append(f"A is timed on {a.basis} time, B on {b.basis} time")
    for column, what in (("size", "sizes"), ("dtype", "precisions"), ("device", "devices"),
                         ("batch_size", "batch sizes")):
        if run_a[column] != run_b[column]:
            unset = "the size's own" if column == "batch_size" else "unknown"
            notes.append(f"{what} differ: {run_a[column] or unset} vs {run_b[column] or unset}")
    result = {
        "a": side(run_a, a),
        "b": side(run_b, b),
        "by": by,
        "step": _json_row(step_time_difference(a, b, min_effect, confidence))
        | {"steps": "profiled" if a.steps_profiled or b.steps_profiled else "unprofiled"},
        "rows": [_json_row(r) for r in rank_differences(a, b, min_effect, confidence)],
        "min_effect": min_effect,
        "confidence": confidence,
        "method": ("rows are geometric means over repeats of per-repeat step medians (arithmetic "
                   "when a repeat of either side has none of it); B/A "
                   "interval: Welch t on their logs, Bonferroni-adjusted over rows"),
        "environment_differences": environment_differences(run_a, run_b),
        "notes": notes,
    }
    if by == "layer":
        from analysis.roofline import layer_comparison

        layer_comparison(store, run_a, run_b, result)
    return result


def _json_row(row: DiffRow) -> dict:
    """JSON has no infinity: an unbounded interval end is null."""
    out = asdict(row)
    for k in ("ratio", "ci_low", "ci_high"):
        if out[k] is not None and not math.isfinite(out[k]):
            out[k] = None
    return out
