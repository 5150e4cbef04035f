"""compare / rank_differences on synthetic runs, and which runs a diff takes (analysis.runs):
the arithmetic of rows, ratios, intervals and significance, with numbers worked by hand."""

import math

import pytest

from analysis.diff import compare, environment_differences, rank_differences
from analysis.figures import run_figures
from analysis.runs import AnalysisError, latest_pair, latest_run
from profiler.store import Store
from profiler.traces.events import KERNEL
from synthetic import add_events, add_run, ms_event

E = math.exp(0.1)  # repeats 1/E, 1, E have logs -0.1, 0, 0.1: sample variance 0.01


@pytest.fixture
def store():
    return Store.in_memory()


def _row(result, key):
    return next(r for r in result["rows"] if r["key"] == key)


def test_rows_are_ranked_by_absolute_delta(store):
    a = add_run(store, [{"matmul": 1.0, "elementwise": 0.5, "copy": 0.2}] * 3)
    b = add_run(store, [{"matmul": 0.5, "elementwise": 2.0, "copy": 0.1}] * 3, framework="tensorflow")
    result = compare(store, a, b)
    # steps are twice the ops (3.4 and 5.2 ms), so between ops is 1.7 vs 2.6
    assert [r["key"] for r in result["rows"]] == ["elementwise", "(between ops)", "matmul", "copy"]
    assert [r["delta_ms"] for r in result["rows"]] == pytest.approx([1.5, 0.9, -0.5, -0.1])
    assert result["step"]["delta_ms"] == pytest.approx(1.8)
    assert result["step"]["steps"] == "unprofiled"


def test_row_figures_are_geometric_means_and_the_ratio_is_b_over_a(store):
    a = add_run(store, [{"matmul": 1.0, "copy": 0.3}, {"matmul": 2.0, "copy": 0.3}, {"matmul": 4.0}],
                device="cuda:0", step_ms=[10.0] * 3)
    b = add_run(store, [{"matmul": 3.0, "copy": 0.1}, {"matmul": 6.0, "copy": 0.2},
                        {"matmul": 12.0, "copy": 0.6}],
                device="cuda:0", step_ms=[10.0] * 3, framework="tensorflow")
    result = compare(store, a, b)
    matmul = _row(result, "matmul")
    # geometric means: (1*2*4)^(1/3) = 2 (arithmetic 2.33), (3*6*12)^(1/3) = 6
    assert (matmul["a_ms"], matmul["b_ms"], matmul["ratio"]) == pytest.approx((2.0, 6.0, 3.0))
    # A's copy is 0 in one repeat: both sides arithmetic, A (0.3+0.3+0)/3 = 0.2 and
    # B (0.1+0.2+0.6)/3 = 0.3 (its geometric mean would be 0.229)
    copy = _row(result, "copy")
    assert (copy["a_ms"], copy["b_ms"], copy["ratio"]) == pytest.approx((0.2, 0.3, 1.5))
    for row in result["rows"]:
        assert row["ratio"] == pytest.approx(row["b_ms"] / row["a_ms"])
        assert row["delta_ms"] == pytest.approx(row["b_ms"] - row["a_ms"])


def test_an_op_only_in_b_has_no_ratio_and_is_significant_when_its_low_end_exceeds_1(store):
    a = add_run(store, [{"matmul": 1.0}] * 3, device="cuda:0", step_ms=[4.0] * 3)
    steady = add_run(store, [{"matmul": 1.0, "copy": c} for c in (0.4, 0.5, 0.6)],
                     device="cuda:0", step_ms=[4.0] * 3, framework="tensorflow")
    noisy = add_run(store, [{"matmul": 1.0, "copy": c} for c in (0.1, 0.5, 0.9)],
                    device="cuda:0", step_ms=[4.0] * 3, framework="tensorflow")
    a_figures = run_figures(store, a)
    # Welch on the difference, 0.5 ms: se = sqrt(0.01 / 3) = 0.058, t(0.9875, df 2) = 6.21,
    # low end 0.5 - 0.36 > 0, so B/A's low end is +inf: "only in B", significant
    copy = rank_differences(a_figures, run_figures(store, steady))[0]
    assert (copy.key, copy.a_ms, copy.b_ms, copy.ratio) == ("copy", 0.0, pytest.approx(0.5), None)
    assert (copy.ci_low, copy.ci_high, copy.significant) == (math.inf, math.inf, True)
    # se = sqrt(0.16 / 3) = 0.23: the difference's interval holds 0, so [0, +inf)
    copy = rank_differences(a_figures, run_figures(store, noisy))[0]
    assert (copy.ratio, copy.ci_low, copy.ci_high, copy.significant) == (None, 0.0, math.inf, False)
    # JSON has no infinity: unbounded ends are null
    row = _row(compare(store, a, steady), "copy")
    assert (row["ratio"], row["ci_low"], row["ci_high"], row["significant"]) == (None, None, None, True)


def test_a_over_a_with_the_same_repeats_shows_nothing_significant(store):
    repeats = [{"matmul": 1.0, "elementwise": 0.5}, {"matmul": 1.1, "elementwise": 0.45},
               {"matmul": 0.9, "elementwise": 0.55}]
    a = add_run(store, repeats)
    b = add_run(store, repeats[::-1])  # the same figures, in another order
    result = compare(store, a, b)
    assert {r["key"] for r in result["rows"]} == {"matmul", "elementwise", "(between ops)"}
    for row in result["rows"] + [result["step"]]:
        assert row["ratio"] == pytest.approx(1.0)
        assert row["ci_low"] < 1 < row["ci_high"]
        assert not row["significant"]
    assert result["environment_differences"] == [] and result["notes"] == []


def test_min_effect_gates_significance(store):
    # B is 3% slower everywhere, with no variance: the interval is [1.03, 1.03]
    a = add_run(store, [{"matmul": 1.0}] * 3)
    b = add_run(store, [{"matmul": 1.03}] * 3, framework="tensorflow")
    at_5 = compare(store, a, b)  # the default, 5%
    assert at_5["min_effect"] == 0.05
    assert [r["significant"] for r in at_5["rows"] + [at_5["step"]]] == [False] * 3
    at_1 = compare(store, a, b, min_effect=0.01)
    assert [r["significant"] for r in at_1["rows"] + [at_1["step"]]] == [True] * 3
    assert at_1["step"]["ratio"] == pytest.approx(1.03)


def test_bonferroni_widens_each_interval_as_rows_are_added(store):
    # matmul: A 1/E, 1, E and B twice that; logs of each side have variance 0.01, so
    # se = sqrt(2 * 0.01 / 3) = 0.0816 with Welch df 4; ratio 2 * exp(+-t * se)
    figures_a = [{"matmul": m} for m in (1 / E, 1.0, E)]
    figures_b = [{"matmul": 2 * m} for m in (1 / E, 1.0, E)]
    a = add_run(store, figures_a, device="cuda:0")
    b = add_run(store, figures_b, device="cuda:0", framework="tensorflow")
    alone = _row(compare(store, a, b), "matmul")
    # one row: t(0.975, 4) = 2.7764
    assert (alone["ratio"], alone["ci_low"], alone["ci_high"]) == pytest.approx((2.0, 1.5943, 2.5089), rel=1e-4)
    same = {f"k{i}": 0.5 for i in range(9)}
    a = add_run(store, [f | same for f in figures_a], device="cuda:0", workload="cnn")
    b = add_run(store, [f | same for f in figures_b], device="cuda:0", workload="cnn", framework="tensorflow")
    result = compare(store, a, b)
    assert len(result["rows"]) == 10
    crowded = _row(result, "matmul")
    # ten rows: each at 99.5%, t(0.9975, 4) = 5.5976
    assert (crowded["ratio"], crowded["ci_low"], crowded["ci_high"]) == pytest.approx((2.0, 1.2663, 3.1588), rel=1e-4)


def test_fewer_than_two_repeats_on_a_side_gives_no_interval_and_says_so(store):
    a = add_run(store, [{"matmul": 1.0}])
    b = add_run(store, [{"matmul": 2.0}] * 3, framework="tensorflow")
    result = compare(store, a, b)
    assert result["a"]["repeats"] == 1
    for row in result["rows"] + [result["step"]]:
        assert row["ci_low"] is None and row["ci_high"] is None and not row["significant"]
    assert result["step"]["ratio"] == pytest.approx(2.0)  # 4 ms vs 2 ms: still shown
    assert result["notes"] == [
        "fewer than 2 repeats on a side: no interval, nothing can be significant (profile with "
        "--repeats 3 or more; an imported trace is one repeat, so compare imports by their "
        "ratios only)"]


def test_notes_name_left_out_repeats_unsteady_runs_and_what_else_differs(store):
    a = add_run(store, [{"matmul": 1.0}, {"matmul": 1.0}, {"matmul": 3.0}])  # steps 2, 2, 6 ms
    b = add_run(store, [{"gemm": 1.0}, {"gemm": 1.6}], device="cuda:0", size="small",
                framework="tensorflow")  # steps 2 and 3.2 ms: spread 1.6
    result = compare(store, a, b)
    assert result["a"]["excluded_repeats"] == {"2": pytest.approx(3.0)}
    assert result["b"]["spread"] == pytest.approx(1.6)
    assert result["notes"] == [
        f"A ({a['id'][:8]}): repeat 2 left out, its median step was 3.0x the other repeats' "
        "(the machine was busy?)",
        f"B ({b['id'][:8]}) is unstable: its repeats' median steps range 1.6x; intervals are "
        "wide, rerun on a quieter machine or with more --repeats",
        "A is timed on cpu time, B on device time",
        "sizes differ: tiny vs small",
        "devices differ: cpu vs cuda:0",
    ]


def test_an_import_is_compared_on_profiled_steps_on_both_sides(store):
    a = add_run(store, [{"matmul": 1.0}] * 3, step_ms=[9.0] * 3, profiled_step_ms=[3.0] * 3)
    b = add_run(store, [{"matmul": 1.0}] * 3, profiled_step_ms=[6.0] * 3, unprofiled=False,
                framework="tensorflow", source="import")
    step = compare(store, a, b)["step"]
    assert step["steps"] == "profiled"
    assert (step["a_ms"], step["b_ms"], step["ratio"]) == pytest.approx((3.0, 6.0, 2.0))  # not 9 vs 6


def test_runs_that_cannot_be_compared_are_refused_with_the_reason(store):
    mlp = add_run(store, [{"matmul": 1.0}] * 2)
    cnn = add_run(store, [{"matmul": 1.0}] * 2, workload="cnn")
    infer = add_run(store, [{"matmul": 1.0}] * 2, mode="infer")
    failed = add_run(store, [{"matmul": 1.0}] * 2, status="failed")
    with pytest.raises(AnalysisError) as error:
        compare(store, mlp, cnn)
    assert str(error.value) == (f"runs {mlp['id']} and {cnn['id']} are of different workloads "
                                "(mlp/train vs cnn/train)")
    with pytest.raises(AnalysisError, match=r"\(mlp/train vs mlp/infer\)"):
        compare(store, mlp, infer)
    with pytest.raises(AnalysisError) as error:
        compare(store, mlp, mlp)
    assert str(error.value) == f"run {mlp['id']} compared with itself: give two different runs"
    with pytest.raises(AnalysisError) as error:
        compare(store, mlp, failed)
    assert str(error.value) == f"run {failed['id']} is failed, not ok: nothing to compare"


def test_environment_differences_between_frameworks_are_host_facts_only(store):
    a = add_run(store, [{"matmul": 1.0}] * 2,
                env={"hostname": "h1", "cpu_model": "x", "framework_version": "2.1", "threads": 4})
    b = add_run(store, [{"matmul": 1.0}] * 2, framework="tensorflow",
                env={"hostname": "h2", "framework_version": "2.16", "threads": 8})
    # cpu_model: B never recorded it, so no difference; framework facts differ by design
    assert compare(store, a, b)["environment_differences"] == ["hostname: 'h1' vs 'h2'"]


def test_environment_differences_within_a_framework_include_its_facts(store):
    a = add_run(store, [{"matmul": 1.0}] * 2,
                env={"hostname": "h1", "framework_version": "2.1", "cuda": None, "gpus": 1})
    b = add_run(store, [{"matmul": 1.0}] * 2,
                env={"hostname": "h1", "framework_version": "2.2", "cuda": "12.1"})
    # host keys first, then framework keys, each in its declared order; null is a value
    assert environment_differences(a, b) == ["framework_version: '2.1' vs '2.2'",
                                             "cuda: None vs '12.1'"]


def _kernel_run(store, scale, **kw):
    """Per profiled step: two matmul kernels of one op and an add kernel without an op."""
    run = add_run(store, [{}] * 2, device="cuda:0", step_ms=[5.0] * 2, **kw)
    for repeat in range(2):
        add_events(store, run, repeat, [e for step in (1, 2, 3) for e in (
            ms_event("sgemm_128", 5.0 * step, 1.0 * scale, step=step, kind=KERNEL, device="cuda:0", op="aten::mm"),
            ms_event("sgemm_64", 5.0 * step + 1, 0.5 * scale, step=step, kind=KERNEL, device="cuda:0", op="aten::mm"),
            ms_event("add_kernel", 5.0 * step + 2, 0.25, step=step, kind=KERNEL, device="cuda:0"),
        )], categories={"sgemm_128": "matmul", "sgemm_64": "matmul", "add_kernel": "elementwise"})
    return run


@pytest.mark.parametrize("by, expected", [
    ("category", {"matmul": 1.5, "elementwise": 0.25}),
    ("op", {"aten::mm": 1.5, "add_kernel": 0.25}),  # an event without an op: its name
    ("kernel", {"sgemm_128": 1.0, "sgemm_64": 0.5, "add_kernel": 0.25}),
])
def test_by_groups_rows_by_category_op_or_kernel_name(store, by, expected):
    a = _kernel_run(store, 1)
    b = _kernel_run(store, 2, framework="tensorflow")
    result = compare(store, a, b, by=by)
    assert result["by"] == by
    assert {r["key"]: r["a_ms"] for r in result["rows"]} == pytest.approx(expected)
    assert {r["key"]: r["ratio"] for r in result["rows"]} == pytest.approx(
        {k: 1.0 if k in ("elementwise", "add_kernel") else 2.0 for k in expected})


# -- which runs a diff takes ------------------------------------------------------


def test_latest_run_is_the_newest_ok_one_by_start_time(store):
    newest = add_run(store, [{"matmul": 1.0}] * 2, started_at=200)  # written first
    add_run(store, [{"matmul": 1.0}] * 2, started_at=100)
    add_run(store, [{"matmul": 1.0}] * 2, started_at=300, status="failed")
    add_run(store, [{"matmul": 1.0}] * 2, started_at=400, execution="compiled")
    assert latest_run(store, "mlp", "torch")["execution"] == "compiled"
    assert latest_run(store, "mlp", "torch", "train", "eager", "tiny")["id"] == newest["id"]


def test_latest_run_says_how_to_make_the_missing_run(store):
    with pytest.raises(AnalysisError) as error:
        latest_run(store, "mlp", "torch", size="small")
    assert str(error.value) == ("no ok small run of 'mlp' in torch "
                                "(run `xprof run -w mlp -f torch --suite small`)")
    with pytest.raises(AnalysisError) as error:
        latest_run(store, "mlp", "torch", "train", "compiled", "small")
    assert str(error.value) == ("no ok small train compiled run of 'mlp' in torch (run `xprof run "
                                "-w mlp -f torch --suite small --mode train --exec compiled`)")
    # not a catalog workload: only an import can make one
    add_run(store, [{"matmul": 1.0}] * 2, workload="bert", framework="tensorflow", status="failed")
    with pytest.raises(AnalysisError) as error:
        latest_run(store, "bert", "tensorflow")
    assert str(error.value) == ("no ok run of 'bert' in tensorflow "
                                "(run `xprof import TRACE --workload bert`)")
    with pytest.raises(AnalysisError, match=r"\(run `xprof import TRACE --workload bert --mode infer`\)$"):
        latest_run(store, "bert", "tensorflow", "infer")


def test_latest_pair_defaults_to_train_for_catalog_workloads(store):
    add_run(store, [{"matmul": 1.0}] * 2, mode="infer")
    add_run(store, [{"matmul": 1.0}] * 2, mode="infer", framework="tensorflow")
    with pytest.raises(AnalysisError, match=r"^no ok train run of 'mlp' in torch"):
        latest_pair(store, "mlp", "torch", "tensorflow")
    a, b = latest_pair(store, "mlp", "torch", "tensorflow", mode="infer")
    assert (a["mode"], b["mode"]) == ("infer", "infer")


def test_latest_pair_of_an_import_takes_train_only_where_train_runs_exist(store):
    add_run(store, [{"m": 1.0}] * 2, workload="bert", mode="infer", source="import")
    tf_infer = add_run(store, [{"m": 1.0}] * 2, workload="bert", mode="infer", framework="tensorflow")
    a, b = latest_pair(store, "bert", "torch", "tensorflow")
    assert (a["mode"], b["id"]) == ("infer", tf_infer["id"])  # no train runs: any mode
    train = add_run(store, [{"m": 1.0}] * 2, workload="bert", mode="train", started_at=1)
    add_run(store, [{"m": 1.0}] * 2, workload="bert", mode="train", framework="tensorflow", started_at=2)
    a, b = latest_pair(store, "bert", "torch", "tensorflow")  # older, but train
    assert (a["id"], b["mode"]) == (train["id"], "train")


def test_latest_pair_takes_b_at_a_s_size(store):
    a_small = add_run(store, [{"matmul": 1.0}] * 2, size="small")
    b_small = add_run(store, [{"matmul": 1.0}] * 2, size="small", framework="tensorflow")
    add_run(store, [{"matmul": 1.0}] * 2, size="tiny", framework="tensorflow")  # newer
    a, b = latest_pair(store, "mlp", "torch", "tensorflow")
    assert (a["id"], b["id"]) == (a_small["id"], b_small["id"])
