"""review_summary (an exported review's data) and SnapshotReader (what `xprof watch`
shows) on synthetic stores."""

import time

import pytest

import analysis.snapshot
from analysis.diff import compare
from analysis.regressions import find_regressions
from analysis.snapshot import RECENT_COLUMNS, SnapshotReader
from analysis.summary import review_summary
from profiler.store import Store
from profiler.telemetry.sampling import TelemetrySample
from synthetic import add_memory, add_run


@pytest.fixture
def store():
    return Store.in_memory()


# -- review_summary -----------------------------------------------------------------


def test_summary_lists_each_run_s_categories_and_steps_and_diffs_the_first_two(store):
    a = add_run(store, [{"matmul": 1.0}, {"matmul": 4.0}], steps=2, step_ms=[5.0, 8.0])
    b = add_run(store, [{"matmul": 2.0}] * 2, steps=2, step_ms=[6.0] * 2, framework="tensorflow")
    summary = review_summary(store, [a, b])
    first, second = summary["runs"]
    assert (first["id"], first["framework"], first["repeats"], first["status"]) == (a["id"], "torch", 2, "ok")
    # every unprofiled step, by repeat then step
    assert first["step_ms"] == pytest.approx([5.0, 5.0, 8.0, 8.0])
    assert not first["steps_profiled"]
    # arithmetic means over repeats (they add up to the step in a stacked bar): matmul
    # (1 + 4) / 2, between ops (5 - 1 + 8 - 4) / 2; the diff shows geometric means
    assert first["categories"] == pytest.approx({"matmul": 2.5, "(between ops)": 4.0})
    assert second["categories"] == pytest.approx({"matmul": 2.0, "(between ops)": 4.0})
    assert summary["diff"]["a"]["id"] == a["id"] and summary["diff"]["b"]["id"] == b["id"]
    assert next(r for r in summary["diff"]["rows"] if r["key"] == "matmul")["a_ms"] == pytest.approx(2.0)
    assert "diff_unavailable" not in summary


def test_summary_says_why_there_is_no_diff(store):
    mlp = add_run(store, [{"matmul": 1.0}] * 2)
    cnn = add_run(store, [{"matmul": 1.0}] * 2, workload="cnn")
    summary = review_summary(store, [mlp, cnn])
    assert summary["diff"] is None
    assert summary["diff_unavailable"] == (f"runs {mlp['id']} and {cnn['id']} are of different "
                                           "workloads (mlp/train vs cnn/train)")
    alone = review_summary(store, [mlp])
    assert alone["diff"] is None and "diff_unavailable" not in alone


def test_summary_of_an_import_lists_its_profiled_steps_and_memory_over_time(store):
    run = add_run(store, [{"matmul": 1.0}] * 2, steps=2, profiled_step_ms=[5.0, 7.0],
                  unprofiled=False, source="import")
    # repeat 0's profiled steps span 0-10 ms: an event after it and repeat 1's are not shown
    add_memory(store, run, 0, [(1_000_000, 100, 100), (6_000_000, 200, 300), (20_000_000, 5, 305)])
    add_memory(store, run, 1, [(2_000_000, 50, 50)])
    [entry] = review_summary(store, [run])["runs"]
    assert entry["steps_profiled"]
    assert entry["step_ms"] == pytest.approx([5.0, 5.0, 7.0, 7.0])
    assert entry["memory"] == [(1.0, 100), (6.0, 300)]  # (ms from the first step, bytes)
    assert entry["peak_bytes"] == 305


# -- SnapshotReader -------------------------------------------------------------------


def test_snapshot_pairs_the_newest_torch_and_tensorflow_runs_of_each_workload(store):
    add_run(store, [{"matmul": 3.0}] * 3)  # an older torch run of mlp
    torch = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 3)
    tf = add_run(store, [{"matmul": 2.0, "elementwise": 0.5}] * 3, framework="tensorflow")
    add_run(store, [{"matmul": 9.0}] * 3, framework="tensorflow", source="import")  # newer, an import
    add_run(store, [{"matmul": 9.0}] * 3, framework="tensorflow", status="failed")
    add_run(store, [{"matmul": 1.0}] * 3, workload="cnn")  # no tensorflow run of cnn
    add_run(store, [{"matmul": 1.0}] * 3, framework="tensorflow", size="small")  # no torch small
    snapshot = SnapshotReader(store).take()
    [difference] = snapshot["differences"]
    assert (difference["workload"], difference["mode"], difference["size"]) == ("mlp", "train", "tiny")
    expected = compare(store, torch, tf)
    assert difference["step"] == expected["step"]
    assert difference["step"]["ratio"] == pytest.approx(5 / 3)  # 5 ms vs 3 ms steps
    assert difference["rows"] == expected["rows"][:3]


def test_snapshot_lists_recent_runs_newest_first_and_running_ones(store):
    runs = [add_run(store, [{"matmul": 1.0}] * 2, started_at=t, status=s)
            for t, s in ((30, "ok"), (10, "failed"), (20, "ok"))]
    running = add_run(store, [{"matmul": 1.0}] * 2, started_at=time.time() - 60, status="running",
                      env={"nvml": "unavailable", "reason": "no NVIDIA driver"})
    snapshot = SnapshotReader(store).take()
    assert [r["id"] for r in snapshot["recent"]] == [running["id"], runs[0]["id"], runs[2]["id"], runs[1]["id"]]
    assert all(tuple(r) == RECENT_COLUMNS for r in snapshot["recent"])
    assert snapshot["nvml"] == {"state": "unavailable", "reason": "no NVIDIA driver"}
    [entry] = snapshot["running"]
    assert (entry["id"], entry["repeats_done"]) == (running["id"], 2)
    assert entry["elapsed_s"] == pytest.approx(60, abs=5)


def test_snapshot_comparisons_are_made_once_per_pair(store):
    torch = add_run(store, [{"matmul": 1.0}] * 3)
    tf = add_run(store, [{"matmul": 2.0}] * 3, framework="tensorflow")
    reader = SnapshotReader(store)
    reader.take()
    assert list(reader.comparisons) == [(torch["id"], tf["id"])]
    made = reader.comparisons[torch["id"], tf["id"]]
    reader.take()  # nothing landed: the very same result, not a new one
    assert reader.comparisons[torch["id"], tf["id"]] is made
    newer = add_run(store, [{"matmul": 1.5}] * 3)
    snapshot = reader.take()
    assert set(reader.comparisons) == {(torch["id"], tf["id"]), (newer["id"], tf["id"])}
    assert reader.comparisons[torch["id"], tf["id"]] is made
    assert snapshot["differences"][0]["step"]["ratio"] == pytest.approx(4 / 3)  # 4 ms vs 3 ms


def test_snapshot_checks_regressions_again_only_when_an_ok_run_finished(store, monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return find_regressions(*args, **kwargs)

    monkeypatch.setattr(analysis.snapshot, "find_regressions", counted)
    for _ in range(4):
        add_run(store, [{"matmul": 1.0}] * 3)
    reader = SnapshotReader(store)
    assert reader.take()["regressions"] == []
    reader.take()
    assert len(calls) == 1
    add_run(store, [{"matmul": 2.0}] * 3, status="failed")
    add_run(store, [{"matmul": 2.0}] * 3, status="running")
    reader.take()
    assert len(calls) == 1
    add_run(store, [{"matmul": 2.0}] * 3)  # twice as slow, and ok: suspicious
    snapshot = reader.take()
    assert len(calls) == 2 and snapshot["regressions"] == []
    assert snapshot["states"]["suspicious"] == 1 and snapshot["configurations"][0]["state"] == "suspicious"
    add_run(store, [{"matmul": 2.0}] * 3)  # confirmed
    snapshot = reader.take()
    # steps twice the ops, no variance: step, matmul and between ops all doubled
    assert sorted(r["key"] for r in snapshot["regressions"]) == ["(between ops)", "matmul", "step"]
    assert all(r["ratio"] == pytest.approx(2.0) for r in snapshot["regressions"])
    assert snapshot["configurations"][0]["recent_step_ms"] == pytest.approx([2.0] * 4 + [4.0] * 2)


def test_snapshot_has_a_daemon_entry_only_with_a_status_function(store):
    assert "daemon" not in SnapshotReader(store).take()
    status = {"state": "running", "pid": 4242}
    assert SnapshotReader(store, lambda: status).take()["daemon"] == status


def test_snapshot_telemetry_is_the_last_five_minutes_per_device(store):
    now = time.time_ns()
    second = 10**9
    store.add_samples([
        TelemetrySample(now - 400 * second, "host", "host", cpu_pct=99.0),  # too old
        TelemetrySample(now - 20 * second, "host", "host", utilization_pct=5.0, cpu_pct=40.0),
        TelemetrySample(now - 10 * second, "host", "host", utilization_pct=6.0, cpu_pct=50.0),
        TelemetrySample(now - 5 * second, "nvml", "gpu:0", utilization_pct=70.0, cpu_pct=1.0),
    ])
    telemetry = SnapshotReader(store).take()["telemetry"]
    assert [(t["source"], t["device"]) for t in telemetry] == [("host", "host"), ("nvml", "gpu:0")]
    host, gpu = telemetry
    assert host["history"] == [40.0, 50.0]  # the process' CPU %, oldest first
    assert host["latest"]["ts_ns"] == now - 10 * second
    assert gpu["history"] == [70.0]  # the GPU's utilization
    assert gpu["latest"]["utilization_pct"] == 70.0
