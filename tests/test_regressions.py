"""find_regressions on synthetic histories: each configuration's latest two runs against
the run-to-run spread of the runs before them, a state per configuration, Bonferroni
over every key of the check, nothing left out unsaid."""

import math

import pytest

from analysis.regressions import STATES, find_regressions
from analysis.runs import AnalysisError
from profiler.store import Store
from synthetic import add_run

E = math.exp(0.1)
BASELINE = (1 / E, 1.0, E) * 2  # matmul ms of six baseline runs: logs -0.1, 0, 0.1, twice


@pytest.fixture
def store():
    return Store.in_memory()


def _run(store, matmul, repeats=3, **kw):
    """A run whose repeats all spend `matmul` ms per step in matmul, with 4 ms steps
    pinned so that only matmul (and "(between ops)", the other way) moves."""
    return add_run(store, [{"matmul": matmul}] * repeats, step_ms=[4.0] * repeats, **kw)


def _state(result, **where):
    [entry] = [e for e in result["configurations"] if all(e[k] == v for k, v in where.items())] or [None]
    return entry


def test_two_slower_runs_are_a_regression_with_the_interval_of_the_spread(store):
    # started out of writing order: the baseline is listed oldest first
    baseline = [_run(store, m, started_at=100 + i, env={"framework_version": "2.1"})
                for i, m in reversed(list(enumerate(BASELINE)))][::-1]
    previous = _run(store, 2.0, started_at=200, env={"framework_version": "2.2"})
    latest = _run(store, 2.0, started_at=300, env={"framework_version": "2.2"})
    result = find_regressions(store)
    assert (result["configurations_checked"], result["comparisons"]) == (1, 3)  # step, matmul, (between ops)
    [found] = result["regressions"]
    assert {k: found[k] for k in ("workload", "framework", "mode", "execution", "size", "device", "key", "state")} == {
        "workload": "mlp", "framework": "torch", "mode": "train", "execution": "eager", "size": "tiny",
        "device": "cpu", "key": "matmul", "state": "regression"}
    # baseline logs: mean 0, variance 0.008 (5 df); the two latest: log 2 each. Standard
    # error sqrt(0.008) * sqrt(1/2 + 1/6); t(1 - 0.05/6, 5) = 3.5341 (Bonferroni over 3)
    assert (found["ratio"], found["ci_low"], found["ci_high"]) == pytest.approx((2.0, 1.54504, 2.58892), rel=1e-4)
    assert (found["baseline_ms"], found["previous_ms"], found["latest_ms"]) == pytest.approx((1.0, 2.0, 2.0))
    assert (found["latest_run"], found["previous_run"]) == (latest["id"], previous["id"])
    assert found["baseline_runs"] == [r["id"] for r in baseline]
    assert found["environment_changed"] == ["framework_version: '2.1' vs '2.2'"]
    entry = _state(result)
    assert (entry["state"], entry["why"]) == ("regression", "matmul: the latest 2 runs are slower")
    assert entry["runs"] == 8 and entry["recent_step_ms"] == [4.0] * 8
    keys = {k["key"]: k["state"] for k in entry["keys"]}
    assert keys == {"step": "ok", "matmul": "regression", "(between ops)": "improvement"}


def test_one_slower_run_is_suspicious_until_the_next_confirms_it(store):
    for m in BASELINE + (1.0,):
        _run(store, m)
    _run(store, 2.0)
    entry = _state(result := find_regressions(store))
    assert result["regressions"] == []
    # "(between ops)", the pinned step less matmul, moved the other way, as far
    assert entry["state"] == "suspicious" and "matmul: the latest run is slower, not confirmed yet" in entry["why"]
    _run(store, 1.0)  # the next night is back to normal: one bad run, not confirmed
    entry = _state(find_regressions(store))
    assert entry["state"] == "suspicious" and "matmul: the run before the latest was slower, the latest is not" in \
        entry["why"]
    _run(store, 1.0)
    assert _state(find_regressions(store))["state"] != "suspicious"


def test_two_faster_runs_are_an_improvement_and_never_a_regression(store):
    for m in BASELINE + (0.5, 0.5):  # the step is 3 ms more than matmul: it gets faster too
        add_run(store, [{"matmul": m}] * 3, step_ms=[3.0 + m] * 3)
    result = find_regressions(store)
    assert result["regressions"] == []
    entry = _state(result)
    assert entry["state"] == "improvement"
    assert {k["key"]: k["state"] for k in entry["keys"]} == {"step": "improvement", "matmul": "improvement",
                                                            "(between ops)": "ok"}


def test_too_few_runs_is_insufficient_data_saying_how_many(store):
    for m in (1.0, 1.0, 2.0, 2.0):
        _run(store, m)
    entry = _state(result := find_regressions(store))
    assert (entry["state"], entry["why"], entry["runs"], entry["needed"]) == (
        "insufficient data", "4 ok runs, needs 5", 4, 5)
    assert (result["configurations_checked"], result["comparisons"], result["regressions"]) == (0, 0, [])


def test_a_baseline_too_noisy_for_the_minimum_effect_is_unstable(store):
    for m in (1.0, 1.4, 0.8, 1.3, 0.7, 1.0, 1.1):  # steps vary as much
        add_run(store, [{"matmul": m}] * 3, step_ms=[4.0 * m] * 3)
    entry = _state(find_regressions(store))
    assert entry["state"] == "unstable"
    assert entry["why"].startswith("step time: the baseline runs spread too much to see a change smaller than ")
    assert entry["smallest_visible_change"] > 0.05
    # a steady one sees small changes and is ok, with what it can see
    for m in (1.0, 1.01, 0.99, 1.0, 1.01, 0.99, 1.0):
        add_run(store, [{"matmul": m}] * 3, step_ms=[4.0 * m] * 3, workload="cnn")
    entry = _state(find_regressions(store), workload="cnn")
    assert entry["state"] == "ok" and entry["smallest_visible_change"] < 0.05


@pytest.mark.parametrize("slow", [2.5, 1.9])
def test_a_split_latest_run_is_at_least_suspicious_and_its_slow_repeats_are_named(store, slow):
    """Two of five repeats slower: at 2.5x the outlier rule leaves them out, at 1.9x the
    run's median ignores them. Either way the state says so, never ok."""
    for m in BASELINE + (1.0,):
        add_run(store, [{"matmul": m}] * 5, step_ms=[4.0] * 5)
    latest = add_run(store, [{"matmul": 1.0}] * 5, step_ms=[4.0, 4.0 * slow, 4.0, 4.0 * slow, 4.0])
    entry = _state(find_regressions(store))
    assert entry["state"] == "suspicious"
    assert entry["why"] == (f"the latest run's repeats are split: repeats 1 ({slow}x), 3 ({slow}x) ran slower "
                            "than the median repeat")
    left_out = [(x["run"], x["repeat"], x["reason"]) for x in entry["left_out"]]
    reason = f"its median step was {slow}x the run's median repeat's"
    assert left_out == ([(latest["id"], 1, reason), (latest["id"], 3, reason)] if slow > 2 else [])


def test_runs_that_did_not_finish_are_listed_as_left_out(store):
    for m in BASELINE:
        _run(store, m)
    failed = _run(store, 1.0, status="failed")
    entry = _state(find_regressions(store))
    assert [(x["run"], x["repeat"], x["reason"]) for x in entry["left_out"]] == [(failed["id"], None, "failed")]


def test_one_wild_baseline_repeat_hides_no_slowdown(store):
    # 30 ms steps pinned: no repeat is an outlier by step time; one repeat's matmul is 20x
    for _ in range(4):
        add_run(store, [{"matmul": 1.0}] * 3, step_ms=[30.0] * 3)
    add_run(store, [{"matmul": 1.0}, {"matmul": 1.0}, {"matmul": 20.0}], step_ms=[30.0] * 3)
    for _ in range(2):
        add_run(store, [{"matmul": 2.2}] * 3, step_ms=[30.0] * 3)
    [found] = find_regressions(store)["regressions"]
    assert found["key"] == "matmul" and found["ratio"] == pytest.approx(2.2)


def test_intervals_are_adjusted_over_every_key_of_every_configuration(store):
    for m in BASELINE:
        _run(store, m)
    _run(store, 2.0)
    _run(store, 2.0)
    for _ in range(5):  # a second configuration, steady: 3 more comparisons
        _run(store, 1.0, framework="tensorflow")
    _run(store, 1.0, workload="cnn")  # too few runs: not compared
    result = find_regressions(store)
    assert (result["configurations_checked"], result["comparisons"]) == (2, 6)
    [found] = result["regressions"]
    # as in the first test but at t(1 - 0.05/12, 5) = 4.2193
    half = 4.219309 * math.sqrt(0.008) * math.sqrt(1 / 2 + 1 / 6)
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)), rel=1e-4)
    assert result["states"] == {**dict.fromkeys(STATES, 0), "regression": 1, "ok": 1, "insufficient data": 1}
    assert [e["state"] for e in result["configurations"]] == ["regression", "insufficient data", "ok"]  # worst first


def test_the_baseline_is_the_newest_runs_since_its_level_last_changed(store):
    for _ in range(4):
        _run(store, 3.0)  # old and slow
    recent = [_run(store, m) for m in (1 / E, 1.0, E, 1.0)]
    _run(store, 2.0)
    _run(store, 2.0)
    [found] = find_regressions(store, baseline=4)["regressions"]
    assert found["baseline_runs"] == [r["id"] for r in recent]
    # ten reach the old slow runs, but the baseline starts where its level last changed
    [found] = find_regressions(store)["regressions"]
    assert found["baseline_runs"] == [r["id"] for r in recent] and found["ratio"] == pytest.approx(2.0, rel=0.01)


def test_as_of_judges_the_store_as_it_was(store):
    for i, m in enumerate(BASELINE + (2.0, 2.0)):
        _run(store, m, started_at=100 + i)
    assert find_regressions(store, as_of=106)["regressions"] == []
    assert _state(find_regressions(store, as_of=106))["state"] == "suspicious"
    assert len(find_regressions(store, as_of=107)["regressions"]) == 1


def test_the_workload_filter_and_an_unknown_workload(store):
    for workload in ("mlp", "cnn"):
        for m in BASELINE + (2.0, 2.0):
            _run(store, m, workload=workload)
    result = find_regressions(store, "cnn")
    assert (result["configurations_checked"], result["comparisons"]) == (1, 3)
    assert [r["workload"] for r in result["regressions"]] == ["cnn"]
    _run(store, 1.0, workload="lstm", status="failed")
    for workload in ("transformer", "lstm"):
        with pytest.raises(AnalysisError) as error:
            find_regressions(store, workload)
        assert str(error.value) == f"no ok runs of {workload} (run `xprof run -w {workload}` first)"


def test_imports_of_one_repeat_are_points_of_the_same_series(store):
    """An imported trace is one repeat; run to run it is judged as any run is."""
    for m in BASELINE + (2.0, 2.0):
        add_run(store, [{"gemm": m, "elementwise": 0.5}], device="A100", source="import", unprofiled=False,
                workload="resnet")
    found = {r["key"]: r for r in find_regressions(store)["regressions"]}
    assert sorted(found) == ["gemm", "step"]  # an import's step: its profiled steps, here 2x its kernels
    assert (found["gemm"]["workload"], found["gemm"]["device"], found["gemm"]["ratio"]) == pytest.approx(
        ("resnet", "A100", 2.0))


def test_after_a_change_the_new_level_becomes_the_baseline(store):
    for night in range(16):
        _run(store, 2.0 if night >= 8 else 1.0, started_at=night)
        entry = _state(find_regressions(store))
        states = {9: "regression", 11: "insufficient data", 15: "ok"}
        if night in states:
            assert entry["state"] == states[night], (night, entry["why"])
    assert "matmul: 2 runs since it changed at run" in _state(find_regressions(store, as_of=11))["why"]


def test_a_real_gpu_trace_imported_night_after_night_is_guarded(tmp_path):
    """The A100 fixture imported as seven nights, its kernels jittered 1% each night and
    its matmul kernels 30% slower on the last two: a regression of matmul, from imports
    of one repeat each."""
    import gzip
    import json
    import random

    from analysis.taxonomy import classify_event
    from conftest import fixture_path
    from profiler.interchange.ingest import import_traces

    document = json.loads(gzip.decompress(fixture_path("kineto", "a100_alexnet_train.json.gz").read_bytes()))
    rng = random.Random(5)
    store = Store.open(tmp_path / "x.db")
    gemm = {"ampere_sgemm_32x32_sliced1x4_tn"}
    for night in range(7):
        slower = 1.3 if night >= 5 else 1.0
        events = [{**e, "dur": round(e["dur"] * (1 + rng.gauss(0, 0.01)) * (slower if e["name"] in gemm else 1), 3)}
                  if e.get("cat") == "kernel" else e for e in document["traceEvents"]]
        path = tmp_path / f"night{night}.json.gz"
        path.write_bytes(gzip.compress(json.dumps({**document, "traceEvents": events}).encode()))
        import_traces(store, [path], "alexnet", f"night {night}", classify_event, mode="train")
        if night == 5:
            assert _state(find_regressions(store))["state"] == "suspicious"
    result = find_regressions(store)
    assert [(r["key"], r["workload"], r["device"]) for r in result["regressions"]] == [
        ("matmul", "alexnet", "NVIDIA A100-PG509-200")]
    assert result["regressions"][0]["ratio"] == pytest.approx(1.3, rel=0.05)


def test_the_command_line_json_and_exit_code(tmp_path, capsys):
    import json

    import cli

    store = Store.open(tmp_path / "x.db")
    for m in BASELINE + (2.0,):
        _run(store, m)
    db = str(tmp_path / "x.db")
    assert cli.main(["regressions", "--fail-on-regression", "--json", "--db", db]) == 0  # suspicious: no exit 1
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"regressions", "configurations", "states", "configurations_checked", "comparisons",
                           "baseline", "min_effect", "confidence", "method"}
    [entry] = result["configurations"]
    assert set(entry) >= {"workload", "framework", "mode", "execution", "size", "device", "state", "why", "runs",
                          "needed", "latest_run", "smallest_visible_change", "recent_step_ms", "left_out", "keys",
                          "environment_changed"}
    _run(store, 2.0)
    assert cli.main(["regressions", "--fail-on-regression", "--db", db]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "1 regression" in out and "matmul: the latest 2 runs are slower" in out
    assert cli.main(["regressions", "--baseline", "2", "--db", db]) == 2
    assert "--baseline" in capsys.readouterr().err


def test_a_run_whose_repeats_disagree_cannot_confirm_a_regression(store):
    for m in BASELINE:
        _run(store, m)
    _run(store, 2.0)
    busy = add_run(store, [{"matmul": 2.0}] * 3, step_ms=[4.0, 6.5, 4.0])  # repeats 1.6x apart
    result = find_regressions(store)
    entry = _state(result)
    assert result["regressions"] == [] and entry["state"] == "suspicious"
    assert entry["why"].endswith(f"not confirmed: run {busy['id'][:8]}'s repeats spread 1.6x (a busy machine?)")


def test_an_unnamed_import_beside_named_runs_is_checked_without_error():
    store = Store.in_memory()
    for i in range(3):
        add_run(store, [{"matmul": 1.0}] * 2, started_at=10.0 + i)
    add_run(store, [{"matmul": 1.0}], workload=None, mode=None, size=None, dtype=None, source="import",
            started_at=20.0)
    entries = find_regressions(store)["configurations"]
    assert {e["workload"] for e in entries} == {"mlp", None}
