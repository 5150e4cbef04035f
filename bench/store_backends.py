"""Import time into PostgreSQL against SQLite for the same traces, alternating which goes
first, in one run (`.venv/bin/python bench/store_backends.py`); see docs/measurements.md."""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "kineto"
XPROF = Path(sys.executable).parent / "xprof"
sys.path.insert(0, str(REPO / "tests"))

from pg_server import Server, binaries  # noqa: E402  (the tests' throwaway cluster)
from conftest import repeated_trace  # noqa: E402


def timed_import(trace: Path, db: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(XPROF), "import", str(trace), "--db", db], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"import into {db} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=200_000, help="About this many events a trace.")
    parser.add_argument("--url", help="An existing server's maintenance URL (default: a throwaway cluster, fsync on).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xprof-bench-store-"))
    server = None
    if args.url is None:
        bin_dir = binaries()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl) here; pass --url of a server")
        server = Server(bin_dir, durable=True).init()
    try:
        traces = []
        for name in ("cpu_only.json.gz", "a100_alexnet_train.json.gz"):
            document = json.loads(gzip.decompress((FIXTURES / name).read_bytes()))
            copies = max(1, args.events // len(document["traceEvents"]))
            traces.append((name, repeated_trace(document, copies, work / f"{copies}x_{name[:-3]}"),
                           copies * len(document["traceEvents"])))
        print(f"import time, SQLite file vs PostgreSQL {'(throwaway, fsync on)' if server else args.url} "
              f"over a Unix socket; {args.rounds} rounds, the first side alternating")
        for name, trace, events in traces:
            sqlite_s, postgres_s, ratios = [], [], []
            for round_number in range(args.rounds):
                sides = ["sqlite", "postgresql"] if round_number % 2 == 0 else ["postgresql", "sqlite"]
                took = {}
                for side in sides:
                    if side == "sqlite":
                        took[side] = timed_import(trace, str(work / f"r{round_number}.db"))
                    else:
                        took[side] = timed_import(trace, server.database() if server else args.url)
                sqlite_s.append(took["sqlite"])
                postgres_s.append(took["postgresql"])
                ratios.append(took["sqlite"] / took["postgresql"])
            print(f"{name} x{events // 1000}k events: SQLite median {statistics.median(sqlite_s):.2f} s "
                  f"[{min(sqlite_s):.2f}-{max(sqlite_s):.2f}], PostgreSQL median {statistics.median(postgres_s):.2f} s "
                  f"[{min(postgres_s):.2f}-{max(postgres_s):.2f}]; PostgreSQL's speed / SQLite's, per round: "
                  f"median {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] (goal: 0.5x or more)")
    finally:
        if server:
            server.destroy()


if __name__ == "__main__":
    main()
