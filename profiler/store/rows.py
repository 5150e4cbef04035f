"""Events and memory events as compact rows (interned strings, times after their repeat's
origin), and the figures kept from them when a run finishes; see docs/store.md."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from itertools import chain, islice, repeat
from operator import add, sub
from typing import Callable, Iterable, Iterator

from profiler.traces.events import EventColumns, MemoryColumns

DEVICE_KINDS = ("kernel", "memcpy", "memset")
# figures.grouping: what a figure's key is
GROUPINGS = {"category": 0, "op": 1}
OTHER = "other"  # the category of an event no rule placed
# Rows per INSERT statement: 50 bound at once beat one a statement by 25% (docs/store.md).
ROWS_PER_INSERT = 50
# SQLite binds at most 32,766 parameters; interning looks strings up this many at a time.
LOOKUP_CHUNK = 500
# Events a figures query groups at once (see keep_figures): 65,536 sort in about 2 MB.
FIGURES_CHUNK = 1 << 16
_EXPONENT = 2048  # decimal_code: exponents -1024..1023 of a shortest decimal form


def decimal_code(value: float | None):
    """A float as an integer that keeps it exactly (0.321786 in 3 bytes, not a REAL's 8):
    the digits and exponent of its shortest decimal form, packed, negated when negative.
    Floats it cannot pack (too many digits, not finite, -0.0) and None stay as they are."""
    if value is None or not math.isfinite(value) or (value == 0 and math.copysign(1, value) < 0):
        return value
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    mantissa = int("".join(map(str, digits)))
    code = mantissa * _EXPONENT + exponent + _EXPONENT // 2
    if not 0 <= exponent + _EXPONENT // 2 < _EXPONENT or code >= 1 << 62:
        return float(value)
    return -code if sign else code


def from_decimal_code(code) -> float | None:
    """The float decimal_code packed."""
    if code is None or isinstance(code, float):
        return code
    mantissa, exponent = divmod(abs(code), _EXPONENT)
    return float(f"{'-' if code < 0 else ''}{mantissa}e{exponent - _EXPONENT // 2}")


def intern(conn, texts: Iterable[str | None]) -> dict[str | None, int | None]:
    """Each text's id in `strings`, adding those not there; None maps to None. Read from
    the table every time, never cached: a rolled-back savepoint takes new ids with it. On a
    server the new texts commit at once, outside the caller's transaction, so writers
    adding the same text in another order never wait on each other (an unused text is harmless)."""
    conn = getattr(conn, "autonomous", conn)
    wanted = sorted({text for text in texts if text is not None})
    ids: dict[str | None, int | None] = {None: None}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        marks = ", ".join("?" * len(chunk))
        ids.update(conn.execute(f"SELECT text, id FROM strings WHERE text IN ({marks})", chunk))
    missing = [text for text in wanted if text not in ids]
    if missing:
        conn.executemany("INSERT INTO strings (text) VALUES (?) ON CONFLICT (text) DO NOTHING", zip(missing))
        for start in range(0, len(missing), LOOKUP_CHUNK):
            chunk = missing[start:start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            ids.update(conn.execute(f"SELECT text, id FROM strings WHERE text IN ({marks})", chunk))
    return ids


def repeat_row(conn, run_id: str, repeat_number: int, origin_ns: int) -> tuple[int, int]:
    """The id and origin of a run's repeat, made with `origin_ns` on its first rows."""
    row = conn.execute("SELECT id, origin_ns FROM repeats WHERE run_id = ? AND repeat = ?",
                       (run_id, repeat_number)).fetchone()
    if row:
        return row
    cursor = conn.execute("INSERT INTO repeats (run_id, repeat, origin_ns) VALUES (?, ?, ?) RETURNING id",
                          (run_id, repeat_number, origin_ns))
    return cursor.fetchone()[0], origin_ns


def _next_seq(conn, table: str, repeat_id: int) -> int:
    return conn.execute(f"SELECT COALESCE(MAX(seq) + 1, 0) FROM {table} WHERE repeat_id = ?",
                        (repeat_id,)).fetchone()[0]


def add_events(conn, run_id: str, repeat_number: int, events: EventColumns,
               classify: Callable | None) -> int:
    """Store a repeat's events after those it has; `classify(event)` sets categories, and
    is called once per distinct (name, kind, op)."""
    if not len(events):
        return 0
    repeat_id, origin = repeat_row(conn, run_id, repeat_number, min(events.start_ns))
    # the distinct texts come from a few hundred keys, found in C, not from every event
    keys = dict(zip(zip(events.name, events.kind, events.op), itertools.count()))
    category = {key: classify(events[index]) if classify else None for key, index in keys.items()}
    tracks = dict.fromkeys(zip(events.device, events.stream))
    extras = set(events.layer).union(events.shapes)
    ids = intern(conn, chain(chain.from_iterable(keys), category.values(), chain.from_iterable(tracks), extras))
    category_id = {key: ids[text] for key, text in category.items()}
    if None in events.self_ns:
        nested = [None if own is None else dur - own for dur, own in zip(events.dur_ns, events.self_ns)]
    else:
        nested = map(sub, events.dur_ns, events.self_ns)
    look = ids.__getitem__
    rows = zip(repeat(repeat_id), itertools.count(_next_seq(conn, "events", repeat_id)), events.step,
               map(look, events.name), map(look, events.op),
               map(category_id.__getitem__, zip(events.name, events.kind, events.op)),
               map(look, events.kind), map(look, events.device), map(look, events.stream),
               map(sub, events.start_ns, repeat(origin)), events.dur_ns, nested, events.correlation)
    columns = ["repeat_id", "seq", "step", "name_id", "op_id", "category_id", "kind_id", "device_id", "stream_id",
               "start_ns", "dur_ns", "nested_ns", "correlation"]
    # a trace without layers or shapes (most imports) binds no column of NULLs for them:
    # 2 of 15 columns a row, a third of the rows' insert time on a GPU trace
    if extras - {None}:
        rows = map(add, rows, zip(map(look, events.layer), map(look, events.shapes)))
        columns += ["layer_id", "shapes_id"]
    insert_rows(conn, "events", columns, rows, len(events))
    return len(events)


def add_memory(conn, run_id: str, repeat_number: int, memory: MemoryColumns) -> int:
    """Store a repeat's memory events after those it has."""
    if not len(memory):
        return 0
    repeat_id, origin = repeat_row(conn, run_id, repeat_number, min(memory.ts_ns))
    pools = {pool: _pool(conn, *pool) for pool in set(zip(memory.device, memory.allocator))}
    codes = {value: decimal_code(value) for value in set(memory.fragmentation)}
    rows = zip(repeat(repeat_id), itertools.count(_next_seq(conn, "memory_events", repeat_id)),
               map(sub, memory.ts_ns, repeat(origin)), memory.bytes, memory.total_allocated,
               memory.total_reserved, memory.peak_bytes_in_use, map(codes.__getitem__, memory.fragmentation),
               map(pools.__getitem__, zip(memory.device, memory.allocator)))
    insert_rows(conn, "memory_events", ["repeat_id", "seq", "ts_ns", "bytes", "total_allocated",
                                        "total_reserved", "peak_bytes_in_use", "fragmentation_code",
                                        "pool_id"], rows, len(memory))
    return len(memory)


def _pool(conn, device: str | None, allocator: str | None) -> int:
    """The id of a (device, allocator) pair; looked up first, since SQLite's UNIQUE lets NULLs
    repeat. On a server, made outside the caller's transaction, as `intern` does."""
    conn = getattr(conn, "autonomous", conn)
    find = "SELECT id FROM pools WHERE device IS ? AND allocator IS ?"
    row = conn.execute(find, (device, allocator)).fetchone()
    if row:
        return row[0]
    conn.execute("INSERT INTO pools (device, allocator) VALUES (?, ?) ON CONFLICT DO NOTHING", (device, allocator))
    return conn.execute(find, (device, allocator)).fetchone()[0]


def keep_figures(conn, run_id: str) -> None:
    """Keep what analysis reads of a run apart from its raw events, so that it outlives
    them; made again from scratch each time, never for a pruned run. See docs/store.md."""
    pruned = conn.execute("SELECT events_pruned_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    repeat_ids = [row[0] for row in conn.execute("SELECT id FROM repeats WHERE run_id = ?", (run_id,))]
    if not repeat_ids or (pruned and pruned[0] is not None):
        return
    marks = ", ".join("?" * len(repeat_ids))
    for table in ("figures", "kind_totals"):
        conn.execute(f"DELETE FROM {table} WHERE repeat_id IN ({marks})", repeat_ids)
    kinds = intern(conn, (*DEVICE_KINDS, "cpu_op", OTHER))
    device_kinds = [kinds[kind] for kind in DEVICE_KINDS]
    device = conn.execute(f"SELECT 1 FROM events WHERE repeat_id IN ({marks}) AND kind_id IN (?, ?, ?)"
                          " LIMIT 1", (*repeat_ids, *device_kinds)).fetchone() is not None
    timed_kinds, time = (device_kinds, "e.dur_ns") if device else ([kinds["cpu_op"]], "e.dur_ns - e.nested_ns")
    kind_marks = ", ".join("?" * len(timed_kinds))
    # GROUP BY sorts every row it groups, in memory (temp_store): a seq range at a time,
    # the sums added up in place, keeps that bounded however many events a run has
    for repeat_id in repeat_ids:
        last = conn.execute("SELECT MAX(seq) FROM events WHERE repeat_id = ?", (repeat_id,)).fetchone()[0]
        for low in range(0, -1 if last is None else last + 1, FIGURES_CHUNK):
            where = "e.repeat_id = ? AND e.seq BETWEEN ? AND ?"
            place = (repeat_id, low, low + FIGURES_CHUNK - 1)
            for grouping, key in ((GROUPINGS["category"], f"COALESCE(e.category_id, {kinds[OTHER]})"),
                                  (GROUPINGS["op"], "COALESCE(e.op_id, e.name_id)")):
                conn.execute(
                    "INSERT INTO figures (repeat_id, grouping, step, key_id, time_ns)"
                    f" SELECT e.repeat_id, {grouping}, e.step, {key}, COALESCE(SUM({time}), 0) FROM events e"
                    f" WHERE {where} AND e.kind_id IN ({kind_marks}) AND e.step IS NOT NULL"
                    " GROUP BY e.repeat_id, e.step, 4 ON CONFLICT (repeat_id, grouping, step, key_id)"
                    " DO UPDATE SET time_ns = figures.time_ns + excluded.time_ns",
                    (*place, *timed_kinds))
            conn.execute("INSERT INTO kind_totals (repeat_id, kind_id, events, dur_ns)"
                         f" SELECT e.repeat_id, e.kind_id, count(*), SUM(e.dur_ns) FROM events e WHERE {where}"
                         " GROUP BY e.repeat_id, e.kind_id ON CONFLICT (repeat_id, kind_id) DO UPDATE SET"
                         " events = kind_totals.events + excluded.events,"
                         " dur_ns = kind_totals.dur_ns + excluded.dur_ns", place)
    conn.execute("UPDATE repeats SET (peak_allocated, allocations) = (SELECT MAX(m.total_allocated),"
                 " SUM(CASE WHEN m.bytes > 0 THEN 1 ELSE 0 END) FROM memory_events m WHERE m.repeat_id = repeats.id)"
                 f" WHERE id IN ({marks})", repeat_ids)
    conn.execute("UPDATE runs SET basis = ? WHERE id = ?", ("device" if device else "cpu", run_id))


def insert_rows(conn, table: str, columns: list[str], rows: Iterator[tuple], count: int) -> None:
    """INSERT `count` rows, ROWS_PER_INSERT to a statement, streaming them from `rows`; on
    a server, one COPY."""
    if hasattr(conn, "copy_rows"):
        conn.copy_rows(table, columns, rows)
        return
    one_row = f"({', '.join('?' * len(columns))})"
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    whole = count - count % ROWS_PER_INSERT
    if whole:
        values = chain.from_iterable(islice(rows, whole))
        conn.executemany(insert + ", ".join([one_row] * ROWS_PER_INSERT),
                         zip(*[values] * (len(columns) * ROWS_PER_INSERT)))
    rest = list(rows)
    if rest:
        conn.execute(insert + ", ".join([one_row] * len(rest)), tuple(chain.from_iterable(rest)))
