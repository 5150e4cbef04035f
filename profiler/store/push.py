"""`xprof push`: a store's runs copied into another (a host's SQLite file into the fleet's
server), every row and kept trace, idempotent by run id."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from profiler.store import rows as compact

# Columns of each table that hold a `strings` id, and so are renumbered on the way.
_TEXT_COLUMNS = {"events": ("name_id", "op_id", "category_id", "kind_id", "device_id", "stream_id", "layer_id",
                            "shapes_id"),
                 "figures": ("key_id",), "kind_totals": ("kind_id",)}
_REPEAT_TABLES = {
    "events": ("seq", "step", "name_id", "op_id", "category_id", "kind_id", "device_id", "stream_id", "start_ns",
               "dur_ns", "nested_ns", "correlation", "layer_id", "shapes_id"),
    "memory_events": ("seq", "ts_ns", "bytes", "total_allocated", "total_reserved", "peak_bytes_in_use",
                      "fragmentation_code", "pool_id"),
    "figures": ("grouping", "step", "key_id", "time_ns"),
    "kind_totals": ("kind_id", "events", "dur_ns"),
}
_SAMPLE_COLUMNS = ("ts_ns", "run_id", "source", "device", "utilization_pct", "memory_used_bytes",
                   "memory_total_bytes", "power_w", "sm_clock_mhz", "temperature_c", "cpu_pct", "rss_bytes")


def push(source, target, host: str | None = None, tell: Callable[[str], None] = lambda text: None) -> dict:
    """Copy `source`'s finished runs (of `host`, or all) that `target` lacks (by id, or for
    an import by its trace's sha256), each in a transaction of its own, oldest first; and
    the calibrations it lacks. Returns
    {"pushed": [ids], "already": n, "running": n, "calibrations": n}."""
    there = {run_id for run_id, in target._rows("SELECT id FROM runs")}
    # a trace imported into both stores is there already, under another id: stored once
    there_content = {sha for sha, in target._rows("SELECT content_sha256 FROM runs WHERE content_sha256 IS NOT NULL")}
    runs = [run for run in reversed(source.runs()) if host is None or run["host"] == host]
    result = {"pushed": [], "already": 0, "running": 0, "calibrations": 0}
    for number, run in enumerate(runs, 1):
        if run["id"] in there or run["content_sha256"] in there_content:
            result["already"] += 1
        elif run["status"] == "running":  # pushed once it ends: a push later takes it
            result["running"] += 1
        else:
            with target.transaction() as conn:
                _copy_run(source, target, conn, run)
            result["pushed"].append(run["id"])
            tell(f"[{number}/{len(runs)}] run {run['id']} ({run['workload'] or run['source']}, "
                 f"{run['framework']}, {run['host']})")
    result["calibrations"] = _copy_calibrations(source, target, host)
    return result


def _copy_run(source, target, conn, run: dict) -> None:
    run_id = run["id"]
    columns = [c for c in run if c != "newness"]
    conn.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                 tuple(run[c] for c in columns))
    steps = source._rows("SELECT repeat, step, wall_ns, profiled, start_ns, peak_bytes, reserved_bytes FROM steps"
                         " WHERE run_id = ? ORDER BY repeat, step", (run_id,))
    compact.insert_rows(conn, "steps", ["run_id", "repeat", "step", "wall_ns", "profiled", "start_ns", "peak_bytes",
                                        "reserved_bytes"], ((run_id, *row) for row in steps), len(steps))
    texts = _text_map(source, target, run_id)
    pools = {pool_id: compact._pool(conn, device, allocator) for pool_id, device, allocator in source._rows(
        "SELECT DISTINCT p.id, p.device, p.allocator FROM pools p JOIN memory_events m ON m.pool_id = p.id"
        " JOIN repeats r ON r.id = m.repeat_id WHERE r.run_id = ?", (run_id,))}
    for old_id, repeat, origin, peak, allocations in source._rows(
            "SELECT id, repeat, origin_ns, peak_allocated, allocations FROM repeats WHERE run_id = ?", (run_id,)):
        new_id = conn.execute("INSERT INTO repeats (run_id, repeat, origin_ns, peak_allocated, allocations)"
                              " VALUES (?, ?, ?, ?, ?) RETURNING id",
                              (run_id, repeat, origin, peak, allocations)).fetchone()[0]
        for table, table_columns in _REPEAT_TABLES.items():
            rows = source._rows(f"SELECT {', '.join(table_columns)} FROM {table} WHERE repeat_id = ?", (old_id,))
            mapped = [_renumbered(row, table_columns, _TEXT_COLUMNS.get(table, ()), texts, pools) for row in rows]
            compact.insert_rows(conn, table, ["repeat_id", *table_columns], ((new_id, *row) for row in mapped),
                                len(mapped))
    for kind, path, sha256, size, summary in source._rows(
            "SELECT kind, path, sha256, bytes, summary FROM artifacts WHERE run_id = ?", (run_id,)):
        local = source.artifact_file(path)
        conn.execute("INSERT INTO artifacts (run_id, kind, path, sha256, bytes, summary) VALUES (?, ?, ?, ?, ?, ?)",
                     (run_id, kind, path, sha256, size, summary))
        if target.url and Path(local).exists():
            conn.execute("INSERT INTO artifact_blobs (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                         (sha256, Path(local).read_bytes()))
    samples = source._rows(f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM samples WHERE run_id = ?", (run_id,))
    compact.insert_rows(conn, "samples", list(_SAMPLE_COLUMNS), iter(samples), len(samples))


def _text_map(source, target, run_id: str) -> dict[int, int]:
    """Source string id -> target string id, for every text the run's rows name."""
    repeats = "SELECT id FROM repeats WHERE run_id = ?"
    used = " UNION ".join(
        [f"SELECT {column} FROM events WHERE repeat_id IN ({repeats})" for column in _TEXT_COLUMNS["events"]]
        + [f"SELECT key_id FROM figures WHERE repeat_id IN ({repeats})",
           f"SELECT kind_id FROM kind_totals WHERE repeat_id IN ({repeats})"])
    pairs = source._rows(f"SELECT id, text FROM strings WHERE id IN ({used})", (run_id,) * 10)
    ids = compact.intern(target.connection, (text for _, text in pairs))
    return {old: ids[text] for old, text in pairs}


def _renumbered(row: tuple, columns: tuple, text_columns: tuple, texts: dict, pools: dict) -> tuple:
    return tuple(texts.get(value) if name in text_columns and value is not None
                 else pools[value] if name == "pool_id" else value
                 for name, value in zip(columns, row))


def _copy_calibrations(source, target, host: str | None) -> int:
    columns = ("host", "fingerprint", "device", "device_name", "framework", "dtype", "flops_per_s", "flops_spread",
               "bytes_per_s", "bytes_spread", "repeats", "detail", "measured_at")
    known = set(target._rows("SELECT host, device, framework, dtype, measured_at FROM calibrations"))
    rows = [row for row in source._rows(f"SELECT {', '.join(columns)} FROM calibrations")
            if (host is None or row[0] == host) and (row[0], row[2], row[4], row[5], row[12]) not in known]
    if rows:
        with target.transaction() as conn:
            conn.executemany(f"INSERT INTO calibrations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                             rows)
    return len(rows)
