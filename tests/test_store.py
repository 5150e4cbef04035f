"""Event inserts into a real SQLite store: rows go in ROWS_PER_INSERT to a statement,
and must come back exactly, whatever the count; columns and objects store alike."""

import pytest

from profiler.traces.events import CPU_OP, KERNEL, EventColumns, TraceEvent, MemoryColumns, MemoryEvent
from profiler.store.store import ROWS_PER_INSERT, Store

KERNEL_COLUMNS = "name, kind, start_ns, dur_ns, device, stream, op, self_ns, correlation, step, category"


def _events(count):
    return [TraceEvent(f"op{i % 3}", CPU_OP if i % 2 else KERNEL, 1_000 * i, 10 + i, "cpu", "7",
                        op=None if i % 5 == 0 else f"aten::op{i % 3}", self_ns=i, correlation=i or None,
                        step=i // 10) for i in range(count)]


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "x.db")
    store.create_run(id="r1", framework="torch", source="import")
    yield store
    store.close()


@pytest.mark.parametrize("count", [0, 1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1,
                                   3 * ROWS_PER_INSERT + 7])
def test_kernel_rows_come_back_exactly(store, count):
    events = _events(count)
    classified = []

    def classify(event):
        classified.append((event.name, event.kind, event.op))
        return f"{event.kind}/{event.op}"

    with store.transaction() as conn:
        assert store.add_events(conn, "r1", 2, EventColumns.of(events), classify) == count
    rows = store.connection.execute(f"SELECT run_id, repeat, {KERNEL_COLUMNS} FROM kernels ORDER BY rowid").fetchall()
    assert rows == [("r1", 2, e.name, e.kind, e.start_ns, e.dur_ns, e.device, e.stream, e.op, e.self_ns,
                     e.correlation, e.step, f"{e.kind}/{e.op}") for e in events]
    # called once for each distinct (name, kind, op), which is all a category may depend on
    assert len(classified) == len(set(classified)) and set(classified) == {(e.name, e.kind, e.op) for e in events}


def test_event_objects_store_like_columns(store):
    events = _events(ROWS_PER_INSERT + 3)
    memory = [MemoryEvent(5 * i, 64 * (-1) ** i, 64 * i, "cuda:0", "GPU_0_bfc", None, 128, 0.5) for i in range(57)]
    with store.transaction() as conn:
        store.add_events(conn, "r1", 0, events)
        store.add_events(conn, "r1", 1, EventColumns.of(events))
        store.add_memory(conn, "r1", 0, memory)
        store.add_memory(conn, "r1", 1, MemoryColumns.of(memory))
    db = store.connection
    kernels = [db.execute(f"SELECT {KERNEL_COLUMNS} FROM kernels WHERE repeat = ? ORDER BY rowid", (r,)).fetchall()
               for r in (0, 1)]
    assert kernels[0] == kernels[1] and len(kernels[0]) == len(events)
    stored = [db.execute("SELECT ts_ns, bytes, total_allocated, device, allocator, total_reserved,"
                         " peak_bytes_in_use, fragmentation FROM memory_events WHERE repeat = ? ORDER BY rowid",
                         (r,)).fetchall() for r in (0, 1)]
    assert stored[0] == stored[1] == [(m.ts_ns, m.bytes, m.total_allocated, m.device, m.allocator,
                                       m.total_reserved, m.peak_bytes_in_use, m.fragmentation) for m in memory]


def test_columns_iterate_as_the_events_they_hold():
    events = _events(12)
    columns = EventColumns.of(events)
    assert list(columns) == events and columns[5] == events[5] and len(columns) == 12
    assert columns.count(KERNEL) == 6 and columns.total_dur_ns(CPU_OP) == sum(e.dur_ns for e in events[1::2])
    assert EventColumns.of(events[:-1]) != columns
