"""The store on real SQLite files: migrations keep every row, inserts come back exactly,
queries find what analysis asks for, and a reader never waits for a writer."""

import gzip
import math
import shutil
import socket
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.diff import compare
from profiler.store import RunNotFound, Store, StoreError
from profiler.store.schema import SCHEMA_VERSION
from profiler.store.rows import ROWS_PER_INSERT, decimal_code, from_decimal_code
from profiler.store.store import fingerprint
from profiler.traces.events import CPU_OP, KERNEL, EventColumns, MemoryColumns, MemoryEvent, TraceEvent
from synthetic import add_run

# A store written by xprof before the `kernels` table became `events` (schema 2): a tiny
# torch and TensorFlow run of the mlp and one import of a synthetic GPU trace.
OLD_STORE = Path(__file__).parent / "data" / "store_v2.db.gz"
EVENT_COLUMNS = "name, kind, start_ns, dur_ns, device, stream, op, self_ns, correlation, step, category"


def _events(count):
    return [TraceEvent(f"op{i % 3}", CPU_OP if i % 2 else KERNEL, 1_000 * i, 10 + i, "cpu", "7",
                       op=None if i % 5 == 0 else f"aten::op{i % 3}", self_ns=i, correlation=i or None,
                       step=i // 10) for i in range(count)]


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "x.db")
    store.create_run(id="e1", framework="torch", source="import")
    yield store
    store.close()


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "old.db"
    with gzip.open(OLD_STORE) as packed, open(path, "wb") as out:
        shutil.copyfileobj(packed, out)
    return path


def _count(path, table):
    return sqlite3.connect(path).execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- migrations -------------------------------------------------------------------------

MEMORY_COLUMNS = "ts_ns, bytes, total_allocated, total_reserved, peak_bytes_in_use, device, allocator"


def test_a_store_of_an_earlier_schema_opens_with_every_row(old_store):
    raw = sqlite3.connect(old_store)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    before = {table: _count(old_store, table)
              for table in ("runs", "steps", "kernels", "memory_events", "samples", "artifacts", "meta")}
    kernel_counts = dict(raw.execute("SELECT id, kernel_count FROM runs"))
    kernel_rows = raw.execute(f"SELECT run_id, repeat, {EVENT_COLUMNS} FROM kernels ORDER BY rowid").fetchall()
    memory_rows = raw.execute(f"SELECT run_id, repeat, {MEMORY_COLUMNS}, fragmentation FROM memory_events"
                              " ORDER BY rowid").fetchall()
    raw.close()
    assert before == {"runs": 3, "steps": 18, "kernels": 934, "memory_events": 391, "samples": 12,
                      "artifacts": 5, "meta": 1}

    store = Store.open(old_store, create=False)
    assert store.schema_version() == SCHEMA_VERSION == 8
    store.close()
    after = sqlite3.connect(old_store)
    for table, count in before.items():
        assert _count(old_store, {"kernels": "event_rows", "memory_events": "memory_rows"}.get(table, table)) == count
    # every value of every row, read back as it was written (times, self time, names)
    assert after.execute(f"SELECT run_id, repeat, {EVENT_COLUMNS} FROM event_rows ORDER BY run_id, repeat, seq"
                         ).fetchall() == sorted(kernel_rows, key=lambda r: (r[0], r[1]))
    assert [(*row[:-1], from_decimal_code(row[-1])) for row in after.execute(
        f"SELECT run_id, repeat, {MEMORY_COLUMNS}, fragmentation_code FROM memory_rows ORDER BY run_id, repeat, seq")
    ] == sorted(memory_rows, key=lambda r: (r[0], r[1]))
    assert dict(after.execute("SELECT id, event_count FROM runs")) == kernel_counts \
        == {"bf0803eb07c7": 636, "97d5ff02840b": 288, "805a53b154f8": 10}
    tables = {name for name, in after.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "memory_events", "figures", "strings", "repeats"} <= tables and "kernels" not in tables
    assert after.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_migrated_store_compares_as_it_did_before(old_store):
    # figures the previous xprof printed for `xprof diff --workload mlp --json` on this store
    store = Store.open(old_store)
    result = compare(store, store.run("bf0803eb07c7"), store.run("97d5ff02840b"))
    assert result["step"]["a_ms"] == pytest.approx(0.41028972439210565)
    assert result["step"]["b_ms"] == pytest.approx(0.7490685831711272)
    assert result["step"]["ci_high"] == pytest.approx(34.921946657891624)
    rows = {row["key"]: (row["a_ms"], row["b_ms"]) for row in result["rows"]}
    assert rows["(between ops)"] == pytest.approx((0.18842301825414007, 0.40805029694787626))
    assert rows["matmul"] == pytest.approx((0.0914654226743637, 0.05874271252674668))
    assert len(rows) == 7
    store.close()


# A store of schema 3, the last before compact rows (written by tests/data/make_store_v3.py):
# a torch run on the CPU and a TensorFlow one on a GPU, memory events with and without an
# allocator, events without op, stream or self time, an artifact row with a relative path.
STORE_V3 = Path(__file__).parent / "data" / "store_v3.db.gz"
V3_COLUMNS = "name, kind, start_ns, dur_ns, device, stream, op, self_ns, correlation, step, category"


def test_a_schema_3_store_becomes_the_current_schema_with_every_value_and_the_same_figures(tmp_path):
    path = tmp_path / "v3.db"
    path.write_bytes(gzip.decompress(STORE_V3.read_bytes()))
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 3
    events = raw.execute(f"SELECT run_id, repeat, {V3_COLUMNS} FROM events ORDER BY run_id, repeat, rowid").fetchall()
    memory = raw.execute(f"SELECT run_id, repeat, {MEMORY_COLUMNS}, fragmentation FROM memory_events"
                         " ORDER BY run_id, repeat, rowid").fetchall()
    raw.close()
    told = []
    store = Store.open(path, notice=told.append)
    assert len(told) == 2 and told[0].startswith(f"upgrading store {path} from schema 3 to {SCHEMA_VERSION}, once (")
    assert told[1].startswith(f"upgraded store {path} in ")
    assert store._rows(f"SELECT run_id, repeat, {V3_COLUMNS} FROM event_rows ORDER BY run_id, repeat, seq") == events
    assert [(*row[:-1], from_decimal_code(row[-1])) for row in store._rows(
        f"SELECT run_id, repeat, {MEMORY_COLUMNS}, fragmentation_code FROM memory_rows ORDER BY run_id, repeat, seq")
    ] == memory
    assert store._rows("SELECT device, allocator FROM pools ORDER BY id") == [("cpu", None),
                                                                            ("/device:GPU:0", "GPU_0_bfc")]
    assert len(events) == 26 and len(memory) == 44
    # migration 5: profiled runs were fp32; a run's device is named alike in both frameworks
    # migration 6: every earlier run took its size's own batch
    assert store._rows("SELECT id, dtype, device, batch_size FROM runs ORDER BY id") == [
        ("1b76979ac3db", "fp32", "cpu", None), ("e18d72bfc956", "fp32", "gpu:0", None)]
    # what `xprof diff --json` printed on this store with the xprof that wrote it
    result = compare(store, store.run("1b76979ac3db"), store.run("e18d72bfc956"))
    assert (result["step"]["a_ms"], result["step"]["b_ms"], result["step"]["ci_high"]) == pytest.approx(
        (2.6457513110645903, 2.229798197146997, 1.5123963362478317))
    assert [row["key"] for row in result["rows"]] == [
        "(between ops)", "convolution", "matmul", "elementwise", "MemcpyHtoD"]
    assert [(row["a_ms"], row["b_ms"]) for row in result["rows"]] == [pytest.approx(pair) for pair in (
        (1.3249999999999997, 0.0), (0.0, 0.405), (1.0488088481701516, 0.7099295739719539), (0.275, 0.0), (0.0, 0.0))]
    assert result["a"]["peak_bytes"] == 16384 and result["b"]["peak_bytes"] == 10485760
    assert store.artifact_file(store.trace_artifact("1b76979ac3db", 0)) == \
        path.with_name("v3.db.artifacts") / "1b76979ac3db" / "r0.pt.trace.json.gz"
    store.close()


@pytest.mark.slow
def test_processes_opening_an_old_store_at_once_migrate_it_once(old_store):
    import subprocess
    import sys

    import time

    # each waits for the same instant, then opens: the first migration is run by one of them
    code = ("import sys, time; from profiler.store import Store; time.sleep(float(sys.argv[2]) - time.time());"
            " Store.open(sys.argv[1]).close()")
    at = time.time() + 1.5
    openers = [subprocess.Popen([sys.executable, "-c", code, str(old_store), str(at)],
                                stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate()[1] for p in openers]
    assert [p.returncode for p in openers] == [0] * 6, errors
    assert _count(old_store, "event_rows") == 934


def test_migrating_twice_changes_nothing(old_store):
    Store.open(old_store).close()
    dump = list(sqlite3.connect(old_store).iterdump())
    Store.open(old_store).close()
    assert list(sqlite3.connect(old_store).iterdump()) == dump


def test_a_newer_or_foreign_database_is_refused_untouched(tmp_path):
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this"):
        Store.open(newer)
    foreign = tmp_path / "bookmarks.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.close()
    with pytest.raises(StoreError, match=r"another program's SQLite database \(tables: bookmarks\)"):
        Store.open(foreign)
    assert sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


# -- writes -----------------------------------------------------------------------------

@pytest.mark.parametrize("count", [0, 1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1,
                                   3 * ROWS_PER_INSERT + 7])
def test_event_rows_come_back_exactly(store, count):
    events = _events(count)
    classified = []

    def classify(event):
        classified.append((event.name, event.kind, event.op))
        return f"{event.kind}/{event.op}"

    with store.transaction() as conn:
        assert store.add_events(conn, "e1", 2, EventColumns.of(events), classify) == count
    rows = store.connection.execute(f"SELECT run_id, repeat, {EVENT_COLUMNS} FROM event_rows ORDER BY seq").fetchall()
    assert rows == [("e1", 2, e.name, e.kind, e.start_ns, e.dur_ns, e.device, e.stream, e.op, e.self_ns,
                     e.correlation, e.step, f"{e.kind}/{e.op}") for e in events]
    # called once for each distinct (name, kind, op), which is all a category may depend on
    assert len(classified) == len(set(classified)) and set(classified) == {(e.name, e.kind, e.op) for e in events}


def test_event_objects_store_like_columns(store):
    events = _events(ROWS_PER_INSERT + 3)
    memory = [MemoryEvent(5 * i, 64 * (-1) ** i, 64 * i, "cuda:0", "GPU_0_bfc", None, 128, 0.5) for i in range(57)]
    with store.transaction() as conn:
        store.add_events(conn, "e1", 0, events)
        store.add_events(conn, "e1", 1, EventColumns.of(events))
        store.add_memory(conn, "e1", 0, memory)
        store.add_memory(conn, "e1", 1, MemoryColumns.of(memory))
    db = store.connection
    stored = [db.execute(f"SELECT {EVENT_COLUMNS} FROM event_rows WHERE repeat = ? ORDER BY seq", (r,)).fetchall()
              for r in (0, 1)]
    assert stored[0] == stored[1] and len(stored[0]) == len(events)
    memory_rows = [[(*row[:7], from_decimal_code(row[7])) for row in db.execute(
        "SELECT ts_ns, bytes, total_allocated, device, allocator, total_reserved, peak_bytes_in_use,"
        " fragmentation_code FROM memory_rows WHERE repeat = ? ORDER BY seq", (r,))] for r in (0, 1)]
    assert memory_rows[0] == memory_rows[1] == [(m.ts_ns, m.bytes, m.total_allocated, m.device, m.allocator,
                                                 m.total_reserved, m.peak_bytes_in_use, m.fragmentation)
                                                for m in memory]


def test_columns_iterate_as_the_events_they_hold():
    events = _events(12)
    columns = EventColumns.of(events)
    assert list(columns) == events and columns[5] == events[5] and len(columns) == 12
    assert columns.count(KERNEL) == 6 and columns.total_dur_ns(CPU_OP) == sum(e.dur_ns for e in events[1::2])
    assert EventColumns.of(events[:-1]) != columns


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(ZeroDivisionError):
        with store.transaction() as conn:
            store.add_events(conn, "e1", 0, _events(120))
            1 / 0
    assert store.connection.execute("SELECT count(*) FROM event_rows").fetchone() == (0,)


def test_a_savepoint_undoes_its_part_alone(store):
    with store.transaction() as conn:
        store.add_events(conn, "e1", 0, _events(3))
        with pytest.raises(KeyError):
            with store.savepoint(conn, "part"):
                store.add_events(conn, "e1", 1, _events(5))
                raise KeyError("a duplicate, found late")
    assert store.connection.execute("SELECT repeat, count(*) FROM event_rows GROUP BY repeat").fetchall() == [(0, 3)]


def test_an_environment_is_stored_with_its_fingerprint(store):
    env = {"hostname": "gpu-7", "framework_version": "2.13.0", "device_name": "NVIDIA A100", "extra": 1}
    store.update_run("e1", env=env, device="cuda:0")
    run = store.run("e1")
    assert run["env"] == '{"device_name": "NVIDIA A100", "extra": 1, "framework_version": "2.13.0", "hostname": "gpu-7"}'
    # facts outside the fingerprint's keys do not change it; one inside does
    assert run["fingerprint"] == fingerprint({**env, "extra": 2}) != fingerprint({**env, "hostname": "gpu-8"})
    assert len(run["fingerprint"]) == 16 and run["device"] == "cuda:0"


def test_orphaned_runs_of_dead_processes_are_marked_interrupted(store):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    store.create_run(id="dead", framework="torch", source="profile", pid=dead.pid, started_at=0)
    store.create_run(id="alive", framework="torch", source="profile")  # this process
    store.create_run(id="elsewhere", framework="torch", source="profile", pid=dead.pid, host="another-host")
    assert store.mark_orphaned_runs() == 1
    statuses = dict(store.connection.execute("SELECT id, status FROM runs"))
    assert statuses["dead"] == "interrupted" and statuses["alive"] == "running"
    assert statuses["elsewhere"] == "running"  # another host's process cannot be checked from here


def test_telemetry_is_downsampled_once_past_the_raw_window(store):
    import time

    from profiler.telemetry.sampling import TelemetrySample

    now = time.time_ns()
    hour, day = 3600 * 10**9, 86400 * 10**9
    old = [TelemetrySample(now - 8 * day + i * 60 * 10**9, "host", "host", float(i)) for i in range(20)]
    fresh = [TelemetrySample(now - hour + i * 10**9, "host", "host", 50.0) for i in range(5)]
    store.add_samples(old + fresh)
    assert store.downsample_samples(keep_raw_s=7 * 86400, bucket_s=600) == 20
    means = store.recent_samples(0, 100)[5:]  # newest first: the five fresh ones lead
    assert 2 <= len(means) <= 3 and all(m["ts_ns"] % (600 * 10**9) == 0 for m in means)
    assert sum(m["utilization_pct"] for m in means) / len(means) == pytest.approx(9.5, abs=3)
    assert store.downsample_samples(keep_raw_s=7 * 86400, bucket_s=600) == 0  # already done


# -- queries ------------------------------------------------------------------------------

def test_runs_are_found_by_id_or_unambiguous_prefix():
    store = Store.in_memory()
    for run_id in ("abc123000001", "abc123000002", "def456000001"):
        store.create_run(id=run_id, framework="torch", source="profile")
    assert store.run("def4")["id"] == "def456000001"
    assert store.run("abc123000002")["id"] == "abc123000002"
    with pytest.raises(RunNotFound, match="prefix 'abc' is ambiguous: 2 runs match"):
        store.run("abc")
    with pytest.raises(RunNotFound, match="no run with id 'ffff'"):
        store.run("ffff")
    with pytest.raises(RunNotFound, match="is not a run id"):
        store.run("%")


def test_latest_runs_configurations_and_history():
    store = Store.in_memory()
    first = add_run(store, [{"matmul": 1.0}] * 2, started_at=10)
    second = add_run(store, [{"matmul": 1.0}] * 2, started_at=20)
    add_run(store, [{"matmul": 1.0}] * 2, started_at=30, status="failed")
    compiled = add_run(store, [{"matmul": 1.0}] * 2, started_at=40, execution="compiled")
    tf = add_run(store, [{"matmul": 1.0}] * 2, framework="tensorflow", size="small", started_at=5)
    assert store.latest_ok_run("mlp", "torch")["id"] == compiled["id"]
    assert store.latest_ok_run("mlp", "torch", execution="eager")["id"] == second["id"]
    assert store.latest_ok_run("mlp", "torch", size="small") is None
    assert store.compared_groups() == [("mlp", "train", "small", "fp32", "cpu", None),
                                       ("mlp", "train", "tiny", "fp32", "cpu", None)]
    configurations = store.configurations("mlp")
    here = socket.gethostname()  # a run's host is part of its configuration (a fleet's store)
    assert ("mlp", "torch", "train", "eager", "tiny", "fp32", "cpu", None, here) in configurations
    assert len(configurations) == 3
    history = store.configuration_history(("mlp", "torch", "train", "eager", "tiny", "fp32", "cpu", None, here), 5)
    assert [r["id"] for r in history] == [first["id"], second["id"]]  # oldest first, ok only
    assert [r["id"] for r in store.newest_ok_runs(2)] == [compiled["id"], second["id"]]
    # a run at another precision is another configuration, never in fp32's history
    bf16 = add_run(store, [{"matmul": 0.5}] * 2, started_at=50, dtype="bf16")
    assert store.latest_ok_run("mlp", "torch", dtype="fp32")["id"] == compiled["id"]
    assert store.latest_ok_run("mlp", "torch", execution="eager", dtype="bf16")["id"] == bf16["id"]
    assert ("mlp", "train", "tiny", "bf16", "cpu", None) in store.compared_groups()
    assert len(store.configurations("mlp")) == 4
    assert [r["id"] for r in store.configuration_history(
        ("mlp", "torch", "train", "eager", "tiny", "fp32", "cpu", None, here))] == [first["id"], second["id"]]
    # so is a run at another batch size: asked for by its batch, never in place of the size's own
    one = add_run(store, [{"matmul": 0.2}] * 2, started_at=60, batch_size=1)
    assert store.latest_ok_run("mlp", "torch", execution="eager", dtype="fp32")["id"] == second["id"]
    assert store.latest_ok_run("mlp", "torch", batch_size=1)["id"] == one["id"]
    assert ("mlp", "train", "tiny", "fp32", "cpu", 1) in store.compared_groups()
    assert len(store.configurations("mlp")) == 5
    # the same configuration on another host is another series; --host keeps to one host's
    other = add_run(store, [{"matmul": 1.0}] * 2, started_at=70, host="gpu-node-2")
    assert len(store.configurations("mlp")) == 6 and store.hosts() == sorted(["gpu-node-2", here])
    store.only_host = "gpu-node-2"
    assert [r["id"] for r in store.runs()] == [other["id"]] and len(store.configurations("mlp")) == 1
    store.only_host = None
    assert store.has_runs_of("mlp", "train") and not store.has_runs_of("mlp", "infer")
    assert tf["size"] == "small"


def test_time_per_step_by_category_and_op_from_figures_by_kernel_from_events():
    store = Store.in_memory()
    run = add_run(store, [{"matmul": 1.5, "elementwise": 0.25}], steps=2)
    expected = [(1, "elementwise", 250_000), (1, "matmul", 1_500_000), (2, "elementwise", 250_000),
                (2, "matmul", 1_500_000)]
    for by in ("category", "op", "kernel"):  # synthetic events: name, op and category alike
        assert sorted((r["step"], r["key"], r["ns"]) for r in store.time_per_step(run["id"], by)) == expected
    assert not store.has_device_events(run["id"])
    gpu = add_run(store, [{"matmul": 2.0}], device="cuda:0", steps=1)
    assert store.has_device_events(gpu["id"])
    assert [(r["key"], r["ns"]) for r in store.time_per_step(gpu["id"], "category")] == [("matmul", 2_000_000)]


def test_pruned_runs_keep_their_figures_and_give_the_space_back(tmp_path):
    from profiler.store import EventsPruned

    store = Store.open(tmp_path / "x.db")
    old = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 3, steps=400)
    kept = add_run(store, [{"matmul": 1.0}] * 3, steps=5)
    trace = store.artifacts_dir() / old["id"] / "r0.pt.trace.json.gz"
    trace.parent.mkdir(parents=True)
    trace.write_bytes(b"x" * 1000)
    elsewhere = tmp_path / "r0.pt.trace.json.gz"  # a file outside the store's directory: never removed
    elsewhere.write_bytes(b"x")
    with store.transaction() as conn:
        store.add_artifact(conn, old["id"], "trace", trace, "0" * 64, 1000)
        store.add_artifact(conn, old["id"], "trace", elsewhere, "0" * 64, 0)
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (tmp_path / "x.db").stat().st_size
    (events_bytes,) = store.connection.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'events'").fetchone()
    figures = sorted(map(tuple, map(dict.values, store.time_per_step(old["id"], "category"))))
    gone = store.prune_events([old["id"]])
    assert gone == {"runs": 1, "events": 2400, "memory_events": 0, "artifact_bytes": 1000, "files_left": []}
    assert not trace.exists() and not trace.parent.exists() and elsewhere.exists()
    assert (tmp_path / "x.db").stat().st_size <= size - 0.8 * events_bytes
    assert sorted(map(tuple, map(dict.values, store.time_per_step(old["id"], "category")))) == figures
    assert len(store.step_rows(old["id"])) == 2 * 400 * 3
    with pytest.raises(EventsPruned, match=rf"run {old['id']}'s raw events were pruned on \d{{4}}-\d\d-\d\d, "
                                           r"and --by kernel needs them; keep them longer next time"):
        store.time_per_step(old["id"], "kernel")
    assert len(store.time_per_step(kept["id"], "kernel")) == 15  # other runs untouched


def test_the_csv_tables_keep_their_column_names():
    store = Store.in_memory()
    run = add_run(store, [{"matmul": 1.0}])
    tables = store.export_tables([run["id"]])
    columns = [d[0] for d in tables["runs.csv"].description]
    assert columns[13] == "kernel_count" and columns[7:11] == ["size", "dtype", "device", "batch_size"]
    assert len(tables["kernels.csv"].fetchall()) == 3 and len(tables["steps.csv"].fetchall()) == 6


# -- concurrency ------------------------------------------------------------------------------

def test_a_reader_never_waits_for_a_writer(tmp_path):
    path = tmp_path / "x.db"
    writer = Store.open(path)
    add_run(writer, [{"matmul": 1.0}])
    reader = Store.open(path, create=False)
    with writer.transaction() as conn:  # a long import holding the write lock
        writer.add_events(conn, writer.runs()[0]["id"], 1, _events(500))
        seen = reader.runs()  # answers at once, from the last commit
        assert len(seen) == 1 and reader.run(seen[0]["id"])["event_count"] == 3
    assert reader.connection.execute("SELECT count(*) FROM event_rows").fetchone() == (503,)


def test_a_second_writer_waits_then_gets_one_line(tmp_path, monkeypatch):
    path = tmp_path / "x.db"
    first = Store.open(path)
    monkeypatch.setenv("XPROF_BUSY_TIMEOUT_MS", "200")
    second = Store.open(path)
    with first.transaction():
        with pytest.raises(StoreError, match=r"is locked by another process \(still locked after 0.2 s\)"):
            second.create_run(framework="torch", source="profile")
    second.create_run(id="1a7e", framework="torch", source="profile")  # free again
    assert first.run("1a7e")["status"] == "running"


@given(st.floats(allow_nan=False) | st.none())
def test_a_fragmentation_figure_comes_back_exactly(value):
    code = decimal_code(value)
    assert from_decimal_code(code) == value or (value is not None and math.isnan(value))
    if value is not None and math.isfinite(value):
        assert repr(from_decimal_code(code)) == repr(value)  # the sign of a zero too


def test_fragmentation_packs_small():
    assert decimal_code(0.321786) == 321786 * 2048 + 1024 - 6 and decimal_code(None) is None
    assert decimal_code(0.1 + 0.2) == 0.1 + 0.2  # 17 digits do not fit: kept as the float
    assert decimal_code(float("inf")) == float("inf")
