"""Profiler overhead per framework and the telemetry samplers' cost
(`.venv/bin/python bench/profiler_overhead.py`); see docs/measurements.md."""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def profiler_overhead(suite: str, repeats: int, steps: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        xprof = Path(sys.executable).parent / "xprof"
        started = time.perf_counter()
        done = subprocess.run(
            [str(xprof), "run", "--suite", suite, "--repeats", str(repeats), "--steps", str(steps),
             "--json", "--db", str(db)], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"xprof run --suite {suite} failed: {done.stderr.strip().splitlines()[-1:]}")
        conn = sqlite3.connect(db)
        rows = []
        for run in json.loads(done.stdout)["runs"]:
            walls = {0: [], 1: []}
            for profiled, wall_ns in conn.execute(
                    "SELECT profiled, wall_ns FROM steps WHERE run_id = ?", (run["id"],)):
                walls[profiled].append(wall_ns)
            plain, profiled = statistics.median(walls[0]), statistics.median(walls[1])
            rows.append({"workload": run["workload"], "framework": run["framework"],
                         "plain_ms": plain / 1e6, "profiled_ms": profiled / 1e6,
                         "ratio": profiled / plain})
        print(f"\n{suite} suite: {len(rows)} runs x {repeats} repeats x {steps}+{steps} steps "
              f"in {elapsed:.0f} s")
        return rows


def print_overhead(rows: list[dict]) -> None:
    print(f"{'workload':<12} {'framework':<11} {'plain ms':>9} {'profiled ms':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['workload']:<12} {r['framework']:<11} {r['plain_ms']:>9.3f} "
              f"{r['profiled_ms']:>12.3f} {r['ratio']:>6.2f}")
    for framework in ("torch", "tensorflow"):
        ratios = [r["ratio"] for r in rows if r["framework"] == framework]
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        print(f"  {framework}: profiled / unprofiled step time, geometric mean {geomean:.2f}x "
              f"(range {min(ratios):.2f} to {max(ratios):.2f})")


def sampler_cost_s(calls: int = 500) -> float:
    """CPU seconds one round of sampling costs (host psutil + NVML where present),
    averaged over many rounds, as the sampler thread makes them."""
    from profiler.telemetry.host import HostSampler
    from profiler.telemetry.nvml import NvmlSampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        samplers = [HostSampler(child.pid), NvmlSampler()]
        for sampler in samplers:
            sampler.sample()
        started = time.process_time()
        for _ in range(calls):
            for sampler in samplers:
                sampler.sample()
        return (time.process_time() - started) / calls
    finally:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=["tiny", "small"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    for suite in args.suites:
        print_overhead(profiler_overhead(suite, args.repeats, args.steps))
    cost = sampler_cost_s()
    print(f"\ntelemetry samplers (host psutil + NVML where present): {cost * 1e6:.0f} µs of CPU "
          "per round; share of step time they can take:")
    for interval in (1.0, 0.1):
        share = cost / interval
        verdict = "meets" if share < 0.01 else "MISSES"
        print(f"  a round every {interval:g} s: {100 * share:.3f}% ({verdict} the 1% goal)")


if __name__ == "__main__":
    main()
