"""Ingest speed and memory against HolisticTraceAnalysis, side by side in one run.

    .venv/bin/pip install -e '.[bench]'       # HolisticTraceAnalysis, for the comparison
    .venv/bin/python bench/ingest_vs_hta.py [--steps 125] [--rounds 3]

Makes a real ~100k-event Kineto trace by profiling the small transformer on the CPU for
--steps training steps, then times, each in a fresh process and alternating:
- `xprof import TRACE --db NEW.db`, the whole command, from start to committed rows;
- HolisticTraceAnalysis parsing the same file into its `TraceAnalysis` (timed inside
  its process, after its imports, so its own start-up is not counted against it).
Prints the best of --rounds for each, the ratio, events per second and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_TRACE = """
import sys
from torch.profiler import ProfilerActivity, profile, schedule
from workloads.torch_impl import TorchWorkload
w = TorchWorkload("transformer", "small", "train")
for _ in range(3):
    w.step()
steps = int(sys.argv[1])
plan = schedule(wait=0, warmup=1, active=steps, repeat=1)
with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True,
             schedule=plan) as prof:
    for _ in range(steps + 1):
        w.step()
        prof.step()
prof.export_chrome_trace(sys.argv[2])
"""

HTA_PARSE = """
import json, sys, time
from hta.trace_analysis import TraceAnalysis
started = time.perf_counter()
TraceAnalysis(trace_dir=sys.argv[1])
print(json.dumps(time.perf_counter() - started))
"""


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed: {err.decode().strip().splitlines()[-1:]}")
    return wall, out.decode()


def peak_rss_mib(command: list[str]) -> float:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=125)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import hta  # noqa: F401
    except ImportError:
        sys.exit("HolisticTraceAnalysis is not installed: .venv/bin/pip install -e '.[bench]'")
    xprof = str(Path(sys.executable).parent / "xprof")
    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = Path(tmp) / "trace"
        trace_dir.mkdir()
        trace = trace_dir / "transformer.pt.trace.json"
        subprocess.run([sys.executable, "-c", MAKE_TRACE, str(args.steps), str(trace)], check=True,
                       capture_output=True)
        events = len(json.loads(trace.read_text())["traceEvents"])
        print(f"trace: {events:,} events, {trace.stat().st_size / 2**20:.1f} MiB "
              f"(transformer small, {args.steps} profiled CPU training steps)")
        xprof_times, hta_times = [], []
        for round_ in range(args.rounds):
            db = Path(tmp) / f"round{round_}.db"
            wall, _ = timed([xprof, "import", str(trace), "--db", str(db)])
            xprof_times.append(wall)
            _, out = timed([sys.executable, "-c", HTA_PARSE, str(trace_dir)])
            hta_times.append(json.loads(out.strip().splitlines()[-1]))
        xprof_rss = peak_rss_mib([xprof, "import", str(trace), "--db", str(Path(tmp) / "rss.db")])
        hta_rss = peak_rss_mib([sys.executable, "-c", HTA_PARSE, str(trace_dir)])
    best_xprof, best_hta = min(xprof_times), min(hta_times)
    print(f"xprof import (whole command, to committed rows): {best_xprof:.2f} s, "
          f"{events / best_xprof:,.0f} events/s, peak RSS {xprof_rss:.0f} MiB")
    print(f"HolisticTraceAnalysis TraceAnalysis parse:        {best_hta:.2f} s, "
          f"{events / best_hta:,.0f} events/s, peak RSS {hta_rss:.0f} MiB")
    ratio = best_hta / best_xprof
    print(f"ratio: xprof is {ratio:.1f}x faster (goal: at least 8x) "
          f"with {hta_rss / xprof_rss:.1f}x less peak memory (best of {args.rounds} rounds each)")


if __name__ == "__main__":
    main()
