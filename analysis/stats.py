"""The statistics of a difference: per-repeat figures, geometric means, Welch's interval
on logs, Bonferroni, and when a row is significant; see docs/statistics.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean, variance

from profiler.collect.settings import DEFAULT_MIN_EFFECT  # noqa: F401 - the rules' default, shared

DEFAULT_CONFIDENCE = 0.95
# Kineto timestamps are whole microseconds: differences below that are not measured.
TIMER_RESOLUTION_MS = 0.001


@dataclass(frozen=True)
class Interval:
    estimate: float | None  # ratio B/A (None when A is zero)
    low: float | None
    high: float | None
    method: str


def welch_log_ratio(a: list[float], b: list[float], confidence: float) -> Interval:
    """Interval of geomean(B)/geomean(A) from per-repeat values, on the log scale (of the
    arithmetic means when a value is zero, see _welch_delta_as_ratio)."""
    if len(a) < 2 or len(b) < 2:
        return Interval(_ratio(a, b), None, None, "none: needs 2 repeats a side")
    if min(a) <= 0 or min(b) <= 0:
        return _welch_delta_as_ratio(a, b, confidence)
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    va, vb = variance(la) / len(la), variance(lb) / len(lb)
    estimate = fmean(lb) - fmean(la)
    se = math.sqrt(va + vb)
    if se == 0:
        value = math.exp(estimate)
        return Interval(value, value, value, "welch-log")
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    half = _t_quantile(1 - (1 - confidence) / 2, df) * se
    return Interval(math.exp(estimate), _exp(estimate - half), _exp(estimate + half), "welch-log")


def shift_interval(baseline: list[float], new: list[float], confidence: float) -> Interval:
    """Interval of exp(mean(new) - mean(baseline)) for logs of run figures, when the `new`
    runs come from the baseline's own run-to-run spread: Student's t with n - 1 degrees
    of freedom and standard error s * sqrt(1/k + 1/n), a prediction interval. Needs 2."""
    n, k = len(baseline), len(new)
    shift = fmean(new) - fmean(baseline)
    if n < 2 or not k:
        return Interval(math.exp(shift), None, None, "none: needs 2 baseline runs")
    half = _t_quantile(1 - (1 - confidence) / 2, n - 1) * math.sqrt(variance(baseline) * (1 / k + 1 / n))
    return Interval(math.exp(shift), _exp(shift - half), _exp(shift + half), "prediction-log")


def _exp(x: float) -> float:
    """exp that saturates: with two wildly different repeats and few degrees of freedom
    the interval's upper end can exceed a float; it is then unbounded, not an error."""
    return math.inf if x > 700 else math.exp(x)


def _welch_delta_as_ratio(a, b, confidence) -> Interval:
    """A side with zeros (an op one framework never runs): Welch's interval of the
    difference, expressed relative to A's mean when A is non-zero."""
    ma, mb = fmean(a), fmean(b)
    va, vb = variance(a) / len(a), variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        low = high = mb - ma
    else:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        half = _t_quantile(1 - (1 - confidence) / 2, df) * se
        low, high = mb - ma - half, mb - ma + half
    if ma == 0:
        # no ratio exists; report the interval's sign through +inf / 0 bounds
        return Interval(None, 0.0 if low <= 0 else math.inf, math.inf if high > 0 else 0.0,
                        "welch-delta")
    # a ratio of times is never negative
    return Interval(mb / ma, max(1 + low / ma, 0.0), max(1 + high / ma, 0.0), "welch-delta")


def _t_quantile(p: float, df: float) -> float:
    # scipy.special's inverse of Student's t CDF: the same number as
    # scipy.stats.t.ppf, without scipy.stats' second of import time
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _ratio(a, b):
    ma, mb = summarize(a), summarize(b)
    return mb / ma if ma else None


def summarize(values: list[float]) -> float:
    """The figure a row shows for per-repeat values: their geometric mean, the mean the
    ratio's interval is about (log scale), so row, ratio and interval always agree; the
    arithmetic mean when a repeat is zero (an op some repeats never ran)."""
    if not values:
        return 0.0
    if min(values) > 0:
        return math.exp(sum(math.log(v) for v in values) / len(values))
    return sum(values) / len(values)



def summarize_pair(a: list[float], b: list[float]) -> tuple[float, float]:
    """The two figures a row shows, on the same footing as its ratio's interval:
    geometric means when both sides are all positive, else arithmetic means of both
    (the interval is then on the difference of arithmetic means), so that the ratio
    shown is always B's figure over A's."""
    if a and b and min(a) > 0 and min(b) > 0:
        return summarize(a), summarize(b)
    return (sum(a) / len(a) if a else 0.0), (sum(b) / len(b) if b else 0.0)


def is_significant(interval: Interval, delta_ms: float, min_effect: float,
                   resolution_ms: float = TIMER_RESOLUTION_MS) -> bool:
    if interval.low is None or interval.high is None:
        return False
    excludes_one = interval.low > 1 or interval.high < 1
    effect = math.inf if interval.estimate is None else abs(interval.estimate - 1)
    return excludes_one and effect > min_effect and abs(delta_ms) > resolution_ms


def adjusted_confidence(confidence: float, comparisons: int) -> float:
    """Bonferroni: each of m intervals at 1 - alpha/m."""
    return 1 - (1 - confidence) / max(comparisons, 1)
