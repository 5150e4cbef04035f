"""The cost of one `xprof watch` frame as history grows.

    .venv/bin/python bench/watch_frame.py [--kernels 1000000] [--samples 100000]

Builds two stores through the store's own bulk inserts, one with --kernels kernel rows
and --samples telemetry samples, one with a tenth of each, then times a frame (a
snapshot of the store plus its rendering) after the first, whose comparisons are
memoized. Goal: under 50 ms, and the larger store no more than 1.2x the smaller.
"""

from __future__ import annotations

import argparse
import io
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from diff_speed import _fill  # noqa: E402
from profiler.store import Store  # noqa: E402
from profiler.telemetry import TelemetrySample  # noqa: E402

FRAMES = 20


KERNELS_PER_RUN = 7_200
WORKLOADS = 7


def build(path: Path, kernels: int, samples: int) -> None:
    """History grows as nights pass: more runs of the same 7 workloads in 2 frameworks."""
    store = Store.open(path)
    rng = random.Random(2)
    runs = max(kernels // KERNELS_PER_RUN, 2 * WORKLOADS)
    for i in range(runs):
        framework = "torch" if i % 2 == 0 else "tensorflow"
        run_id = store.create_run(framework=framework, workload=f"w{i // 2 % WORKLOADS}",
                                  mode="train", execution="eager", size="small",
                                  source="profile", device="cuda:0")
        _fill(store, run_id, KERNELS_PER_RUN, rng, 1.0)
    now = time.time_ns()
    rows = [TelemetrySample(now - (samples - i) * 10**7, "host", "host", utilization_pct=50.0,
                            cpu_pct=90.0, rss_bytes=2**30) for i in range(samples)]
    store.add_samples(rows)
    store.close()


def frame_ms(path: Path) -> float:
    from rich.console import Console

    from analysis.snapshot import SnapshotReader
    from views.watch import render_frame

    conn = sqlite3.connect(path)
    reader = SnapshotReader(conn)
    console = Console(file=io.StringIO(), width=80, height=24)
    console.print(render_frame(reader.take(), str(path)))  # memoizes the comparisons
    times = []
    for _ in range(FRAMES):
        started = time.perf_counter()
        console.print(render_frame(reader.take(), str(path)))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, scale in (("small", 10), ("large", 1)):
            path = Path(tmp) / f"{label}.db"
            build(path, args.kernels // scale, args.samples // scale)
            results[label] = frame_ms(path)
            print(f"{label} store ({args.kernels // scale:,} kernel rows, {args.samples // scale:,}"
                  f" samples): {results[label]:.1f} ms per frame (median of {FRAMES})")
    ratio = results["large"] / results["small"]
    goal = "meets" if results["large"] < 50 and ratio <= 1.2 else "MISSES"
    print(f"large / small: {ratio:.2f}x ({goal} the goal: < 50 ms and <= 1.2x)")


if __name__ == "__main__":
    main()
