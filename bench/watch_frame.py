"""The cost of one `xprof watch` frame on a store with ten times the history of another
(`.venv/bin/python bench/watch_frame.py`); see docs/measurements.md."""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from diff_speed import add_run  # noqa: E402
from profiler.store.store import Store  # noqa: E402
from profiler.telemetry.sampling import TelemetrySample  # noqa: E402

FRAMES = 60


KERNELS_PER_RUN = 7_200
WORKLOADS = 7


def build(path: Path, kernels: int, samples: int) -> None:
    """History grows as nights pass: more runs of the same 7 workloads in 2 frameworks."""
    store = Store.open(path)
    rng = random.Random(2)
    runs = max(kernels // KERNELS_PER_RUN, 2 * WORKLOADS)
    for i in range(runs):
        add_run(store, "torch" if i % 2 == 0 else "tensorflow", f"w{i // 2 % WORKLOADS}",
                KERNELS_PER_RUN, rng)
    now = time.time_ns()
    rows = [TelemetrySample(now - (samples - i) * 10**7, "host", "host", utilization_pct=50.0,
                            cpu_pct=90.0, rss_bytes=2**30) for i in range(samples)]
    store.add_samples(rows)
    store.close()


class Viewer:
    """What `xprof watch` does per frame: a snapshot (store + daemon status) and its drawing."""

    def __init__(self, path: Path):
        from rich.console import Console

        from analysis.snapshot import SnapshotReader
        from profiler.daemon.files import DaemonFiles, read_status

        self.path = path
        files = DaemonFiles.of(path, path.parent / "state")
        self.reader = SnapshotReader(Store.open(path, create=False), lambda: read_status(files))
        self.console = Console(file=io.StringIO(), width=80, height=24)

    def frame_ms(self) -> float:
        from views.watch import render_frame

        started = time.perf_counter()
        snapshot = self.reader.take()
        self.console.print(render_frame(snapshot, str(self.path)))
        return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"small": 10, "large": 1}
        viewers = {}
        for label, scale in sizes.items():
            path = Path(tmp) / f"{label}.db"
            build(path, args.kernels // scale, args.samples // scale)
            viewers[label] = Viewer(path)
        first = {label: viewer.frame_ms() for label, viewer in viewers.items()}
        # frames of the two stores alternate, so a busy moment of the machine falls on both
        times = {label: [] for label in viewers}
        for _ in range(FRAMES):
            for label, viewer in viewers.items():
                times[label].append(viewer.frame_ms())
        results = {label: statistics.median(t) for label, t in times.items()}
        for label, scale in sizes.items():
            print(f"{label} store ({args.kernels // scale:,} kernel rows, {args.samples // scale:,}"
                  f" samples): {results[label]:.1f} ms per frame (median of {FRAMES}, alternated); "
                  f"first frame, before its comparisons are memoized: {first[label]:.0f} ms")
    ratio = results["large"] / results["small"]
    goal = "meets" if results["large"] < 50 and ratio <= 1.2 else "MISSES"
    print(f"large / small: {ratio:.2f}x ({goal} the goal: < 50 ms and <= 1.2x)")


if __name__ == "__main__":
    main()
