"""build_report / verdict / faster_side on synthetic torch and TensorFlow runs."""

import pytest

from analysis.report import build_report, faster_side, verdict
from analysis.runs import AnalysisError
from profiler.store import Store
from synthetic import add_run


@pytest.fixture
def store():
    return Store.in_memory()


def test_the_verdict_names_the_faster_framework_and_by_how_much(store):
    torch = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 3)
    tf = add_run(store, [{"matmul": 2.0, "elementwise": 0.5}] * 3, framework="tensorflow")
    report = build_report(store)
    assert report["ratio"] == "tensorflow step time / torch step time"
    [entry] = report["workloads"]
    assert (entry["workload"], entry["mode"], entry["size"]) == ("mlp", "train", "tiny")
    # steps twice the ops: 3 vs 5 ms, no variance
    assert entry["ratio"] == pytest.approx(5 / 3)
    assert entry["significant"] and entry["faster"] == "torch"
    assert entry["verdict"] == "torch is 1.67x faster per step"
    assert entry["frameworks"]["torch"]["run"] == torch["id"]
    assert entry["frameworks"]["tensorflow"]["run"] == tf["id"]
    assert entry["frameworks"]["torch"]["step_ms"] == pytest.approx(3.0)
    assert entry["frameworks"]["tensorflow"]["step_ms"] == pytest.approx(5.0)
    assert entry["notes"] == []


def test_top_categories_go_the_way_of_the_gap_three_at_most(store):
    add_run(store, [{"matmul": 1.0, "elementwise": 0.5, "pooling": 0.2, "copy": 0.3}] * 3,
            step_ms=[4.0] * 3)
    add_run(store, [{"matmul": 2.0, "elementwise": 0.6, "pooling": 0.25, "copy": 0.2}] * 3,
            step_ms=[7.0] * 3, framework="tensorflow")
    [entry] = build_report(store)["workloads"]
    assert entry["verdict"] == "torch is 1.75x faster per step"  # 7 / 4
    # deltas: between ops (4 - 2.0) -> (7 - 3.05) = +1.95, matmul +1.0, elementwise +0.1,
    # pooling +0.05 (fourth: cut), copy -0.1 (against the gap: left out)
    top = entry["top_categories"]
    assert [c["category"] for c in top] == ["(between ops)", "matmul", "elementwise"]
    assert [c["delta_ms"] for c in top] == pytest.approx([1.95, 1.0, 0.1])
    assert (top[1]["torch_ms"], top[1]["tensorflow_ms"], top[1]["significant"]) == pytest.approx((1.0, 2.0, True))


def test_when_tensorflow_is_faster_the_top_categories_are_where_it_gains(store):
    add_run(store, [{"matmul": 2.0, "copy": 0.1}] * 3, step_ms=[8.0] * 3)
    add_run(store, [{"matmul": 1.0, "copy": 0.2}] * 3, step_ms=[4.0] * 3, framework="tensorflow")
    [entry] = build_report(store)["workloads"]
    assert entry["ratio"] == pytest.approx(0.5)
    assert entry["faster"] == "tensorflow"
    assert entry["verdict"] == "tensorflow is 2.00x faster per step"
    # between ops 5.9 -> 2.8 (-3.1), matmul -1.0; copy (+0.1) went the other way
    assert [(c["category"], c["delta_ms"]) for c in entry["top_categories"]] == [
        ("(between ops)", pytest.approx(-3.1)), ("matmul", pytest.approx(-1.0))]


def test_no_significant_difference_names_no_faster_side(store):
    add_run(store, [{"matmul": 1.0}] * 3)
    add_run(store, [{"matmul": 1.02}] * 3, framework="tensorflow")  # 2%: under the 5% effect
    [entry] = build_report(store)["workloads"]
    assert entry["faster"] is None and not entry["significant"]
    assert entry["verdict"] == "no significant difference in step time"
    [entry] = build_report(store, min_effect=0.01)["workloads"]
    assert entry["verdict"] == "torch is 1.02x faster per step"


def test_execution_effects_compare_other_styles_with_the_usual_one(store):
    add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 3)  # eager, 3 ms steps
    compiled = add_run(store, [{"matmul": 0.5, "elementwise": 0.25}] * 3, execution="compiled")
    add_run(store, [{"matmul": 2.0, "elementwise": 0.5}] * 3, framework="tensorflow")
    [entry] = build_report(store)["workloads"]
    effects = entry["frameworks"]["torch"]["execution_effects"]
    assert list(effects) == ["compiled"]  # no torch graph run
    assert effects["compiled"]["run"] == compiled["id"]
    assert effects["compiled"]["step_ms"] == pytest.approx(1.5)
    assert (effects["compiled"]["ratio"], effects["compiled"]["ci_low"],
            effects["compiled"]["ci_high"]) == pytest.approx((0.5, 0.5, 0.5))  # 1.5 / 3
    assert effects["compiled"]["significant"]
    assert entry["frameworks"]["tensorflow"]["execution_effects"] == {}
    # the verdict stays on the usual styles
    assert entry["frameworks"]["torch"]["execution"] == "eager"
    assert entry["verdict"] == "torch is 1.67x faster per step"


def test_execution_effects_use_the_report_s_min_effect(store):
    add_run(store, [{"matmul": 1.0}] * 3)  # 2 ms steps
    add_run(store, [{"matmul": 1.0}] * 3, execution="compiled", step_ms=[1.94] * 3)  # 3% faster
    add_run(store, [{"matmul": 2.0}] * 3, framework="tensorflow")
    entry = verdict(store, "mlp", "train", "tiny", min_effect=0.01)
    compiled = entry["frameworks"]["torch"]["execution_effects"]["compiled"]
    assert compiled["ratio"] == pytest.approx(0.97)
    assert compiled["significant"]  # [0.97, 0.97] excludes 1 and 3% > 1%


def test_a_framework_without_a_usual_run_gets_a_message_not_a_verdict(store):
    torch = add_run(store, [{"matmul": 1.0}] * 3)
    add_run(store, [{"matmul": 1.0}] * 3, framework="tensorflow", execution="eager")  # not graph
    add_run(store, [{"matmul": 1.0}] * 3, framework="tensorflow", status="failed")
    [entry] = build_report(store)["workloads"]
    assert entry["verdict"] == "no ok graph run of tensorflow to compare with"
    assert list(entry["frameworks"]) == ["torch"] and entry["frameworks"]["torch"]["run"] == torch["id"]
    assert "faster" not in entry and "top_categories" not in entry
    entry = verdict(store, "cnn", "train", "tiny")
    assert entry["verdict"] == "no ok eager run of torch to compare with"
    assert entry["frameworks"] == {}


def test_one_entry_per_workload_mode_and_size(store):
    for workload, mode, size in (("mlp", "train", "tiny"), ("cnn", "infer", "small"), ("cnn", "train", "tiny")):
        add_run(store, [{"matmul": 1.0}] * 2, workload=workload, mode=mode, size=size)
    groups = [(e["workload"], e["mode"], e["size"]) for e in build_report(store)["workloads"]]
    assert groups == [("cnn", "infer", "small"), ("cnn", "train", "tiny"), ("mlp", "train", "tiny")]
    only = build_report(store, ["mlp"])["workloads"]
    assert [e["workload"] for e in only] == ["mlp"]


def test_a_named_workload_without_runs_is_an_error(store):
    add_run(store, [{"matmul": 1.0}] * 2)
    add_run(store, [{"matmul": 1.0}] * 2, workload="cnn", status="failed")
    with pytest.raises(AnalysisError) as error:
        build_report(store, ["cnn"])
    assert str(error.value) == "no ok runs of cnn (run `xprof run` first)"
    assert build_report(Store.in_memory())["workloads"] == []  # nothing named: no error


def test_faster_side_reads_the_ratio_both_ways():
    assert faster_side("torch", "tensorflow", 2.0) == ("torch", "tensorflow", "2.00x faster per step")
    assert faster_side("torch", "tensorflow", 0.25) == ("tensorflow", "torch", "4.00x faster per step")
    assert faster_side("A", "B", 1.016) == ("A", "B", "1.02x faster per step")
