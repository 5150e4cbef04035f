"""Ingest speed and memory against HolisticTraceAnalysis, side by side in one run.

    .venv/bin/pip install -e '.[bench]'       # HolisticTraceAnalysis, for the comparison
    .venv/bin/python bench/ingest_vs_hta.py [--steps 125] [--rounds 5] [--big-mib 400]
    .venv/bin/python bench/ingest_vs_hta.py --trace my.pt.trace.json     # your own trace

Makes a real ~100k-event Kineto trace by profiling the small transformer on the CPU for
--steps training steps, then times, each in a fresh process, the two alternating:
- `xprof import TRACE --db NEW.db`, the whole command, from start to committed rows;
- HolisticTraceAnalysis parsing the same file into its `TraceAnalysis` (timed inside
  its process, after its imports, so its own start-up is not counted against it).
Prints the best of --rounds for each, the ratio, events per second and peak RSS.

Then the streaming check: a --big-mib trace made by repeating that one's events (each
copy shifted past the one before, steps renumbered), imported by the whole command,
with its peak RSS beside the small trace's.

Peak RSS is the child's ru_maxrss, which counts the parent's pages until the child
execs: so this process never holds a trace itself (it counts and repeats them in child
processes), or its own 200 MB would be charged to the child.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

STEP_PREFIX = "ProfilerStep#"


def run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(command[:3])} failed: {err.read().decode().strip().splitlines()[-1:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def count_events(trace: Path) -> int:
    _, _, out = run([sys.executable, __file__, "--count-events", str(trace)])
    return int(out)


def repeated_trace(source: Path, target: Path, mib: int) -> int:
    """Write a trace of about `mib` MiB, in a child process (see the module docstring);
    returns its number of events."""
    _, _, out = run([sys.executable, __file__, "--repeat", str(source), str(target), str(mib)])
    return int(out)


def write_repeated(source: Path, target: Path, mib: int) -> int:
    """Write source's events again and again, each copy shifted in time past the one
    before and its steps renumbered, up to about `mib` MiB. Returns the events written."""
    import msgspec

    document = json.loads(source.read_bytes())
    events = document.pop("traceEvents")
    times = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    span = max(times) - min(times) + 1000.0
    steps = sum(1 for e in events if str(e.get("name", "")).startswith(STEP_PREFIX))

    def copy_text(copy: int) -> bytes:
        shifted = []
        for event in events:
            event = dict(event)
            if isinstance(event.get("ts"), (int, float)):
                event["ts"] = round(event["ts"] + copy * span, 3)
            name = event.get("name")
            if isinstance(name, str) and name.startswith(STEP_PREFIX) and name[len(STEP_PREFIX):].isdigit():
                event["name"] = f"{STEP_PREFIX}{int(name[len(STEP_PREFIX):]) + copy * steps}"
            shifted.append(event)
        return msgspec.json.encode(shifted)[1:-1]

    with open(target, "wb") as out:
        out.write(msgspec.json.encode(document)[:-1] + b', "traceEvents": [')
        first = copy_text(0)
        out.write(first)
        copies = max(1, round(mib * 2**20 / len(first)))
        for copy in range(1, copies):
            out.write(b",\n" + copy_text(copy))
        out.write(b"]}")
    return copies * len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=125)
    parser.add_argument("--trace", type=Path, help="a Kineto .json trace to use instead of making one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=400,
                        help="size of the repeated trace for the streaming check (0: skip it)")
    parser.add_argument("--count-events", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_events:  # the child processes of count_events and repeated_trace
        print(len(json.loads(args.count_events.read_bytes())["traceEvents"]))
        return
    if args.repeat:
        print(write_repeated(Path(args.repeat[0]), Path(args.repeat[1]), int(args.repeat[2])))
        return
    try:
        import hta  # noqa: F401
    except ImportError:
        sys.exit("HolisticTraceAnalysis is not installed: .venv/bin/pip install -e '.[bench]'")
    xprof = str(Path(sys.executable).parent / "xprof")
    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = Path(tmp) / "trace"
        trace_dir.mkdir()
        trace = trace_dir / "transformer.pt.trace.json"
        if args.trace:
            os.symlink(args.trace.resolve(), trace)
            made = f"from {args.trace}"
        else:
            subprocess.run([sys.executable, "-c", MAKE_TRACE, str(args.steps), str(trace)],
                           check=True, capture_output=True)
            made = f"transformer small, {args.steps} profiled CPU training steps"
        events = count_events(trace)
        size_mib = trace.stat().st_size / 2**20
        print(f"trace: {events:,} events, {size_mib:.1f} MiB ({made})")
        xprof_runs, hta_runs = [], []
        for round_ in range(args.rounds):
            db = Path(tmp) / f"round{round_}.db"
            wall, rss, _ = run([xprof, "import", str(trace), "--db", str(db)])
            xprof_runs.append((wall, rss))
            _, rss, out = run([sys.executable, "-c", HTA_PARSE, str(trace_dir)])
            hta_runs.append((json.loads(out.strip().splitlines()[-1]), rss))
        big = None
        if args.big_mib:
            big_trace = Path(tmp) / "big.pt.trace.json"
            big_events = repeated_trace(trace, big_trace, args.big_mib)
            wall, rss, _ = run([xprof, "import", str(big_trace), "--db", str(Path(tmp) / "big.db")])
            big = (big_events, big_trace.stat().st_size / 2**20, wall, rss)
    best_xprof, best_hta = min(w for w, _ in xprof_runs), min(w for w, _ in hta_runs)
    xprof_rss, hta_rss = max(r for _, r in xprof_runs), max(r for _, r in hta_runs)
    print(f"xprof import (whole command, to committed rows): best {best_xprof:.2f} s "
          f"(median {statistics.median(w for w, _ in xprof_runs):.2f}), "
          f"{events / best_xprof:,.0f} events/s, peak RSS {xprof_rss:.0f} MiB")
    print(f"HolisticTraceAnalysis TraceAnalysis parse:        best {best_hta:.2f} s "
          f"(median {statistics.median(w for w, _ in hta_runs):.2f}), "
          f"{events / best_hta:,.0f} events/s, peak RSS {hta_rss:.0f} MiB")
    print(f"ratio: xprof is {best_hta / best_xprof:.1f}x faster (goal: at least 8x; medians "
          f"{statistics.median(w for w, _ in hta_runs) / statistics.median(w for w, _ in xprof_runs):.1f}x) "
          f"with {hta_rss / xprof_rss:.1f}x less peak memory ({args.rounds} rounds each, alternating)")
    if big:
        big_events, big_mib, wall, rss = big
        print(f"streaming: xprof import of a {big_mib:,.0f} MiB trace ({big_events:,} events, the "
              f"above repeated): {wall:.1f} s, {big_events / wall:,.0f} events/s, peak RSS "
              f"{rss:.0f} MiB against {xprof_rss:.0f} MiB for the {size_mib:.0f} MiB one")


if __name__ == "__main__":
    main()
