"""`xprof prune` on synthetic stores: old runs lose their raw events, keep their figures,
and every command that needs only figures answers as before; those that need raw events
say so in one line."""

import gzip
import json
import sqlite3
import time
from pathlib import Path

import pytest

import cli
from conftest import fixture_path
from analysis.diff import compare
from analysis.history import build_history
from analysis.regressions import find_regressions
from analysis.report import build_report
from profiler.store import EventsPruned, Store
from synthetic import add_memory, add_run

DAY = 86400


@pytest.fixture
def store(store_target):
    store = Store.open(store_target)  # a SQLite file, then a PostgreSQL database: each test on both
    now = time.time()
    # four nights of each framework, 40 and 10 days old (then 3 and 2): the mlp's history
    for night, age in enumerate((40, 10, 3, 2)):
        for framework, slower in (("torch", 1.0), ("tensorflow", 1.6)):
            ms = [{"matmul": 1.0 * slower + 0.01 * r, "elementwise": 0.5} for r in range(3)]
            run = add_run(store, ms, framework=framework, started_at=now - age * DAY, steps=50)
            add_memory(store, run, 0, [(i, 1024, 1024 * (i + 1)) for i in range(30)])
    yield store
    store.close()


def _everything(store):
    """What diff, report, regressions and history show, for every pair of runs of the store."""
    runs = sorted(store.runs(), key=lambda r: (r["framework"], r["started_at"]))
    torch = [r for r in runs if r["framework"] == "torch"]
    tf = [r for r in runs if r["framework"] == "tensorflow"]
    diffs = [{k: v for k, v in compare(store, a, b, by).items() if k not in ("a", "b")}
             | {"a_peak": compare(store, a, b)["a"]["peak_bytes"]}
             for a, b in zip(torch, tf) for by in ("category", "op")]
    return diffs, build_report(store), find_regressions(store, baseline=3), build_history(store, key="matmul")


def test_pruning_keeps_every_figure_diff_report_regressions_and_history_show(store):
    before = _everything(store)
    result = store.prune(older_than_s=7 * DAY, keep_last=0)
    assert result["runs"] == 4 and result["events"] == 4 * 3 * 50 * 2 and result["memory_events"] == 4 * 30
    if not store.url:  # a server gives freed pages back by its own (auto)vacuum, later
        assert result["store_bytes_after"] < result["store_bytes_before"]
    assert _everything(store) == before
    pruned = [r for r in store.runs() if r["events_pruned_at"]]
    assert len(pruned) == 4 and all(r["started_at"] < time.time() - 7 * DAY for r in pruned)
    with pytest.raises(EventsPruned, match="--by kernel needs them"):
        compare(store, *[r for r in pruned if r["started_at"] < time.time() - 20 * DAY], "kernel")


def test_the_newest_runs_of_each_configuration_are_kept(store):
    assert store.prune(older_than_s=1 * DAY, keep_last=3)["runs"] == 2  # the 40-day-old pair
    assert store.prune(older_than_s=1 * DAY, keep_last=3)["runs"] == 0  # nothing left to prune
    assert store.prune(older_than_s=1 * DAY, keep_last=0, dry_run=True)["runs"] == 6
    assert len([r for r in store.runs() if r["events_pruned_at"]]) == 2  # a dry run removes nothing


def _xprof(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_on_the_command_line(store, capsys, tmp_path):
    db = store.url or store.path
    code, out, _ = _xprof(capsys, "prune", "--dry-run", "--keep-last", "3", "--db", db)
    assert code == 0 and out.startswith("would prune the raw events of 2 runs: 600 events, 60 memory events")
    code, out, _ = _xprof(capsys, "prune", "--older-than", "7d", "--keep-last", "0", "--json", "--db", db)
    result = json.loads(out)
    assert code == 0 and (result["runs"], result["dry_run"], len(result["run_ids"])) == (4, False, 4)
    old = result["run_ids"][0]
    code, _, err = _xprof(capsys, "diff", old, result["run_ids"][1], "--by", "kernel", "--db", db)
    assert code == 1 and err.startswith(f"xprof: error: run {old}'s raw events were pruned on ")
    assert "keep them longer next time (xprof prune --older-than, or the daemon's --keep-events)" in err
    code, _, err = _xprof(capsys, "export", old, "--format", "csv", "-o", tmp_path / "csv", "--db", db)
    assert code == 1 and "--format csv needs them" in err and not (tmp_path / "csv").exists()
    code, out, _ = _xprof(capsys, "diff", old, result["run_ids"][1], "--db", db)
    assert code == 0 and "matmul" in out  # by category: from the kept figures
    code, _, err = _xprof(capsys, "prune", "--older-than", "soon", "--db", db)
    assert code == 1 and "--older-than 'soon' is not a duration" in err


def test_an_html_review_of_a_pruned_run_says_its_memory_events_went(store, tmp_path, capsys):
    store.prune(older_than_s=7 * DAY, keep_last=0)
    runs = sorted(store.runs(), key=lambda r: r["started_at"])[:2]
    code, _, _ = _xprof(capsys, "export", runs[0]["id"], runs[1]["id"], "--format", "html",
                        "-o", tmp_path / "r.html", "--db", store.url or store.path)
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "were pruned (xprof prune)" in page and "faster per step" in page


def test_one_pool_row_per_device_and_allocator_even_without_an_allocator(store):
    # every run of the fixture stored memory events on "cpu" with no allocator named
    assert store._rows("SELECT device, allocator, count(*) FROM pools GROUP BY device, allocator") == [
        ("cpu", None, 1)]


def test_figures_are_not_made_again_from_nothing_for_a_pruned_run(store):
    old = store.prune(older_than_s=7 * DAY, keep_last=0)["run_ids"][0]
    kept = store._rows("SELECT * FROM figure_rows WHERE run_id = ? ORDER BY 1, 2, 3, 4, 5", (old,))
    with store.transaction() as conn:
        store.keep_figures(conn, old)
    assert kept and store._rows("SELECT * FROM figure_rows WHERE run_id = ? ORDER BY 1, 2, 3, 4, 5",
                                (old,)) == kept


def test_zero_prunes_all_but_the_newest_and_a_bad_age_names_both_flags(store, capsys):
    code, out, _ = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "1", "--json", "--db", store.path)
    assert code == 0 and json.loads(out)["runs"] == 6
    code, _, err = _xprof(capsys, "prune", "--keep-events", "1x", "--db", store.path)
    assert code == 1 and "--keep-events/--older-than '1x' is not a duration" in err


def test_runs_marks_the_pruned_ones(store, capsys):
    store.prune(older_than_s=7 * DAY, keep_last=0)
    code, out, _ = _xprof(capsys, "runs", "--db", store.path)
    assert code == 0 and "* raw events pruned (xprof prune)" in out
    assert sum(line.rstrip().endswith("0*") for line in out.splitlines()) == 4  # the pruned runs
    code, out, _ = _xprof(capsys, "runs", "--json", "--db", store.path)
    assert sum(r["events_pruned_at"] is not None for r in json.loads(out)["runs"]) == 4


def test_prune_finds_trace_files_whatever_the_working_directory(tmp_path, monkeypatch, capsys):
    """A store named by a relative path from one directory and pruned from another; and a
    row written by an older xprof with its path relative to where the run was made."""
    trace = fixture_path("kineto", "cpu_only.json.gz")
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(home)
    code, out, _ = _xprof(capsys, "import", trace, "--json", "--db", "x.db")
    run_id = json.loads(out)["runs"][0]["id"]
    second = tmp_path / "second.json.gz"  # the same events, another file: a second run
    second.write_bytes(gzip.compress(gzip.decompress(trace.read_bytes()) + b" "))
    code, out, _ = _xprof(capsys, "import", second, "--json", "--db", "x.db")
    other_id = json.loads(out)["runs"][0]["id"]
    artifacts = home / "x.db.artifacts"
    assert code == 0 and sorted(p.name for p in artifacts.iterdir()) == sorted([run_id, other_id])
    with sqlite3.connect(home / "x.db") as conn:  # as xprof before 0.4 wrote it
        [(path,)] = conn.execute("SELECT path FROM artifacts WHERE run_id = ?", (other_id,))
        conn.execute("UPDATE artifacts SET path = ? WHERE run_id = ?",
                     (str(Path(path).relative_to(home)), other_id))
    monkeypatch.chdir(elsewhere)
    code, out, _ = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "0", "--db", home / "x.db")
    assert code == 0 and "pruned the raw events of 2 runs" in out
    assert list(artifacts.iterdir()) == []  # files and their run directories gone
    code, out, _ = _xprof(capsys, "import", trace, "--db", home / "x.db")
    assert code == 0 and f"already imported as run {run_id} (its raw events were pruned" in out


def _imported_store(tmp_path, capsys, name="home"):
    home = tmp_path / name
    home.mkdir()
    code, out, _ = _xprof(capsys, "import", fixture_path("kineto", "cpu_only.json.gz"), "--json",
                          "--db", home / "x.db")
    assert code == 0
    return home, json.loads(out)["runs"][0]["id"]


def test_pruning_a_copy_of_a_store_leaves_the_original_its_traces(tmp_path, capsys):
    import shutil

    home, run_id = _imported_store(tmp_path, capsys)
    shutil.copytree(home, tmp_path / "copy")
    code, _, _ = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "0", "--db", tmp_path / "copy" / "x.db")
    assert code == 0 and not (tmp_path / "copy" / "x.db.artifacts" / run_id).exists()
    assert [p.name for p in (home / "x.db.artifacts" / run_id).iterdir()] == ["r0.pt.trace.json.gz"]


def test_a_path_with_dots_and_a_directory_already_gone(tmp_path, capsys, monkeypatch):
    import shutil

    home, run_id = _imported_store(tmp_path, capsys)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, _ = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "0", "--db", "../home/x.db")
    assert code == 0 and list((home / "x.db.artifacts").iterdir()) == []  # the run's directory went too
    second, other = _imported_store(tmp_path, capsys, "second")
    shutil.rmtree(second / "x.db.artifacts" / other)  # removed by hand before the prune
    code, out, err = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "0", "--db", second / "x.db")
    assert code == 0 and out.startswith("pruned the raw events of 1 run") and err == ""


def test_traces_prune_cannot_remove_stop_it_before_anything_changes(tmp_path, capsys, monkeypatch):
    import profiler.store.retention as store_module

    home, run_id = _imported_store(tmp_path, capsys)
    monkeypatch.setattr(store_module, "_writable", lambda directory: False)  # as root, chmod cannot say no
    code, _, err = _xprof(capsys, "prune", "--older-than", "0s", "--keep-last", "0", "--db", home / "x.db")
    assert code == 1 and err.strip() == (f"xprof: error: cannot remove the raw traces in "
                                         f"{(home / 'x.db.artifacts' / run_id).resolve()}: permission denied "
                                         "(nothing was pruned)")
    with sqlite3.connect(home / "x.db") as conn:
        assert conn.execute("SELECT events_pruned_at FROM runs").fetchall() == [(None,)]
        assert conn.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 1


def test_failed_runs_never_take_the_place_of_kept_ok_ones(store):
    now = time.time()
    for age in (1.5, 1.4, 1.3):  # three failed nights after the last ok one (2 days old)
        add_run(store, [{"matmul": 1.0}] * 3, status="failed", started_at=now - age * DAY)
    store.prune(older_than_s=1 * DAY, keep_last=1)
    kept = [r for r in store.runs() if r["framework"] == "torch" and not r["events_pruned_at"]]
    assert [(r["status"], round((now - r["started_at"]) / DAY)) for r in kept] == [("ok", 2)]
