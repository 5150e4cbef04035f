"""xprof history on synthetic stores: each configuration's series, change points placed
where the level moved and nowhere else, what was left out, the JSON shape, the CLI."""

import json
import math
import random

import pytest

import cli
from analysis.history import build_history, change_points, nightly_check
from analysis.runs import AnalysisError
from profiler.store import Store
from synthetic import add_run
from views.markdown import render_cycle_summary

DAY = 86400.0


def _noisy(seed: int, n: int, levels: dict[int, float], sd: float = 0.02) -> list[float]:
    """Logs of a series with `sd` noise whose level changes to levels[i] from run i on."""
    rng = random.Random(seed)
    level, logs = 0.0, []
    for i in range(n):
        level = math.log(levels[i]) if i in levels else level
        logs.append(level + rng.gauss(0, sd))
    return logs


def test_change_points_are_placed_where_the_level_moved():
    for seed in range(20):
        assert change_points(_noisy(seed, 30, {12: 1.2})) == [12]
        assert change_points(_noisy(seed, 40, {10: 1.3, 25: 1.0})) == [10, 25]
        assert change_points(_noisy(seed, 30, {})) == []  # noise alone: no change
    assert change_points(_noisy(0, 30, {15: 1.03})) == []  # under the minimum effect
    assert change_points([0.0, 0.0, 1.0]) == []  # too short to have two runs a side
    assert change_points([0.0] * 6 + [math.log(2)] * 6) == [6]  # no noise at all
    assert change_points(_noisy(1, 20, {19: 1.5})) == []  # one odd last run is not a change


@pytest.fixture
def store():
    store = Store.in_memory()
    rng = random.Random(7)
    for night in range(16):  # torch's step time goes from 4 to 5 ms at night 10
        level = 5.0 if night >= 10 else 4.0
        noise = 1 + rng.gauss(0, 0.01)
        add_run(store, [{"matmul": 1.0 * noise}] * 3, step_ms=[level * noise] * 3,
                started_at=1.7e9 + night * DAY, env={"framework_version": "2.13" if night >= 10 else "2.12"})
        add_run(store, [{"matmul": 2.0 * noise}] * 3, framework="tensorflow", step_ms=[6.0 * noise] * 3,
                started_at=1.7e9 + night * DAY + 60)
    add_run(store, [{"matmul": 1.0}] * 3, status="failed", started_at=1.7e9 + 12 * DAY + 5)
    return store


def test_history_has_each_configuration_series_and_its_change(store):
    result = build_history(store)
    assert (result["key"], result["by"]) == ("step", "category")
    torch, tf = sorted(result["configurations"], key=lambda h: h["framework"], reverse=True)
    assert (torch["framework"], tf["framework"]) == ("torch", "tensorflow")
    assert len(torch["series"]) == 16 and [p["key"] for p in torch["series"]] == ["step"] * 16
    assert [p["value_ms"] for p in torch["series"][:10]] == pytest.approx([4.0] * 10, rel=0.05)
    [change] = torch["change_points"]
    runs = [p["run"] for p in torch["series"]]
    assert change["run"] == runs[10] and change["key"] == "step"
    assert change["ratio"] == pytest.approx(1.25, rel=0.02)
    assert (change["before_ms"], change["after_ms"]) == pytest.approx((4.0, 5.0), rel=0.02)
    assert change["environment_changed"] == ["framework_version: '2.12' vs '2.13'"]
    assert tf["change_points"] == []
    [failed] = torch["left_out"]
    assert failed["repeat"] is None and failed["reason"] == "failed"


def test_history_of_a_category_and_the_newest_runs_only(store):
    result = build_history(store, key="matmul", last=5)
    assert all(len(h["series"]) == 5 and h["change_points"] == [] for h in result["configurations"])
    with pytest.raises(AnalysisError, match="no run has a category named 'gemm'"):
        build_history(store, key="gemm")
    with pytest.raises(AnalysisError, match="no ok runs of cnn"):
        build_history(store, "cnn")


def test_the_history_json_shape_and_text(store, tmp_path, capsys):
    db = tmp_path / "x.db"
    store.connection.backup(__import__("sqlite3").connect(db))
    assert cli.main(["history", "--json", "--db", str(db)]) == 0
    result = json.loads(capsys.readouterr().out)
    h = result["configurations"][0]
    assert {"workload", "framework", "mode", "execution", "size", "dtype", "device", "series", "change_points"} <= set(h)
    assert {"run", "started_at", "key", "value_ms"} <= set(h["series"][0])
    torch = next(h for h in result["configurations"] if h["framework"] == "torch")
    assert {"run", "started_at", "key", "before_ms", "after_ms", "ratio"} <= set(torch["change_points"][0])
    assert cli.main(["history", "-w", "mlp", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "mlp train tiny fp32, torch eager on cpu: step, 16 runs" in text
    assert "changed at run" in text and "4.0" in text and "(1.25x)" in text
    assert "environment: framework_version: '2.12' vs '2.13'" in text
    assert "left out: run" in text and ": failed" in text
    assert cli.main(["history", "--key", "nothing", "--db", str(db)]) == 1
    assert "no run has a category named 'nothing'" in capsys.readouterr().err


def test_the_nightly_summary_lists_states_and_recent_changes(store):
    check = nightly_check(store, baseline=10)
    assert [c["run"] for c in check["change_points"]] == [
        next(h for h in build_history(store)["configurations"] if h["framework"] == "torch")["change_points"][0]["run"]]
    text = render_cycle_summary({"number": 3, "started_at": 1.7e9, "runs_ok": 2, "runs_failed": 0}, [], check)
    assert "## States: " in text and "| mlp train tiny fp32, torch eager on cpu | 12 |" in text
    assert "## Step time changed" in text and "(1.25x); environment: framework_version" in text
    assert "## Left out of the figures" in text and ": failed" in text


def test_the_html_review_draws_the_history_with_its_change(store, tmp_path, capsys):
    import sqlite3

    db = tmp_path / "x.db"
    store.connection.backup(sqlite3.connect(db))
    latest = build_history(store)["configurations"]
    torch = next(h for h in latest if h["framework"] == "torch")
    run = torch["series"][-1]["run"]
    assert cli.main(["export", run, "--format", "html", "-o", str(tmp_path / "r.html"), "--db", str(db)]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "<h3>mlp train tiny fp32, torch eager on cpu: 16 runs</h3>" in page
    assert page.count('stroke-dasharray="4 3"') == 1 and ">1.25x</text>" in page  # the one change
    assert page.count('r="4" fill="none" stroke="#222"') == 1  # the exported run, ringed
    assert "Left out of the figures:" in page and ": failed</li>" in page
