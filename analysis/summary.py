"""What an exported review shows, as plain data: per-run breakdowns, step-time
distributions, memory over time, each configuration's history, the diff of the first two
runs when they are of one workload, and the articles' claims on their workloads."""

from __future__ import annotations

import json

from analysis.claims import Machine, check_claims
from analysis.diff import compare
from analysis.figures import run_figures
from analysis.history import histories_of
from analysis.runs import AnalysisError
from profiler.store import Store
from workloads import WORKLOADS

MEMORY_POINTS = 400


def _memory_timeline(store: Store, run_id: str) -> list[tuple[float, int]]:
    """Allocated bytes over the profiled steps of the first repeat (ms from its first
    step), thinned to a few hundred points."""
    start, end = store.profiled_span(run_id, 0)
    if start is None:
        return []
    rows = store.allocated_over_time(run_id, 0, start, end)
    if not rows:
        return []
    stride = max(len(rows) // MEMORY_POINTS, 1)
    return [((ts - start) / 1e6, total) for ts, total in rows[::stride]]


def review_summary(store: Store, runs: list[dict]) -> dict:
    summary = {"runs": [], "diff": None}
    for run in runs:
        figures = run_figures(store, run)
        # an imported trace has no unprofiled steps: its profiled ones stand in, as in the diff
        steps = [wall_ns / 1e6 for wall_ns in store.step_walls_ns(run["id"], figures.steps_profiled)]
        summary["runs"].append({
            "id": run["id"], "framework": run["framework"], "execution": run["execution"],
            "workload": run["workload"], "mode": run["mode"], "size": run["size"],
            "dtype": run["dtype"], "device": run["device"], "status": run["status"], "repeats": len(figures.repeats),
            "step_ms": steps, "steps_profiled": figures.steps_profiled,
            "categories": {k: sum(v) / len(v) for k, v in figures.per_repeat.items() if v},
            "peak_bytes": figures.peak_bytes,
            "memory": _memory_timeline(store, run["id"]),
            "events_pruned_at": run.get("events_pruned_at"),
        })
    summary["history"] = histories_of(store, runs)
    if len(runs) >= 2:
        try:
            summary["diff"] = compare(store, runs[0], runs[1])
        except AnalysisError as error:
            summary["diff_unavailable"] = str(error)
    summary["claims"] = claims_of(store, runs)
    summary.update(layers_of(store, runs))
    return summary


def layers_of(store: Store, runs: list[dict]) -> dict:
    """Each run's roofline by layer (by op for a trace of no known workload), and the
    first two runs' layer comparison when they are of one workload."""
    from analysis.roofline import roofline
    from profiler.store import EventsPruned

    found: dict = {"rooflines": [], "layers": None}
    for run in runs:
        try:
            found["rooflines"].append(roofline(store, run, "layer" if run["workload"] in WORKLOADS else "op"))
        except (EventsPruned, AnalysisError):
            continue
    if len(runs) >= 2 and runs[0]["workload"] in WORKLOADS:
        try:
            found["layers"] = compare(store, runs[0], runs[1], by="layer")
        except (EventsPruned, AnalysisError):
            pass
    return found


def claims_of(store: Store, runs: list[dict]) -> dict | None:
    """The claims on the workloads of profiled `runs`, at the first one's size, on its
    device, as the machine the runs ran on was (None for imports only)."""
    profiled = [run for run in runs if run["source"] == "profile" and run["workload"] in WORKLOADS]
    if not profiled:
        return None
    first = profiled[0]
    env = json.loads(first.get("env") or "{}")
    machine = Machine(first["device"], len(env.get("framework_gpus") or env.get("gpus") or []),
                      env.get("reason") if env.get("nvml") == "unavailable" else None)
    return check_claims(store, first["size"], machine, list(dict.fromkeys(r["workload"] for r in profiled)))
