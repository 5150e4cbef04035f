"""What the store costs: bytes per stored event and memory event, bytes per cycle of a suite,
and a year of nightly cycles with the default retention (`.venv/bin/python bench/store_size.py`)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiler.collect.settings import RetentionSettings  # noqa: E402
from profiler.daemon.schedule import parse_duration  # noqa: E402

MiB = 2**20
RAW_TABLES = ("events", "memory_events")  # what prune removes, with the raw traces


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes of each table and index (SQLite's dbstat), indexes counted with their table."""
    conn = sqlite3.connect(db)
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
    sizes: dict[str, int] = {}
    for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        sizes[owner.get(name, name)] = sizes.get(owner.get(name, name), 0) + size
    return sizes


def measure(db: Path, cycles: int) -> None:
    """Print bytes per raw row, a cycle's size and a year's, for a store of `cycles` cycles."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RAW_TABLES + ("runs",)}
    sizes = table_bytes(db)
    artifacts = sum(p.stat().st_size for p in db.with_name(db.name + ".artifacts").rglob("*") if p.is_file())
    store = db.stat().st_size
    raw = sum(sizes.get(t, 0) for t in RAW_TABLES) + artifacts
    kept = store - sum(sizes.get(t, 0) for t in RAW_TABLES)
    print(f"store {store / MiB:.1f} MiB and raw traces {artifacts / MiB:.1f} MiB for {counts['runs']} runs "
          f"({cycles} cycle{'s' * (cycles != 1)})")
    for table in RAW_TABLES:
        print(f"  {table}: {counts[table]:,} rows, {sizes.get(table, 0) / MiB:.2f} MiB, "
              f"{sizes.get(table, 0) / max(counts[table], 1):.1f} bytes a row (table and indexes)")
    print("  the rest: " + ", ".join(f"{t} {s / 1024:.0f} KiB" for t, s in sorted(
        sizes.items(), key=lambda kv: -kv[1]) if t not in RAW_TABLES and s > 64 * 1024))
    per_cycle_raw, per_cycle_kept = raw / cycles, kept / cycles
    print(f"a cycle: {(per_cycle_raw + per_cycle_kept) / MiB:.1f} MiB, of which {per_cycle_raw / MiB:.1f} MiB "
          f"raw (events, memory events, traces) and {per_cycle_kept / MiB:.2f} MiB kept for good "
          "(runs, steps, figures)")
    keep_days = parse_duration(RetentionSettings.keep_events) / 86400
    for label, per_day in (("nightly", 1), ("every 6h", 4)):
        year = 365 * per_day * per_cycle_kept + min(365, keep_days) * per_day * per_cycle_raw
        print(f"a year {label}, raw events kept {keep_days:g} days (the default): {year / 2**30:.2f} GiB; "
              f"never pruned: {365 * per_day * (per_cycle_raw + per_cycle_kept) / 2**30:.1f} GiB")


def main() -> None:
    """Measure the store given, or one a fresh run of the suite makes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="measure this store instead of profiling a suite")
    parser.add_argument("--cycles", type=int, default=1, help="how many cycles --db holds")
    parser.add_argument("--suite", default="small")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.db:
        measure(args.db, args.cycles)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "xprof.db"
        started = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "xprof"), "run", "--suite", args.suite,
                               "--repeats", str(args.repeats), "--json", "--db", str(db)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"xprof run failed: {done.stderr.strip()[-500:]}")
        runs = json.loads(done.stdout)["runs"]
        print(f"xprof run --suite {args.suite} --repeats {args.repeats}: {len(runs)} runs in "
              f"{time.perf_counter() - started:.0f} s")
        measure(db, 1)


if __name__ == "__main__":
    main()
