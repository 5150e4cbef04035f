"""A configuration's runs as a series: one figure per run per key (the median of its kept
repeats), with the run's spread and what it left out beside it. What `regressions`
judges and `history` draws; see docs/statistics.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

from analysis.figures import RunFigures, run_figures
from analysis.stats import TIMER_RESOLUTION_MS
from profiler.store import Store
from profiler.store.queries import CONFIGURATION

STEP_KEY = "step"
# A key's figures below this share of the time all keys account for (the baseline's) are
# read as this share, and a change smaller than it is no change: a category that comes
# and goes at 0.01% of it (or 0 ms) is noise, not a 100x change.
FLOOR_SHARE = 0.005


@dataclass
class Point:
    """One run of a series, with its figures (by category unless asked otherwise)."""

    run: dict
    figures: RunFigures

    def value(self, key: str) -> float:
        """The run's figure for `key`, ms per step: the median of its kept repeats' (one
        wild repeat cannot move it); a key the run never ran is 0."""
        values = self.figures.step_ms if key == STEP_KEY else self.figures.per_repeat.get(key)
        return median(values) if values else 0.0

    def spread(self, key: str) -> float | None:
        """Slowest over fastest repeat for `key`; None with one repeat or a zero."""
        values = self.figures.step_ms if key == STEP_KEY else self.figures.per_repeat.get(key, [])
        if len(values) < 2 or min(values) <= 0:
            return None
        return max(values) / min(values)

    def left_out(self) -> list[dict]:
        """The repeats this run's figures leave out, each with its reason."""
        return [{"run": self.run["id"], "repeat": repeat, "factor": factor,
                 "reason": f"its median step was {factor:.1f}x the run's median repeat's"}
                for repeat, factor in sorted(self.figures.excluded.items())]


def points(store: Store, runs: list[dict], by: str = "category") -> list[Point]:
    return [Point(run, run_figures(store, run, by)) for run in runs]


def configuration_of(run: dict) -> dict:
    return {column: run[column] for column in CONFIGURATION}


def keys_of(series: list[Point]) -> list[str]:
    """The step time, then every key any run of the series has, sorted."""
    keys = set()
    for point in series:
        keys |= set(point.figures.per_repeat)
    return [STEP_KEY, *sorted(keys)]


def floor_ms(baseline: list[Point]) -> float:
    """The smallest figure a key is read at: FLOOR_SHARE of what the baseline runs'
    keys account for together (the median run's), never below the timer's resolution."""
    totals = [sum(p.value(key) for key in p.figures.per_repeat) for p in baseline]
    return max(TIMER_RESOLUTION_MS, FLOOR_SHARE * median(totals)) if totals else TIMER_RESOLUTION_MS


def log_figure(value: float, floor: float) -> float:
    return math.log(max(value, floor))


def runs_left_out(store: Store, series: list[Point], as_of: float | None = None) -> list[dict]:
    """Every repeat the series' figures leave out and every run of its configuration
    since its first that did not finish ok, each with its reason."""
    if not series:
        return []
    configuration = tuple(configuration_of(series[0].run).values())
    runs = [{"run": run["id"], "repeat": None, "factor": None,
             "reason": f"{run['status']}" + (f": {run['error']}" if run["error"] else "")}
            for run in store.runs_not_ok(configuration, series[0].run["started_at"], as_of)]
    return [entry for point in series for entry in point.left_out()] + runs
