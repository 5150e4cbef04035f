"""`xprof claims`: each verdict from synthetic stores whose step times the tests choose,
the claims file as data, the code-line counts, and a real `claims --run` at size tiny."""

import json
import re
import sqlite3
import textwrap

import pytest

import cli
from analysis.claims import (HOLDS, NO_DIFFERENCE, NOT_MEASURED, REVERSED, Claim, ClaimsError, Comparison, Machine,
                             Side, check_claims, load_claims, needed_requests)
from analysis.code_lines import _lines, code_lines
from analysis.stats import summarize
from profiler.store import Store
from profiler.telemetry.sampling import TelemetrySample
from tests.conftest import default_device, run_xprof
from tests.synthetic import add_run
from workloads import WORKLOADS, get_workload
from workloads.data import make_batch

CPU = Machine("cpu", 0, "nvmlInit failed: NVML Shared Library Not Found")
TORCH_EAGER, TF_GRAPH = Side("torch", "eager"), Side("tensorflow", "graph")
CLAIM_1 = Claim(1, "PyTorch trains faster.", "a study", "train step time", "step_time",
                (Comparison("train", TORCH_EAGER, TF_GRAPH),))


def _pair(store, torch_ms, tf_ms, workload="mlp", mode="train", **options):
    """A torch eager and a TensorFlow graph run whose repeats' steps take these times."""
    for framework, times in (("torch", torch_ms), ("tensorflow", tf_ms)):
        add_run(store, [{"matmul": t / 2} for t in times], framework=framework, workload=workload, mode=mode,
                step_ms=list(times), **options)


def _verdicts(store, claims=(CLAIM_1,), machine=CPU, workloads=("mlp",), **options):
    result = check_claims(store, "tiny", machine, list(workloads), list(claims), **options)
    return result, [v for claim in result["claims"] for v in claim["verdicts"]]


@pytest.mark.parametrize("torch_ms, tf_ms, expected, excludes_one", [
    ([1.0, 1.02, 0.98], [2.0, 2.06, 1.95], HOLDS, True),          # torch twice as fast, tight
    ([2.0, 2.06, 1.95], [1.0, 1.02, 0.98], REVERSED, True),       # TensorFlow twice as fast
    ([1.0, 1.3, 0.8], [1.05, 0.85, 1.25], NO_DIFFERENCE, False),  # overlapping
    ([1.0, 1.9, 0.6], [2.2, 3.5, 1.0], NO_DIFFERENCE, False),     # 1.9x apart, but the interval holds 1
    ([1.0, 1.001, 0.999], [1.03, 1.031, 1.029], NO_DIFFERENCE, True),  # 3% apart: below --min-effect
])
def test_a_verdict_is_holds_or_reversed_only_where_its_interval_excludes_one(torch_ms, tf_ms, expected,
                                                                             excludes_one):
    store = Store.in_memory()
    _pair(store, torch_ms, tf_ms)
    _, (verdict,) = _verdicts(store)
    assert verdict["verdict"] == expected
    assert verdict["ratio"] == pytest.approx(summarize(tf_ms) / summarize(torch_ms))
    assert (verdict["ci_low"] > 1 or verdict["ci_high"] < 1) == excludes_one
    if expected == HOLDS:
        assert verdict["ci_low"] > 1
    if expected == REVERSED:
        assert verdict["ci_high"] < 1
    assert len(verdict["runs"]) == 2 and verdict["values"]["unit"] == "ms"


def test_a_repeat_left_out_of_a_verdict_is_named():
    store = Store.in_memory()
    _pair(store, [1.0, 3.0, 1.02, 0.98], [2.0, 2.06, 1.95, 2.01])
    result, (verdict,) = _verdicts(store)
    assert verdict["verdict"] == HOLDS and verdict["ratio"] == pytest.approx(summarize([2.0, 2.06, 1.95, 2.01]) / summarize([1.0, 1.02, 0.98]))
    assert len(verdict["notes"]) == 1 and verdict["notes"][0].startswith("mlp: torch eager (")
    assert "repeat 1 left out, its median step was 3.0x the other repeats'" in verdict["notes"][0]


def test_a_claim_without_its_runs_is_not_measured_and_names_the_run_that_would_measure_it():
    store = Store.in_memory()
    add_run(store, [{"matmul": 0.5}] * 3, framework="torch", step_ms=[1.0, 1.0, 1.0])
    result, (verdict,) = _verdicts(store)
    assert verdict["verdict"] == NOT_MEASURED and verdict["ratio"] is None
    assert verdict["reason"] == "no ok run of tensorflow graph"
    assert verdict["command"] == "xprof run -w mlp -f tensorflow --suite tiny --mode train --exec graph"
    assert result["claims"][0]["summary"] == "torch eager vs tensorflow graph, train: not measured on 1 of 1 workload"
    # one repeat a side: measured, but no interval, so never holds
    _pair(store, [1.0], [3.0])
    _, (verdict,) = _verdicts(store)
    assert verdict["verdict"] == NO_DIFFERENCE and verdict["ci_low"] is None and "fewer than 2 repeats" in verdict["reason"]


def test_the_summary_counts_each_verdict_over_the_workloads():
    store = Store.in_memory()
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95], workload="mlp")
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95], workload="cnn")
    _pair(store, [2.0, 2.06, 1.95], [1.0, 1.02, 0.98], workload="lstm")
    _pair(store, [1.0, 1.3, 0.8], [1.05, 0.85, 1.25], workload="linear")
    result, verdicts = _verdicts(store, workloads=("mlp", "cnn", "lstm", "linear", "matmul"))
    assert [v["verdict"] for v in verdicts] == [HOLDS, HOLDS, REVERSED, NO_DIFFERENCE, NOT_MEASURED]
    assert result["claims"][0]["summary"] == ("torch eager vs tensorflow graph, train: holds on 2 of 5 workloads, "
                                              "reversed on 1, n.s. on 1, not measured on 1")


def test_inference_at_batch_one_is_judged_on_batch_one_runs_only():
    claim = next(c for c in load_claims() if c.id == 5)
    store = Store.in_memory()
    # at the size's batch TensorFlow is faster; at batch 1 torch is
    _pair(store, [2.0, 2.06, 1.95], [1.0, 1.02, 0.98], mode="infer")
    _, verdicts = _verdicts(store, [claim])
    assert [(v["batch_size"], v["verdict"]) for v in verdicts] == [(None, HOLDS), (1, NOT_MEASURED)]
    assert "xprof run -w mlp -f tensorflow --suite tiny --mode infer --exec graph --batch-size 1" in verdicts[1]["command"]
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95], mode="infer", batch_size=1)
    _, verdicts = _verdicts(store, [claim])
    assert [(v["batch_size"], v["verdict"]) for v in verdicts] == [(None, HOLDS), (1, REVERSED)]
    assert verdicts[0]["runs"] != verdicts[1]["runs"]


def test_efficiency_is_achieved_flops_per_device_kind_present():
    claim = next(c for c in load_claims() if c.id == 3)
    store = Store.in_memory()
    _pair(store, [2.0, 2.06, 1.95], [1.0, 1.02, 0.98])
    _pair(store, [2.0, 2.06, 1.95], [1.0, 1.02, 0.98], mode="infer")
    result, verdicts = _verdicts(store, [claim])
    train = verdicts[0]
    flops = get_workload("mlp").flops_per_step("tiny", "train")
    assert train["verdict"] == HOLDS and train["values"]["unit"] == "GFLOP/s"
    assert train["values"]["claimed"] == pytest.approx(flops / summarize([1.0, 1.02, 0.98]) / 1e6)
    assert train["values"]["claimed"] / train["values"]["other"] == pytest.approx(train["ratio"])
    assert [v["device"] for v in verdicts] == ["cpu", "cpu"]
    assert result["claims"][0]["summary"].endswith("gpu: not measured here (no GPU the frameworks see)")
    # with a GPU: the CPU and the GPU, each judged on its own runs
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95], device="gpu:0")
    _, verdicts = _verdicts(store, [claim], Machine("gpu:0", 1, None))
    assert [(v["mode"], v["device"], v["verdict"]) for v in verdicts] == [
        ("train", "cpu", HOLDS), ("train", "gpu:0", REVERSED), ("infer", "cpu", HOLDS), ("infer", "gpu:0", NOT_MEASURED)]
    assert "--device gpu:0" in verdicts[3]["command"]


def test_gpu_utilization_needs_a_gpu_and_nvml_and_is_judged_on_the_runs_samples():
    claim = next(c for c in load_claims() if c.id == 6)
    store = Store.in_memory()
    result, verdicts = _verdicts(store, [claim])
    assert verdicts == [] and result["claims"][0]["not_measured"] == (
        "needs an NVIDIA GPU: no GPU here (NVML: nvmlInit failed: NVML Shared Library Not Found)")
    result, _ = _verdicts(store, [claim], Machine("gpu:0", 1, "nvmlInit failed: Driver Not Loaded"))
    assert "NVML is unavailable (nvmlInit failed: Driver Not Loaded)" in result["claims"][0]["summary"]
    _pair(store, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], device="gpu:0")
    gpu = Machine("gpu:0", 1, None)
    _, (verdict,) = _verdicts(store, [claim], gpu)
    assert verdict["verdict"] == NOT_MEASURED and "no NVML samples" in verdict["reason"]
    for run in store.runs():
        busy = [85, 88, 90, 86] if run["framework"] == "tensorflow" else [45, 50, 40, 48]
        store.add_samples([TelemetrySample(ts_ns=i, source="nvml", device="gpu:0", utilization_pct=u)
                           for i, u in enumerate(busy)] +
                          [TelemetrySample(ts_ns=9, source="nvml", device="gpu:1", utilization_pct=1.0)], run["id"])
    _, (verdict,) = _verdicts(store, [claim], gpu)
    assert verdict["verdict"] == HOLDS and verdict["ci_low"] > 1
    assert verdict["values"]["claimed"] == pytest.approx(87.25) and verdict["values"]["samples"] == [4, 4]
    assert verdict["ratio"] == pytest.approx(summarize([85, 88, 90, 86]) / summarize([45, 50, 40, 48]))


@pytest.mark.parametrize("tensorflow_busy, torch_busy, expected", [
    ([45, 50, 40, 48], [85, 88, 90, 86], REVERSED),
    ([60, 80, 40, 70], [65, 45, 75, 55], NO_DIFFERENCE),   # 2.5 points apart, the samples overlap
    ([81, 80, 82, 81], [79, 80, 78, 79], NO_DIFFERENCE),   # 2.5% apart: below --min-effect
])
def test_gpu_utilization_is_judged_by_its_interval_not_its_ratio(tensorflow_busy, torch_busy, expected):
    claim = next(c for c in load_claims() if c.id == 6)
    store = Store.in_memory()
    _pair(store, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], device="gpu:0")
    for run in store.runs():
        busy = tensorflow_busy if run["framework"] == "tensorflow" else torch_busy
        store.add_samples([TelemetrySample(ts_ns=i, source="nvml", device="gpu:0", utilization_pct=u)
                           for i, u in enumerate(busy)], run["id"])
    _, (verdict,) = _verdicts(store, [claim], Machine("gpu:0", 1, None))
    assert verdict["verdict"] == expected
    if expected == REVERSED:
        assert verdict["ci_high"] < 1


def test_scaling_is_never_measured_on_one_device_and_says_why():
    claim = next(c for c in load_claims() if c.id == 7)
    for machine, words in ((CPU, "no GPUs"), (Machine("gpu:0", 1, None), "1 GPU "), (Machine("gpu:0", 2, None), "2 GPUs")):
        result, verdicts = _verdicts(Store.in_memory(), [claim], machine)
        assert verdicts == [] and words in result["claims"][0]["not_measured"]
        assert "xprof's workloads each run on one device" in result["claims"][0]["summary"]


def test_lines_of_code_are_counted_from_the_workloads_and_judged_exactly():
    claim = next(c for c in load_claims() if c.id == 8)
    result, verdicts = _verdicts(Store.in_memory(), [claim], workloads=list(WORKLOADS))
    assert {v["workload"] for v in verdicts} == set(WORKLOADS) and all(v["runs"] == [] for v in verdicts)
    cnn = next(v for v in verdicts if v["workload"] == "cnn")
    torch_lines, tf_lines = code_lines("cnn", "torch"), code_lines("cnn", "tensorflow")
    assert cnn["values"]["other"] == sum(torch_lines.values()) and cnn["values"]["claimed"] == sum(tf_lines.values())
    # the torch cnn is two nn.Module classes; Keras's is functional calls
    assert torch_lines["model"] > tf_lines["model"] and cnn["verdict"] == HOLDS
    assert cnn["ci_low"] == cnn["ci_high"] == cnn["ratio"]
    for v in verdicts:
        assert v["verdict"] == (NO_DIFFERENCE if abs(v["ratio"] - 1) <= 0.05 else HOLDS if v["ratio"] > 1 else REVERSED)


def test_a_line_count_leaves_out_blank_lines_comments_and_docstrings():
    import ast

    source = textwrap.dedent('''\
        def f(x):
            """A docstring
            over two lines."""
            # a comment

            y = (x +
                 1)  # a trailing comment counts: the line holds code
            return y
        ''')
    node = ast.parse(source).body[0]
    assert sorted(_lines(source.splitlines(), node)) == [1, 6, 7, 8]


def test_the_claims_file_is_data_and_a_bad_one_is_one_clear_error(tmp_path):
    claims = load_claims()
    assert [c.id for c in claims] == list(range(1, 9))
    assert all(c.claim and c.source and c.test for c in claims)
    added = tmp_path / "claims.toml"
    added.write_text(textwrap.dedent('''\
        [[claim]]
        id = 9
        claim = "torch compiled infers faster than TensorFlow graph."
        source = "a new article"
        test = "inference step time"
        kind = "step_time"
          [[claim.comparison]]
          mode = "infer"
          claimed = { framework = "torch", execution = "compiled" }
          other = { framework = "tensorflow", execution = "graph" }
        '''))
    store = Store.in_memory()
    add_run(store, [{"matmul": 0.5}] * 3, framework="torch", execution="compiled", mode="infer", step_ms=[1.0, 1.01, 0.99])
    add_run(store, [{"matmul": 0.5}] * 3, framework="tensorflow", mode="infer", step_ms=[3.0, 3.02, 2.99])
    _, (verdict,) = _verdicts(store, load_claims(added))
    assert verdict["verdict"] == HOLDS and verdict["comparison"] == "torch compiled vs tensorflow graph, infer"
    for text, words in (('kind = "step_time"', "kind 'vibes' is not one of"),
                        ('framework = "torch"', re.escape("names what xprof does not run: ['jax']"))):
        bad = tmp_path / "bad.toml"
        bad.write_text(added.read_text().replace(text, text.replace("step_time", "vibes").replace('"torch"', '"jax"')))
        with pytest.raises(ClaimsError, match=words):
            load_claims(bad)
    (tmp_path / "broken.toml").write_text("[[claim]\n")
    with pytest.raises(ClaimsError, match="cannot read claims file"):
        load_claims(tmp_path / "broken.toml")


def test_claims_run_asks_for_exactly_the_missing_runs():
    store = Store.in_memory()
    _pair(store, [1.0, 1.0, 1.0], [2.0, 2.0, 2.0])  # mlp train, both usual styles
    requests = needed_requests(store, "tiny", CPU, ["mlp"], steps=3, warmup=1, repeats=2)
    wanted = {(r.framework, r.mode, r.execution, r.batch_size) for r in requests}
    assert wanted == {("tensorflow", "train", "eager", None), ("torch", "train", "compiled", None),
                      ("torch", "infer", "eager", None), ("tensorflow", "infer", "graph", None),
                      ("torch", "infer", "eager", 1), ("tensorflow", "infer", "graph", 1)}
    assert len(requests) == len(wanted) and {(r.size, r.device, r.dtype, r.repeats) for r in requests} == {
        ("tiny", "cpu", "fp32", 2)}
    # on a GPU host: the GPU for every claim, the CPU too for claim 3's other device kind
    gpu = needed_requests(store, "tiny", Machine("gpu:0", 1, None), ["mlp"], steps=3, warmup=1, repeats=2)
    assert {r.device for r in gpu} == {"cpu", "gpu:0"}
    assert {(r.mode, r.execution) for r in gpu if r.device == "cpu"} == {("infer", "eager"), ("infer", "graph")}


def test_a_batch_size_replaces_the_sizes_batch_only():
    mlp = get_workload("mlp")
    assert mlp.config("tiny", 1) == {**mlp.config("tiny"), "batch": 1}
    assert make_batch("mlp", "tiny", 0, 1).inputs.shape == (1, 64)
    assert make_batch("matmul", "tiny", 0, 3).inputs.shape == (3, 128)  # a matmul's batch is its rows
    assert mlp.flops_per_step("tiny", "infer", 1) * 32 == mlp.flops_per_step("tiny", "infer")
    with pytest.raises(ValueError, match="batch size must be a whole number of at least 1, not 0"):
        mlp.config("tiny", 0)
    # asked for by its number, the size's own batch is the size's own configuration
    from profiler.collect.settings import RunSettings

    requests = RunSettings(suite="tiny", workloads=["mlp", "cnn"], frameworks=["torch"], batch_size=32).requests()
    assert [(r.workload, r.batch_size) for r in requests] == [("mlp", None), ("cnn", 32)]


def _synthetic_db(tmp_path):
    store = Store.in_memory()
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95])
    db = tmp_path / "x.db"
    store.connection.backup(sqlite3.connect(db))
    return db, store


def test_the_json_shape_and_the_exports_table(tmp_path, capsys):
    db, store = _synthetic_db(tmp_path)
    assert cli.main(["claims", "--size", "tiny", "-w", "mlp", "--device", "cpu", "--json", "--db", str(db)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"host", "cpu", "logical_cores", "gpus", "frameworks"} <= set(result["environment"])
    assert [c["id"] for c in result["claims"]] == list(range(1, 9))
    for claim in result["claims"]:
        assert {"id", "claim", "source", "test", "summary", "verdicts"} <= set(claim)
        for verdict in claim["verdicts"]:
            assert {"workload", "mode", "verdict", "ratio", "ci_low", "ci_high", "runs"} <= set(verdict)
    assert result["claims"][0]["verdicts"][0]["verdict"] == HOLDS
    assert cli.main(["claims", "--size", "tiny", "-w", "mlp", "--device", "cpu", "--db", str(db)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "1. PyTorch trains faster than TensorFlow" in text and "holds on 1 of 1 workload" in text
    assert "not measured here: needs more than one device" in text
    assert "xprof claims --run --size tiny" in text
    assert cli.main(["claims", "--size", "tiny", "-w", "mlp", "--device", "cpu", "--markdown", "--db", str(db)]) == 0
    assert "| 1 | mlp | torch eager vs tensorflow graph, train | holds |" in capsys.readouterr().out
    run = store.runs()[0]["id"]
    for fmt in ("md", "html"):
        assert cli.main(["export", run, "--format", fmt, "-o", str(tmp_path / f"r.{fmt}"), "--db", str(db)]) == 0
        page = (tmp_path / f"r.{fmt}").read_text()
        assert "The articles' claims, checked on this machine" in page and "holds on 1 of 1 workload" in page


def test_diff_report_and_regressions_keep_batch_sizes_apart(tmp_path, capsys):
    from analysis.regressions import find_regressions
    from analysis.report import build_report

    store = Store.in_memory()
    _pair(store, [2.0, 2.06, 1.95], [1.0, 1.02, 0.98], mode="infer")
    _pair(store, [1.0, 1.02, 0.98], [2.0, 2.06, 1.95], mode="infer", batch_size=1)
    db = tmp_path / "x.db"
    store.connection.backup(sqlite3.connect(db))
    for batch, faster in ((None, "tensorflow"), ("1", "torch")):
        args = ["diff", "-w", "mlp", "--mode", "infer", "--json", "--db", str(db)] + (["--batch-size", batch] if batch else [])
        assert cli.main(args) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["a"]["batch_size"] == result["b"]["batch_size"] == (int(batch) if batch else None)
        assert (result["step"]["ratio"] < 1) == (faster == "tensorflow") and result["notes"] == []
    entries = build_report(store)["workloads"]
    assert [(e["batch_size"], e["faster"]) for e in entries] == [(None, "tensorflow"), (1, "torch")]
    assert {c["batch_size"] for c in find_regressions(store)["configurations"]} == {None, 1}
    assert cli.main(["report", "--db", str(db)]) == 0
    assert "tiny b=1" in capsys.readouterr().out
    # with only batch-1 runs of a framework, a diff at the size's batch says where its runs are
    only_one = Store.in_memory()
    _pair(only_one, [1.0, 1.0, 1.0], [2.0, 2.0, 2.0], mode="infer", batch_size=1)
    only_one.connection.backup(sqlite3.connect(tmp_path / "one.db"))
    assert cli.main(["diff", "-w", "mlp", "--mode", "infer", "--db", str(tmp_path / "one.db")]) == 1
    assert capsys.readouterr().err.strip() == (
        "xprof: error: no ok infer run of 'mlp' in torch (run `xprof run -w mlp -f torch --mode infer`; "
        "there are runs at --batch-size 1)")


@pytest.mark.slow
def test_this_machine_as_the_claims_see_it():
    from analysis.claims import machine_here
    from tests.conftest import machine_nvml

    machine = machine_here(None)
    assert machine.device == default_device()
    assert (machine.nvml is None) == (machine_nvml()["nvml"] == "available")
    assert machine_here("cpu").device == "cpu"


@pytest.mark.slow
def test_claims_run_measures_what_is_missing_in_both_frameworks_then_answers(tmp_path):
    db = tmp_path / "claims.db"
    args = ("claims", "--run", "--size", "tiny", "-w", "linear", "--repeats", "2", "--steps", "3", "--warmup", "1",
            "--json", "--db", db)
    result = json.loads(run_xprof(*args, check=0, timeout=1200).stdout)
    verdicts = {c["id"]: c["verdicts"] for c in result["claims"]}
    for claim in (1, 2, 3, 4, 5, 8):
        assert verdicts[claim] and all(v["verdict"] != NOT_MEASURED for v in verdicts[claim]), verdicts[claim]
    assert {c["id"]: c["not_measured"] is not None for c in result["claims"]}[7]
    if default_device() == "cpu":
        assert result["claims"][5]["not_measured"].startswith("needs an NVIDIA GPU")
    runs = {(r["framework"], r["mode"], r["execution"], r["batch_size"]) for r in Store.open(db).runs()}
    assert ("torch", "infer", "eager", 1) in runs and ("tensorflow", "infer", "graph", 1) in runs
    assert ("torch", "train", "compiled", None) in runs and ("tensorflow", "train", "eager", None) in runs
    assert all(r["status"] == "ok" for r in Store.open(db).runs())
    # a second --run finds nothing missing: no new runs, the same verdicts
    again = json.loads(run_xprof(*args, check=0, timeout=600).stdout)
    assert len(Store.open(db).runs()) == len(runs) == (8 if default_device() == "cpu" else 10)
    assert [v["runs"] for c in again["claims"] for v in c["verdicts"]] == [
        v["runs"] for c in result["claims"] for v in c["verdicts"]]
