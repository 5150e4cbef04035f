"""The verdict per workload and mode: which framework is faster per step, by how much,
and the categories behind the gap."""

from __future__ import annotations

from analysis.diff import rank_differences, stability_notes, step_time_difference
from analysis.figures import run_figures
from analysis.runs import AnalysisError, latest_run
from analysis.stats import DEFAULT_MIN_EFFECT, summarize
from profiler.store import Store
from workloads import DEFAULT_EXECUTION

TOP_CATEGORIES = 3
NO_DIFFERENCE = "no significant difference in step time"


def _latest(store, workload, framework, mode, size, execution, dtype, device, batch_size=None):
    try:
        return latest_run(store, workload, framework, mode, execution, size, dtype, device, batch_size)
    except AnalysisError:
        return None


def _execution_effects(store, workload, framework, mode, size, dtype, device, batch_size, usual_figures,
                       min_effect) -> dict:
    effects = {}
    for execution in ("eager", "graph", "compiled"):
        if execution == DEFAULT_EXECUTION[framework]:
            continue
        run = _latest(store, workload, framework, mode, size, execution, dtype, device, batch_size)
        if run is None:
            continue
        row = step_time_difference(usual_figures, run_figures(store, run), min_effect)
        effects[execution] = {"run": run["id"], "step_ms": row.b_ms, "ratio": row.ratio,
                              "ci_low": row.ci_low, "ci_high": row.ci_high,
                              "significant": row.significant}
    return effects


def faster_side(a, b, ratio: float):
    """Of A and B, with B/A = `ratio` (significant): the faster, the slower, and the
    words for by how much, '2.02x faster per step'."""
    if ratio > 1:
        return a, b, f"{ratio:.2f}x faster per step"
    return b, a, f"{1 / ratio:.2f}x faster per step"


def verdict(store: Store, workload: str, mode: str, size: str, min_effect=DEFAULT_MIN_EFFECT,
            dtype: str | None = None, device: str | None = None, batch_size: int | None = None) -> dict:
    """The verdict on one workload, mode and size, at one precision on one device (None:
    any) and one batch size (None: the size's own): runs at different ones are never
    compared."""
    runs = {fw: _latest(store, workload, fw, mode, size, ex, dtype, device, batch_size)
            for fw, ex in DEFAULT_EXECUTION.items()}
    entry = {"workload": workload, "mode": mode, "size": size, "dtype": dtype, "device": device,
             "batch_size": batch_size, "frameworks": {}}
    figures = {}
    for framework, run in runs.items():
        if run is None:
            continue
        figures[framework] = run_figures(store, run)
        f = figures[framework]
        entry["frameworks"][framework] = {
            "run": run["id"], "execution": run["execution"], "repeats": len(f.repeats),
            "step_ms": summarize(f.step_ms) or None,
            "peak_bytes": f.peak_bytes,
            "execution_effects": _execution_effects(store, workload, framework, mode, size, dtype, device,
                                                    batch_size, f, min_effect),
        }
    if len(figures) < 2:
        missing = [fw for fw in DEFAULT_EXECUTION if fw not in figures]
        entry["verdict"] = f"no ok {DEFAULT_EXECUTION[missing[0]]} run of {missing[0]} to compare with"
        return entry
    a, b = figures["torch"], figures["tensorflow"]
    entry["notes"] = stability_notes("torch", a) + stability_notes("tensorflow", b)
    step = step_time_difference(a, b, min_effect)
    entry.update(ratio=step.ratio, ci_low=step.ci_low, ci_high=step.ci_high,
                 significant=step.significant)
    entry["faster"] = None
    entry["verdict"] = NO_DIFFERENCE
    if step.significant:
        faster, _, speedup = faster_side("torch", "tensorflow", step.ratio)
        entry["faster"] = faster
        entry["verdict"] = f"{faster} is {speedup}"
    gap_sign = 1 if step.delta_ms >= 0 else -1
    rows = [r for r in rank_differences(a, b, min_effect) if r.delta_ms * gap_sign > 0]
    entry["top_categories"] = [
        {"category": r.key, "torch_ms": r.a_ms, "tensorflow_ms": r.b_ms,
         "delta_ms": r.delta_ms, "significant": r.significant}
        for r in rows[:TOP_CATEGORIES]
    ]
    entry["layer_gap"] = largest_layer_gap(store, runs, gap_sign)
    return entry


def largest_layer_gap(store: Store, runs: dict, gap_sign: int) -> dict | None:
    """The model layer whose time differs most in the direction of the step's gap, with
    each framework's time, FLOP/s and efficiency there; None where no layer differs in
    that direction, the runs' raw events are pruned or the workload has no catalog layers."""
    from analysis.attribution import attribute
    from analysis.peaks import run_peak
    from analysis.roofline import rates
    from profiler.store import EventsPruned

    sides = {}
    try:
        for framework, run in runs.items():
            sides[framework] = (attribute(store, run, "layer"), run_peak(store, run))
    except EventsPruned:
        return None
    catalog = sides["torch"][0].layers
    if not catalog:
        return None
    figures = {}
    for layer in catalog:
        figures[layer] = {}
        for framework, (attribution, peak) in sides.items():
            time_ms = summarize(attribution.per_repeat_ms(layer))
            flops = attribution.per_step(layer, "flops") or None
            achieved = rates(time_ms, flops, attribution.per_step(layer, "bytes") or None, peak)
            figures[layer][framework] = {"time_ms": time_ms, "flops_per_s": achieved["flops_per_s"],
                                         "efficiency": achieved["efficiency"]}
    layer = max(catalog, key=lambda name: gap_sign * (figures[name]["tensorflow"]["time_ms"]
                                                      - figures[name]["torch"]["time_ms"]))
    delta = figures[layer]["tensorflow"]["time_ms"] - figures[layer]["torch"]["time_ms"]
    if delta * gap_sign <= 0:
        return None  # every layer is as fast or faster on the slower side: the gap is outside them
    return {"layer": layer, "delta_ms": delta, **figures[layer]}


def build_report(store: Store, workloads=None, min_effect=DEFAULT_MIN_EFFECT) -> dict:
    """A verdict per workload, mode, size, precision and device; on a store of several
    hosts, per host too (each host's device beside the others', "" for imported runs of no host)."""
    hosts = store.hosts()
    scopes = [store.only_host] if store.only_host is not None or len(hosts) < 2 else [*hosts, ""]
    entries = []
    for scope in scopes:
        store.only_host = scope
        try:
            entries += [{**verdict(store, w, m, s, min_effect, dtype, device, batch_size),
                         **({"host": scope or None} if scope is not None else {})}
                        for w, m, s, dtype, device, batch_size in store.compared_groups(workloads)]
        finally:
            store.only_host = scopes[0] if len(scopes) == 1 else None
    if workloads and not entries:
        raise AnalysisError(f"no ok runs of {', '.join(workloads)} (run `xprof run` first)")
    return {"workloads": entries, "ratio": "tensorflow step time / torch step time"}
