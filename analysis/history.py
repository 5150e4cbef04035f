"""Each configuration's series over its history and where it changed: ruptures' PELT
proposes change points on the logs of the run figures; Welch's t-test and the minimum
effect keep only the clear ones (see docs/statistics.md)."""

from __future__ import annotations

import math
from statistics import fmean, median

from analysis.diff import environment_differences
from analysis.runs import AnalysisError
from analysis.series import STEP_KEY, Point, configuration_of, floor_ms, log_figure, points, runs_left_out
from analysis.stats import DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT, welch_log_ratio
from profiler.store import Store

# Runs on each side of a change, at least: one odd night is not a change (HUD's rule).
MIN_SEGMENT = 2
# PELT's penalty per change, in units of the series' noise variance times log(n) (a
# BIC-like penalty made generous on purpose: the t-test below has the last word).
PENALTY = 2.0


def change_points(logs: list[float], min_effect: float = DEFAULT_MIN_EFFECT,
                  confidence: float = DEFAULT_CONFIDENCE) -> list[int]:
    """Where a series of logs changes level: the index of the first run after each change."""
    n = len(logs)
    if n < 2 * MIN_SEGMENT:
        return []
    from numpy import array
    from ruptures import KernelCPD  # PELT with a linear kernel: least squares, in C

    steps = [b - a for a, b in zip(logs, logs[1:])]
    centre = median(steps)
    # the noise of one run, from successive differences (a change moves few of them)
    noise = max(1.4826 * median(abs(d - centre) for d in steps) / math.sqrt(2), 1e-3)
    found = KernelCPD(kernel="linear", min_size=MIN_SEGMENT).fit(array(logs).reshape(-1, 1))
    cuts = [int(cut) for cut in found.predict(pen=PENALTY * noise ** 2 * math.log(n))[:-1]]
    level = 1 - (1 - confidence) / (n - 1)  # every place a change could be
    while cuts:
        bounds = [0, *cuts, n]
        tests = []
        for i, cut in enumerate(cuts):
            before, after = [math.exp(v) for v in logs[bounds[i]:cut]], [math.exp(v) for v in logs[cut:bounds[i + 2]]]
            interval = welch_log_ratio(before, after, level)
            clear = interval.low is not None and (interval.low > 1 or interval.high < 1)
            tests.append((clear and abs(interval.estimate - 1) > min_effect, abs(math.log(interval.estimate)), i))
        weakest = min(tests)
        if weakest[0]:
            break
        del cuts[weakest[2]]  # the least clear goes; its neighbours are tested again
    return cuts


def _configuration_history(store: Store, series: list[Point], key: str, min_effect: float,
                           confidence: float, as_of: float | None) -> dict:
    floor = floor_ms(series)
    values = [p.value(key) for p in series]
    logs = [log_figure(v, floor) for v in values]
    changes = []
    cuts = change_points(logs, min_effect, confidence)
    for i, cut in enumerate(cuts):
        start, end = ([0, *cuts][i], [*cuts, len(series)][i + 1])
        before, after = math.exp(fmean(logs[start:cut])), math.exp(fmean(logs[cut:end]))
        run = series[cut].run
        changes.append({"run": run["id"], "started_at": run["started_at"], "key": key, "before_ms": before,
                        "after_ms": after, "ratio": after / before,
                        "environment_changed": environment_differences(series[cut - 1].run, run)})
    return {**configuration_of(series[-1].run),
            "series": [{"run": p.run["id"], "started_at": p.run["started_at"], "key": key, "value_ms": v,
                        "spread": p.spread(key), "repeats": len(p.figures.repeats), "source": p.run["source"],
                        "label": p.run["label"]} for p, v in zip(series, values)],
            "change_points": changes,
            "left_out": runs_left_out(store, series, as_of)}


def build_history(store: Store, workload: str | None = None, key: str = STEP_KEY, by: str = "category",
                  min_effect: float = DEFAULT_MIN_EFFECT, confidence: float = DEFAULT_CONFIDENCE,
                  last: int | None = None, as_of: float | None = None) -> dict:
    """Every configuration's series of `key` (the step time, or a category, op or kernel
    as `by` says) over its ok runs, the `last` newest of them where given, with the
    places it changed."""
    configurations = store.configurations(workload, as_of)
    if workload and not configurations:
        raise AnalysisError(f"no ok runs of {workload} (run `xprof run -w {workload}` first)")
    histories = []
    for configuration in configurations:
        series = points(store, store.configuration_history(configuration, last, as_of), by)
        if key == STEP_KEY or any(key in p.figures.per_repeat for p in series):
            histories.append(_configuration_history(store, series, key, min_effect, confidence, as_of))
    if not histories:
        raise AnalysisError(f"no run has {'an' if by == 'op' else 'a'} {by} named {key!r} (see `xprof diff --by {by}` for the names)")
    return {"key": key, "by": by, "min_effect": min_effect, "confidence": confidence,
            "configurations": histories}


def nightly_check(store: Store, baseline: int, min_effect: float = DEFAULT_MIN_EFFECT) -> dict:
    """What a nightly job reports: every configuration's state (find_regressions) and the
    step-time change points among each configuration's latest baseline + 2 runs, found
    over three times that many."""
    from analysis.regressions import CONFIRM, find_regressions

    result = find_regressions(store, None, baseline, min_effect)
    window = baseline + CONFIRM
    recent = []
    if result["configurations"]:
        for h in build_history(store, min_effect=min_effect, last=3 * window)["configurations"]:
            latest = {p["run"] for p in h["series"][-window:]}
            recent += [{**configuration_of(h), **c} for c in h["change_points"] if c["run"] in latest]
    return {**result, "change_points": recent}


def histories_of(store: Store, runs: list[dict], last: int = 90,
                 min_effect: float = DEFAULT_MIN_EFFECT) -> list[dict]:
    """The step-time history (the `last` newest ok runs, with change points) of each
    configuration the given runs belong to, once each."""
    histories, seen = [], set()
    for run in runs:
        configuration = tuple(configuration_of(run).values())
        if configuration in seen:
            continue
        seen.add(configuration)
        series = points(store, store.configuration_history(configuration, last))
        if series:
            histories.append(_configuration_history(store, series, STEP_KEY, min_effect, DEFAULT_CONFIDENCE, None))
    return histories
