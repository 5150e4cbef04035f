"""diff, report and regressions on real tiny runs of both frameworks."""

import json
import sqlite3

import pytest

from conftest import one_line_error, run_xprof

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow

RUN = ("run", "--suite", "tiny", "--repeats", "3", "--steps", "8", "--warmup", "3", "--json")
# One compute thread per framework: on a shared 2-core machine, spinning thread pools
# slowed whole repeats of a baseline 100x and hid a 5x slowdown in its noise.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
AA_NIGHTS = 4  # with the first run, five of TensorFlow's mlp: the fewest regressions judges


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("analysis") / "xprof.db"
    run_xprof(*RUN, "-w", "cnn", "-w", "mlp", "--db", db, env=ONE_THREAD, check=0)
    # A/A: two runs of the same thing, their repeats interleaved, at the default repeats
    # and steps (the defaults are what must hold A/A on a noisy machine)
    run_xprof("run", "--suite", "tiny", "-w", "mlp", "-f", "torch", "--aa", "--json",
              "--db", db, env=ONE_THREAD, check=0)
    # nights: separate invocations of both frameworks, one after another, as a nightly job
    for _ in range(AA_NIGHTS):
        run_xprof(*RUN, "-w", "mlp", "--db", db, env=ONE_THREAD, check=0)
    return db


def _runs(db, **where):
    conn = sqlite3.connect(db)
    clause = " AND ".join(f"{k} = ?" for k in where)
    return [r[0] for r in conn.execute(
        f"SELECT id FROM runs WHERE {clause} ORDER BY started_at", tuple(where.values()))]


def test_cross_framework_diff_is_ranked_with_honest_intervals(store):
    result = json.loads(run_xprof("diff", "--workload", "cnn", "--json", "--db", store, check=0).stdout)
    assert result["a"]["framework"] == "torch" and result["b"]["framework"] == "tensorflow"
    for side in (result["a"], result["b"]):  # a repeat a busy machine slowed is left out, and said
        assert side["repeats"] + len(side["excluded_repeats"]) == 3
    rows = result["rows"]
    assert [abs(r["delta_ms"]) for r in rows] == sorted((abs(r["delta_ms"]) for r in rows), reverse=True)
    keys = {r["key"] for r in rows}
    assert "convolution" in keys
    if result["a"]["basis"] == result["b"]["basis"] == "cpu":  # time between ops is a CPU-timed row
        assert "(between ops)" in keys
    for row in rows + [result["step"]]:
        assert row["delta_ms"] == pytest.approx(row["b_ms"] - row["a_ms"])
        if row["a_ms"] > 0 and row["ratio"] is not None:  # the ratio is of the shown figures
            assert row["ratio"] == pytest.approx(row["b_ms"] / row["a_ms"])
        if row["ratio"] is not None and row["ci_low"] is not None and row["ci_high"] is not None:
            assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
        if row["significant"]:
            assert row["ci_low"] is not None and (row["ci_low"] > 1 or (row["ci_high"] or 0) < 1)
    conv = next(r for r in rows if r["key"] == "convolution")
    assert conv["a_ms"] > 0 and conv["b_ms"] > 0
    assert result["a"]["peak_bytes"] > 0 and result["b"]["peak_bytes"] > 0


@pytest.mark.parametrize("by", ["category", "op", "kernel"])
def test_a_over_a_shows_nothing_significant(store, by):
    first, second = _runs(store, workload="mlp", framework="torch")[-2:]
    result = json.loads(run_xprof("diff", first, second, "--by", by, "--json", "--db", store, check=0).stdout)
    assert len(result["rows"]) > 3
    assert [r["key"] for r in result["rows"] if r["significant"]] == []
    assert not result["step"]["significant"]
    assert result["environment_differences"] == []


def test_aa_pair_interleaves_its_repeats(store):
    a, b = _runs(store, workload="mlp", framework="torch")[1:3]  # after the first invocation's
    conn = sqlite3.connect(store)
    order = [run for run, in conn.execute(
        "SELECT run_id FROM steps WHERE run_id IN (?, ?) AND start_ns IS NOT NULL "
        "GROUP BY run_id, repeat ORDER BY min(start_ns)", (a, b))]
    # order alternates each repeat, so drift on the machine falls on both sides alike
    assert order == [a, b, b, a, a, b, b, a, a, b]


def test_diff_table_on_a_terminal(store):
    out = run_xprof("diff", "--workload", "cnn", "--db", store, check=0).stdout
    assert "convolution" in out and "B/A [interval]" in out and "peak memory" in out


def test_report_gives_a_verdict_per_workload(store):
    report = json.loads(run_xprof("report", "--json", "--db", store, check=0).stdout)
    entries = {e["workload"]: e for e in report["workloads"]}
    assert set(entries) == {"cnn", "mlp"}
    for entry in entries.values():
        assert set(entry["frameworks"]) == {"torch", "tensorflow"}
        assert entry["ratio"] > 0 and entry["verdict"]
        assert entry["ci_low"] <= entry["ratio"] <= entry["ci_high"]
        assert len(entry["top_categories"]) <= 3
        for side in entry["frameworks"].values():
            assert side["step_ms"] > 0 and side["peak_bytes"] > 0
    text = run_xprof("report", "--db", store, check=0).stdout
    assert "cnn" in text and "TF/torch" in text


def test_separate_invocations_of_the_same_thing_are_no_regression(store):
    """A/A as nightly jobs run: not interleaved, each its own invocation, both frameworks."""
    result = json.loads(run_xprof("regressions", "--json", "--db", store, check=0).stdout)
    mlp = {e["framework"]: e for e in result["configurations"] if e["workload"] == "mlp"}
    assert (mlp["torch"]["runs"], mlp["tensorflow"]["runs"]) == (3 + AA_NIGHTS, 1 + AA_NIGHTS)
    for framework in ("torch", "tensorflow"):
        assert mlp[framework]["state"] in ("ok", "unstable", "suspicious"), mlp[framework]
    assert result["regressions"] == [] and result["configurations_checked"] == 2
    for cnn in (e for e in result["configurations"] if e["workload"] == "cnn"):
        # a repeat a busy machine slowed makes it suspicious, saying the rest too
        assert cnn["state"] in ("insufficient data", "suspicious") and cnn["why"].endswith("1 ok run, needs 5")


def test_regressions_flags_an_injected_slowdown_once_two_runs_have_it(store, tmp_path):
    db = tmp_path / "copy.db"
    sqlite3.connect(store).backup(sqlite3.connect(db))
    # two runs of five repeats, interleaved, both slowed. The model 40 times a step: tiny
    # mlp's torch step times spread across invocations here enough that a 5x slowdown
    # was sometimes under what the baseline can see (`unstable`, 9.3x on one run)
    slowed = run_xprof("run", "--suite", "tiny", "-w", "mlp", "-f", "torch", "--aa", "--json", "--db", db,
                       env={**ONE_THREAD, "XPROF_INJECT_SLOWDOWN": "mlp:40"}, check=0)
    done = run_xprof("regressions", "--fail-on-regression", "--json", "--db", db)
    result = json.loads(done.stdout)
    torch_mlp = next(e for e in result["configurations"] if (e["workload"], e["framework"]) == ("mlp", "torch"))
    seen = f"run: {slowed.stderr[-1500:]}\nmlp torch: {json.dumps(torch_mlp)[-3000:]}"
    matmul = next(k for k in torch_mlp["keys"] if k["key"] == "matmul")
    # every key sees it, whatever the machine was doing
    assert matmul["state"] == "regression" and matmul["ratio"] > 2 and matmul["ci_low"] > 1, seen
    assert torch_mlp["environment_changed"] == [], seen
    if torch_mlp["state"] == "suspicious":
        # a slowed run whose repeats disagreed (a busy machine: it happened in CI) cannot
        # confirm it: said, and not a failure of the night
        assert "not confirmed: run" in torch_mlp["why"] and torch_mlp["why"].endswith("(a busy machine?)"), seen
        assert done.returncode == 0 and result["regressions"] == [], seen
        return
    assert torch_mlp["state"] == "regression" and done.returncode == 1, seen
    found = result["regressions"]
    assert "matmul" in {r["key"] for r in found}, found
    matmul = next(r for r in found if r["key"] == "matmul")
    assert matmul["workload"] == "mlp" and matmul["framework"] == "torch" and matmul["state"] == "regression"
    assert matmul["latest_run"] == torch_mlp["latest_run"] and matmul["environment_changed"] == []
    text = run_xprof("regressions", "--db", db).stdout
    assert "regression" in text and "matmul: the latest 2 runs are slower" in " ".join(text.split())


def test_bad_references_get_one_line(store, tmp_path):
    assert "no run with id 'ffffffffffff'" in one_line_error(
        run_xprof("diff", "ffffffffffff", "eeeeeeeeeeee", "--db", store))
    db = tmp_path / "copy.db"
    sqlite3.connect(store).backup(sqlite3.connect(db))
    conn = sqlite3.connect(db)
    for suffix in ("1", "2"):
        conn.execute("INSERT INTO runs (id, status, framework, started_at, source) "
                     "VALUES (?, 'ok', 'torch', 0, 'profile')", ("abcabc00000" + suffix,))
    conn.commit()
    assert "is ambiguous: 2 runs match" in one_line_error(run_xprof("diff", "abcabc", "abcabc", "--db", db))
    cnn = _runs(store, workload="cnn", framework="torch")[0]
    mlp = _runs(store, workload="mlp", framework="torch")[0]
    assert "different workloads" in one_line_error(run_xprof("diff", cnn, mlp, "--db", store))
    assert "compared with itself" in one_line_error(run_xprof("diff", cnn, cnn, "--db", store))
    assert "is not a run id" in one_line_error(run_xprof("diff", "%", cnn, "--db", store))
    assert "no ok small train run of 'cnn' in torch (run `xprof run -w cnn -f torch --suite small" in \
        one_line_error(run_xprof("diff", "--workload", "cnn", "--size", "small", "--db", store))
    assert "no ok runs of lstm" in one_line_error(run_xprof("regressions", "-w", "lstm", "--db", store))
    assert "no ok train run of 'lstm' in torch" in one_line_error(
        run_xprof("diff", "--workload", "lstm", "--db", store))
    assert "no ok runs of lstm" in one_line_error(run_xprof("report", "-w", "lstm", "--db", store))
    assert "no store at" in one_line_error(run_xprof("regressions", "--db", tmp_path / "none.db"))
