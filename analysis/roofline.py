"""The roofline of a run (time, FLOPs, bytes, achieved rates and efficiency against the
device's peak, per op, layer or category) and the layer-by-layer comparison of two runs."""

from __future__ import annotations

import math
from statistics import fmean, stdev

from analysis.attribution import FRAMEWORK, Attribution, attribute
from analysis.figures import BETWEEN_OPS
from analysis.idle import device_idle
from analysis.peaks import Peak, run_peak
from analysis.stats import DEFAULT_CONFIDENCE, _t_quantile, summarize
from profiler.store import Store
from workloads.layers import OPTIMIZER

# Why a row has no FLOPs, by key, for the rows that are never modelled.
NOT_MODELLED = {
    BETWEEN_OPS: "time no op accounts for: dispatch, Python, the profiler",
    FRAMEWORK: "outside every layer: autograd bookkeeping, variable reads, casts",
}
BYS = ("op", "layer", "category")


def time_interval(values: list[float], confidence: float = DEFAULT_CONFIDENCE) -> tuple[float | None, float | None]:
    """Student's t interval of the mean of per-repeat times; None without 2 repeats."""
    if len(values) < 2:
        return None, None
    half = _t_quantile(1 - (1 - confidence) / 2, len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return max(fmean(values) - half, 0.0), fmean(values) + half


def rates(time_ms: float, flops: float | None, nbytes: float | None, peak: Peak | None) -> dict:
    """Achieved FLOP/s and bytes/s, arithmetic intensity, the bound (against the peak's
    ridge point) and efficiency: the achieved rate over the roof at that intensity."""
    seconds = time_ms / 1e3
    flops_per_s = flops / seconds if flops and seconds > 0 else None
    bytes_per_s = nbytes / seconds if nbytes and seconds > 0 else None
    intensity = flops / nbytes if flops and nbytes else None
    bound = efficiency = None
    if peak and peak.flops_per_s and flops_per_s:
        roof = peak.flops_per_s
        if intensity is not None and peak.bytes_per_s:
            ridge = peak.flops_per_s / peak.bytes_per_s
            bound = "compute" if intensity >= ridge else "memory"
            roof = min(peak.flops_per_s, intensity * peak.bytes_per_s)
        efficiency = flops_per_s / roof
    return {"flops_per_s": flops_per_s, "bytes_per_s": bytes_per_s, "intensity": intensity,
            "bound": bound, "efficiency": efficiency}


def _rows(attribution: Attribution, peak: Peak | None) -> tuple[list[dict], list[dict], list[str]]:
    rows, unmodelled, notes = [], [], []
    tensorflow = attribution.run["framework"] == "tensorflow"
    for key in attribution.keys():
        per_repeat = attribution.per_repeat_ms(key)
        time_ms = summarize(per_repeat)
        modelled, missing = attribution.coverage(key)
        flops, nbytes = attribution.per_step(key, "flops"), attribution.per_step(key, "bytes")
        if not modelled or not flops:
            if time_ms > 0:
                why = NOT_MODELLED.get(key) or (
                    "element-wise: the catalog counts no FLOPs for it" if attribution.by == "layer" else
                    "its trace records no shapes (profiled without record_shapes)" if attribution.shapeless(key)
                    else "no FLOP formula for this op")
                unmodelled.append({"key": key, "time_ms": time_ms, "why": why})
            continue
        low, high = time_interval(per_repeat)
        row = {"key": key, "time_ms": time_ms, "time_ms_low": low, "time_ms_high": high,
               "ops": attribution.per_step(key, "ops"), "kernels": attribution.per_step(key, "kernels"),
               "flops": flops, "bytes": nbytes or None}
        row.update(rates(time_ms, flops, nbytes or None, peak))
        if missing:
            notes.append(f"{key}: {missing} of {modelled + missing} calls have no cost model; "
                         "its FLOPs count the others only")
        rows.append(row)
    if tensorflow and attribution.by != "layer":
        notes.append("TensorFlow's trace records no shapes: its GEMM and convolution ops share their "
                     "layer's FLOPs from the workload catalog, and have no bytes")
    if peak and peak.flops_per_s and peak.spread is not None:
        for row in rows:
            if row["efficiency"] and row["efficiency"] > 1 + peak.spread:
                notes.append(f"{row['key']}: {row['efficiency']:.0%} of the peak, beyond the calibration's "
                             f"spread ({peak.spread:.0%}): the peak is stale or the row's FLOPs overcounted")
    rows.sort(key=lambda row: -row["time_ms"])
    unmodelled.sort(key=lambda row: -row["time_ms"])
    return rows, unmodelled, notes


def roofline(store: Store, run: dict, by: str = "op") -> dict:
    """The roofline table of one run (see the module docstring)."""
    if run["status"] != "ok":
        from analysis.runs import AnalysisError

        raise AnalysisError(f"run {run['id']} is {run['status']}, not ok: no roofline")
    attribution = attribute(store, run, by)
    peak = run_peak(store, run)
    rows, unmodelled, notes = _rows(attribution, peak)
    if peak is None:
        notes.append("no peak for this device: run `xprof calibrate` on its host (a GPU's datasheet "
                      "is used where xprof knows the model); rows show achieved rates only")
    total = sum(row["time_ms"] for row in rows) + sum(row["time_ms"] for row in unmodelled)
    return {
        "run": {key: run[key] for key in ("id", "framework", "workload", "mode", "execution", "size", "dtype",
                                          "device", "batch_size")},
        "by": by, "basis": attribution.basis, "repeats": len(attribution.repeats()),
        "device": {"name": peak.name if peak else run.get("device"),
                   "peak_flops_per_s": peak.flops_per_s if peak else None,
                   "peak_bytes_per_s": peak.bytes_per_s if peak else None,
                   "source": peak.source if peak else None,
                   "spread": peak.spread if peak else None},
        "rows": rows, "unmodelled": unmodelled, "step_ms": total, "device_idle": device_idle(store, run),
        "notes": attribution.notes + notes,
    }


def layer_comparison(store: Store, run_a: dict, run_b: dict, result: dict) -> dict:
    """Add to a `diff --by layer` result each side's layer figures: time with its interval
    over repeats, op and kernel counts per step, FLOP/s and efficiency against its peak;
    rows in the catalog's order, then optimizer, framework and between-ops time."""
    sides = []
    for run in (run_a, run_b):
        attribution = attribute(store, run, "layer")
        peak = run_peak(store, run)
        sides.append((attribution, peak))
        result["notes"] += [f"{run['framework']}: {note}" for note in attribution.notes]
    a, b = sides[0][0], sides[1][0]
    order = list(dict.fromkeys(a.layers + [OPTIMIZER] + a.keys() + b.keys()))
    by_key = {row["key"]: row for row in result["rows"]}
    rows = []
    for key in order:
        if key not in by_key:
            continue
        row = dict(by_key[key])
        for label, (attribution, peak) in zip(("a", "b"), sides):
            per_repeat = attribution.per_repeat_ms(key)
            low, high = time_interval(per_repeat)
            time_ms = summarize(per_repeat)
            flops = attribution.per_step(key, "flops") or None
            figures = rates(time_ms, flops, attribution.per_step(key, "bytes") or None, peak)
            row[label] = {"time_ms_low": low, "time_ms_high": high, "ops": attribution.per_step(key, "ops"),
                          "kernels": attribution.per_step(key, "kernels"), "flops": flops,
                          "flops_per_s": figures["flops_per_s"], "efficiency": figures["efficiency"]}
        row["in_catalog"] = key in a.layers
        rows.append(row)
    result["rows"] = rows
    result["peaks"] = {label: (peak.source if peak else None) for label, (_, peak) in zip(("a", "b"), sides)}
    result["device_idle"] = {"a": device_idle(store, run_a), "b": device_idle(store, run_b)}
    return result
