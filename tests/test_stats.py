"""The statistics behind `significant`, on numbers whose answer is known."""

import math
import random

import pytest

from analysis.stats import adjusted_confidence, is_significant, summarize_pair, welch_log_ratio


def test_interval_contains_its_estimate_and_matches_welch_by_hand():
    a, b = [1.0, 1.1, 0.9], [2.0, 2.2, 1.8]
    interval = welch_log_ratio(a, b, 0.95)
    assert interval.low < interval.estimate < interval.high
    # by hand: logs of b are logs of a + log 2, same variance
    la = [math.log(x) for x in a]
    mean = sum(la) / 3
    var = sum((x - mean) ** 2 for x in la) / 2
    se = math.sqrt(2 * var / 3)
    df = 4.0  # equal variances and sizes: Welch's df is 2(n - 1)
    from scipy import stats

    half = stats.t.ppf(0.975, df) * se
    assert interval.estimate == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0 * math.exp(-half))
    assert interval.high == pytest.approx(2.0 * math.exp(half))
    assert is_significant(interval, delta_ms=1.0, min_effect=0.05)


def test_one_repeat_a_side_gives_no_interval_and_no_significance():
    interval = welch_log_ratio([1.0], [3.0, 3.1], 0.95)
    assert interval.low is None and interval.estimate == pytest.approx(math.sqrt(3.0 * 3.1))
    assert not is_significant(interval, delta_ms=2.0, min_effect=0.05)


def test_small_effects_and_sub_resolution_deltas_are_not_significant():
    a, b = [1.00, 1.001, 0.999, 1.0005], [1.02, 1.021, 1.019, 1.0205]
    interval = welch_log_ratio(a, b, 0.95)
    assert interval.low > 1  # clearly different...
    assert not is_significant(interval, delta_ms=0.02, min_effect=0.05)  # ...but only 2%
    big = welch_log_ratio([1e-4] * 2 + [1.1e-4], [3e-4] * 2 + [3.1e-4], 0.95)
    assert big.low > 1 and not is_significant(big, delta_ms=2e-4, min_effect=0.05)


def test_an_op_only_one_side_runs():
    interval = welch_log_ratio([0.0, 0.0, 0.0], [0.5, 0.52, 0.49], 0.95)
    assert interval.estimate is None and interval.low == math.inf
    assert is_significant(interval, delta_ms=0.5, min_effect=0.05)
    gone = welch_log_ratio([0.5, 0.52, 0.49], [0.0, 0.0, 0.0], 0.95)
    assert gone.estimate == 0.0 and gone.high < 1 and gone.low >= 0


def test_bonferroni_widens_each_interval():
    assert adjusted_confidence(0.95, 10) == pytest.approx(0.995)
    a, b = [1.0, 1.2, 0.9, 1.1], [1.3, 1.5, 1.2, 1.4]
    assert welch_log_ratio(a, b, 0.995).low < welch_log_ratio(a, b, 0.95).low


def test_a_over_a_false_positive_rate_is_at_most_nominal():
    """Same log-normal process on both sides, 20 rows a comparison, 300 comparisons:
    with Bonferroni, any-row false alarms stay near or under 5%."""
    rng = random.Random(7)
    alarms = 0
    for _ in range(300):
        level = adjusted_confidence(0.95, 20)
        any_row = False
        for _ in range(20):
            a = [math.exp(rng.gauss(0, 0.3)) for _ in range(3)]
            b = [math.exp(rng.gauss(0, 0.3)) for _ in range(3)]
            interval = welch_log_ratio(a, b, level)
            any_row |= is_significant(interval, sum(b) / 3 - sum(a) / 3, 0.05)
        alarms += any_row
    assert alarms / 300 <= 0.08


def test_a_repeat_slowed_by_a_busy_machine_is_left_out():
    from analysis.figures import outlier_repeats

    assert outlier_repeats({0: 7.07, 1: 0.98, 2: 1.37, 3: 0.90, 4: 7.26}) == {
        0: pytest.approx(7.07 / 1.37), 4: pytest.approx(7.26 / 1.37)}
    assert outlier_repeats({0: 1.0, 1: 1.4, 2: 0.8, 3: 1.2}) == {}  # ordinary spread
    assert outlier_repeats({0: 0.3, 1: 1.0, 2: 1.1}) == {}  # faster is never "busy"
    assert outlier_repeats({0: 5.0, 1: 1.0}) == {}  # two repeats: no majority to judge by


def test_rows_summarize_by_geometric_mean_so_ratio_and_row_agree():
    from analysis.stats import summarize

    a, b = [1.0, 4.0], [2.0, 2.0]
    interval = welch_log_ratio(a, b, 0.95)
    assert summarize(a) == pytest.approx(2.0) and interval.estimate == pytest.approx(1.0)
    assert summarize([0.0, 3.0]) == 1.5  # a zero: arithmetic, as the delta interval is


def test_an_interval_too_wide_for_a_float_is_unbounded_not_an_error():
    # one repeat 150x the other, two repeats a side: the upper end exceeds exp(709);
    # this happened on a busy machine and used to raise OverflowError in the daemon
    interval = welch_log_ratio([0.8, 0.83], [0.82, 119.8], 1 - 0.05 / 40)
    assert interval.high == math.inf and 0 <= interval.low < 1
    assert interval.estimate == pytest.approx(math.sqrt(0.82 * 119.8 / (0.8 * 0.83)))


def test_a_row_shows_figures_whose_ratio_is_its_estimate():
    # an op one repeat of A never ran: the interval is on arithmetic means, and so are
    # both figures shown (a CI run once showed a geometric B over an arithmetic A)
    a, b = [0.0, 0.4, 0.5], [0.02, 0.021, 0.019]
    a_ms, b_ms = summarize_pair(a, b)
    assert welch_log_ratio(a, b, 0.95).estimate == pytest.approx(b_ms / a_ms)
    a, b = [0.3, 0.4, 0.5], [0.02, 0.021, 0.019]
    a_ms, b_ms = summarize_pair(a, b)
    assert welch_log_ratio(a, b, 0.95).estimate == pytest.approx(b_ms / a_ms)


def test_figures_print_the_same_everywhere():
    from views.numbers import delta_text, ms_text, ratio_text, ratio_word

    assert [ms_text(v) for v in (None, 0, 0.0041, 0.412, 43424.325, -0.152)] == [
        "-", "0", "0.0041", "0.412", "43,424", "-0.152"]
    assert [ratio_word(v) for v in (None, 0, 0.0023, 1.234, 5000)] == [
        "only in B", "only in A", "0.0023x", "1.23x", ">1000x"]
    assert ratio_text(0.004) != "0.00"  # a small ratio is not shown as none
    assert [delta_text(v) for v in (0.483, -0.152, 0, 1234.5)] == ["+0.483", "-0.152", "0", "+1,234"]


def test_an_imported_side_is_timed_on_profiled_steps_on_both_sides():
    from analysis.diff import environment_differences, step_time_difference
    from analysis.figures import RunFigures

    profiled = RunFigures({"id": "a"}, "cpu", [0, 1, 2], step_ms=[0.33, 0.33, 0.33],
                          profiled_step_ms=[0.40, 0.41, 0.40])
    imported = RunFigures({"id": "b"}, "cpu", [0], step_ms=[0.41], profiled_step_ms=[0.41],
                          steps_profiled=True)
    row = step_time_difference(profiled, imported)
    assert row.a_ms == pytest.approx(0.4033, abs=1e-3) and row.ratio == pytest.approx(1.016, abs=1e-2)
    env_run = {"framework": "torch", "env": '{"hostname": "vm", "cuda": null, "device_name": "cpu"}'}
    env_import = {"framework": "torch", "env": '{"device_name": "A100"}'}
    env_cuda = {"framework": "torch", "env": '{"hostname": "vm", "cuda": "12.1", "device_name": "cpu"}'}
    assert environment_differences(env_run, env_import) == ["device_name: 'cpu' vs 'A100'"]
    assert environment_differences(env_run, env_cuda) == ["cuda: None vs '12.1'"]  # null is a fact
