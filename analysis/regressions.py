"""Each configuration's latest runs against the run-to-run spread of the runs before them:
a state per configuration (regression, suspicious, improvement, unstable, insufficient
data, ok), Bonferroni over every key of the check; see docs/statistics.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import fmean, median

from analysis.diff import environment_differences
from analysis.figures import UNSTABLE_SPREAD
from analysis.history import change_points
from analysis.runs import AnalysisError
from analysis.series import STEP_KEY, Point, configuration_of, floor_ms, keys_of, log_figure, points, runs_left_out
from analysis.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    Interval,
    adjusted_confidence,
    shift_interval,
)
from profiler.collect.settings import DEFAULT_BASELINE
from profiler.store import Store
from profiler.store.queries import CONFIGURATION

# The fewest baseline runs whose spread is read, and how many runs in a row must be past
# the threshold for a regression (one alone is suspicious, as in PyTorch HUD).
MIN_BASELINE = 3
CONFIRM = 2
# Worst first: a configuration's state is the worst of its keys'.
STATES = ("regression", "suspicious", "improvement", "unstable", "insufficient data", "ok")
METHOD = ("each run is one figure per key (the median of its kept repeats); each of the latest two runs "
          "against a prediction interval on logs from the baseline runs' spread (Student's t, n-1 df), "
          "Bonferroni over every key of every configuration checked; a regression needs both past it")


@dataclass
class KeyCheck:
    key: str
    state: str
    baseline_ms: float
    previous_ms: float
    latest_ms: float
    pair: Interval  # the latest two runs together against the baseline: the change shown
    latest: Interval
    visible: float | None  # the smallest change of one run the test can see, relative
    why: str = ""
    baseline_runs: list[str] = field(default_factory=list)  # since the baseline's last change

    def as_json(self) -> dict:
        return {"key": self.key, "state": self.state, "baseline_ms": self.baseline_ms,
                "previous_ms": self.previous_ms, "latest_ms": self.latest_ms, "ratio": self.pair.estimate,
                "ci_low": self.pair.low, "ci_high": self.pair.high, "latest_ratio": self.latest.estimate,
                "smallest_visible_change": self.visible, "why": self.why, "baseline_runs": self.baseline_runs}


@dataclass
class ConfigurationCheck:
    series: list[Point]  # oldest first: the baseline, then the previous run and the latest
    keys: list[str] = field(default_factory=list)

    @property
    def enough(self) -> bool:
        return len(self.series) >= MIN_BASELINE + CONFIRM


def change_words(change: float) -> str:
    """A relative change in words: '6%' below 100%, else a factor ('2.4x'), at most '1000x'."""
    if change < 1:
        return f"{change:.0%}"
    return f"{min(1 + change, 1000):.1f}x"


def _past(interval: Interval, ratio: float, delta: float, min_effect: float, least_ms: float) -> int:
    """+1 when a run is slower past the threshold, -1 when faster, else 0: its prediction
    interval clear of 1, its ratio past the minimum effect and its difference past
    `least_ms` (the floor: a change of 0.003 ms in a 1 ms step is no change)."""
    if interval.low is None:
        return 0
    if interval.low > 1 and ratio - 1 > min_effect and delta > least_ms:
        return 1
    if interval.high < 1 and 1 - ratio > min_effect and -delta > least_ms:
        return -1
    return 0


def check_key(check: ConfigurationCheck, key: str, level: float, min_effect: float) -> KeyCheck:
    baseline, previous, latest = check.series[:-2], check.series[-2], check.series[-1]
    floor = floor_ms(baseline)
    base_logs = [log_figure(p.value(key), floor) for p in baseline]
    logs = [log_figure(p.value(key), floor) for p in (previous, latest)]
    cuts = change_points(base_logs, min_effect)
    if cuts:  # the level the baseline moved to is what the latest runs are judged against
        baseline, base_logs = baseline[cuts[-1]:], base_logs[cuts[-1]:]
    # a last baseline run already past the threshold the way the previous run is belongs
    # to the change, not to the level it is judged against
    while len(baseline) > MIN_BASELINE:
        rest = base_logs[:-1]
        ahead = shift_interval(rest, [base_logs[-1]], level)
        before = shift_interval(rest, logs[:1], level)
        if not (ahead.low is not None and ((ahead.low > 1 and before.low > 1) or (ahead.high < 1 and before.high < 1))):
            break
        baseline, base_logs = baseline[:-1], rest
    base_ms, baseline_runs = math.exp(fmean(base_logs)), [p.run["id"] for p in baseline]
    if len(baseline) < MIN_BASELINE:
        return KeyCheck(key, "insufficient data", base_ms, previous.value(key), latest.value(key),
                        *[Interval(None, None, None, "none")] * 2, None,
                        f"{len(baseline)} runs since it changed at run {baseline_runs[0][:8]}, "
                        f"needs {MIN_BASELINE}", baseline_runs)
    values = [max(p.value(key), floor) for p in (previous, latest)]
    ratios = [v / base_ms for v in values]
    deltas = [v - base_ms for v in values]
    pair = shift_interval(base_logs, logs, level)
    single = [shift_interval(base_logs, [one], level) for one in logs]
    past = [_past(single[i], ratios[i], deltas[i], min_effect, floor) for i in (0, 1)]
    high = single[1].high
    visible = high / single[1].estimate - 1 if high is not None and math.isfinite(high) else None
    words = {1: "slower", -1: "faster"}
    if past[0] == past[1] != 0:
        state = "regression" if past[1] > 0 else "improvement"
        why = f"the latest {CONFIRM} runs are {words[past[1]]}"
    elif past[1]:
        state, why = "suspicious", f"the latest run is {words[past[1]]}, not confirmed yet"
    elif past[0]:
        state, why = "suspicious", f"the run before the latest was {words[past[0]]}, the latest is not"
    else:
        state, why = "ok", ""
    return KeyCheck(key, state, base_ms, previous.value(key), latest.value(key), pair, single[1], visible, why,
                    baseline_runs)


def _configuration_result(store: Store, check: ConfigurationCheck, key_checks: list[KeyCheck],
                          min_effect: float, as_of: float | None) -> dict:
    series, latest = check.series, check.series[-1]
    entry = {**configuration_of(latest.run), "latest_run": latest.run["id"], "runs": len(series),
             "needed": MIN_BASELINE + CONFIRM, "keys": [k.as_json() for k in key_checks],
             "left_out": runs_left_out(store, series, as_of),
             "environment_changed": sorted({d for p in series[:-1] for d in environment_differences(p.run, latest.run)}),
             "smallest_visible_change": None, "recent_step_ms": [p.value(STEP_KEY) for p in series]}
    states = [k.state for k in key_checks]
    state, why = "ok", ""
    if not check.enough:
        state = "insufficient data"
        why = f"{len(series)} ok run{'s' * (len(series) != 1)}, needs {MIN_BASELINE + CONFIRM}"
    else:
        worst = min(states, key=STATES.index)
        named = [k for k in key_checks if k.state == worst]
        state, why = worst, "; ".join(f"{k.key}: {k.why}" for k in named if k.why)
        step = key_checks[0]
        entry["smallest_visible_change"] = step.visible
        if state == "ok" and (step.visible is None or step.visible > min_effect):
            state = "unstable"
            why = ("step time: the baseline runs spread too much to see a change smaller than "
                   f"{change_words(step.visible)}" if step.visible is not None else "step time: no spread to read")
    busy = [p for p in series[-CONFIRM:] if p.figures.excluded or (p.figures.spread or 1) > UNSTABLE_SPREAD]
    if state in ("regression", "improvement") and busy:
        # a run whose repeats disagree was made on a busy machine: it cannot confirm a change
        spreads = ", ".join(f"run {p.run['id'][:8]}'s repeats spread {p.figures.spread or 0:.1f}x"
                            + (f" with {len(p.figures.excluded)} left out" if p.figures.excluded else "")
                            for p in busy)
        state, why = "suspicious", f"{why}; not confirmed: {spreads} (a busy machine?)"
    slow = _slow_repeats(latest, key_checks[0] if check.enough else None, min_effect)
    if slow and STATES.index(state) > STATES.index("suspicious"):
        why = (f"the latest run's repeats are split: repeat{'s' * (len(slow) > 1)} "
               f"{', '.join(f'{r} ({f:.1f}x)' for r, f in sorted(slow.items()))} ran slower than the "
               "median repeat" + (f"; {state}: {why}" if why else ""))
        state = "suspicious"
    entry["state"], entry["why"] = state, why
    return entry


def _slow_repeats(latest: Point, step: KeyCheck | None, min_effect: float) -> dict[int, float]:
    """The latest run's repeats that ran slow while its median did not: those the outlier
    rule left out, and those whose step time alone is past the threshold (and past the
    minimum effect above the median repeat's). Repeat -> its factor over the median repeat."""
    slow = dict(latest.figures.excluded)
    steps = latest.figures.step_ms
    if step is None or step.state != "ok" or not steps or not step.baseline_ms:
        return slow
    limit, centre = 1 + max(step.visible or 0.0, min_effect), median(steps)
    for repeat, value in zip(latest.figures.step_repeats, steps):
        if value / step.baseline_ms > limit and value / centre > 1 + min_effect:
            slow[repeat] = value / centre
    return slow


def _regression_entry(entry: dict, check: ConfigurationCheck, key: KeyCheck) -> dict:
    config = {k: entry[k] for k in CONFIGURATION}
    return {**config, "key": key.key, "state": key.state, "baseline_ms": key.baseline_ms,
            "previous_ms": key.previous_ms, "latest_ms": key.latest_ms, "ratio": key.pair.estimate,
            "ci_low": key.pair.low, "ci_high": key.pair.high, "latest_run": entry["latest_run"],
            "previous_run": check.series[-2].run["id"],
            "baseline_runs": key.baseline_runs,
            "environment_changed": entry["environment_changed"]}


def find_regressions(store: Store, workload: str | None = None, baseline: int = DEFAULT_BASELINE,
                     min_effect=DEFAULT_MIN_EFFECT, confidence=DEFAULT_CONFIDENCE,
                     as_of: float | None = None) -> dict:
    """The state of every configuration (of `workload`) as of `as_of` (None: now): its
    latest two ok runs against up to `baseline` ok runs before them."""
    configurations = store.configurations(workload, as_of)
    if workload and not configurations:
        raise AnalysisError(f"no ok runs of {workload} (run `xprof run -w {workload}` first)")
    checks = []
    for configuration in configurations:
        check = ConfigurationCheck(points(store, store.configuration_history(configuration, baseline + CONFIRM, as_of)))
        check.keys = keys_of(check.series) if check.enough else []
        checks.append(check)
    comparisons = sum(len(c.keys) for c in checks)
    level = adjusted_confidence(confidence, comparisons)
    entries, found = [], []
    for check in checks:
        key_checks = [check_key(check, key, level, min_effect) for key in check.keys]
        entry = _configuration_result(store, check, key_checks, min_effect, as_of)
        entries.append(entry)
        if entry["state"] == "regression":
            found += [_regression_entry(entry, check, k) for k in key_checks if k.state == "regression"]
    found.sort(key=lambda r: -(r["latest_ms"] - r["baseline_ms"]))
    entries.sort(key=lambda e: (STATES.index(e["state"]), e["workload"] or "", e["framework"]))
    return {
        "regressions": found,
        "configurations": entries,
        "states": {state: sum(e["state"] == state for e in entries) for state in STATES},
        "configurations_checked": sum(c.enough for c in checks),
        "comparisons": comparisons,
        "baseline": baseline,
        "min_effect": min_effect,
        "confidence": confidence,
        "method": METHOD,
    }

