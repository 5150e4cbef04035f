"""Import speed and memory against HolisticTraceAnalysis, alternating, in one run
(`.venv/bin/python bench/ingest_vs_hta.py`; needs `.[bench]`); see docs/measurements.md."""

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
# the A100 trace in the shared fixtures, repeated for the GPU streaming check
GPU_FIXTURE = Path(__file__).resolve().parents[2] / "shared/fixtures/kineto/a100_alexnet_train.json.gz"


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


def tree_peak_rss(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command and its children together (xprof's
    reading child runs beside it), sampled every 2 ms: a round of its own, not one of
    the timed rounds."""
    import psutil

    started = time.perf_counter()
    child = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        try:
            processes = [child, *child.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in processes))
        except psutil.Error:  # one ended while being read
            pass
        time.sleep(0.002)
    if child.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed (exit {child.returncode})")
    return time.perf_counter() - started, peak / 2**20


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

    import gzip

    document = json.loads(gzip.open(source).read() if source.suffix == ".gz" else source.read_bytes())
    events = document.pop("traceEvents")
    times = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    span = max(times) - min(times) + 1000.0
    steps = sum(1 for e in events if str(e.get("name", "")).startswith(STEP_PREFIX))
    ids = [v for e in events for k, v in (e.get("args") or {}).items()
           if k in ("correlation", "External id") and isinstance(v, int)]
    id_span = max(ids, default=0) + 1

    def copy_text(copy: int) -> bytes:
        shifted = []
        for event in events:
            event = dict(event)
            if isinstance(event.get("ts"), (int, float)):
                event["ts"] = round(event["ts"] + copy * span, 3)
            if event.get("args"):  # each copy's kernels link to its own calls
                event["args"] = {k: v + copy * id_span if k in ("correlation", "External id")
                                 and isinstance(v, int) else v for k, v in event["args"].items()}
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
    parser.add_argument("--rounds", type=int, default=7)
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
            xprof_runs.append(run([xprof, "import", str(trace), "--db", str(Path(tmp) / f"r{round_}.db")])[0])
            hta_runs.append(json.loads(run([sys.executable, "-c", HTA_PARSE, str(trace_dir)])[2].split()[-1]))
        _, xprof_rss = tree_peak_rss([xprof, "import", str(trace), "--db", str(Path(tmp) / "rss.db")])
        _, hta_rss = tree_peak_rss([sys.executable, "-c", HTA_PARSE, str(trace_dir)])
        best_xprof, best_hta = min(xprof_runs), min(hta_runs)
        print(f"xprof import (whole command, to committed rows): best {best_xprof:.2f} s "
              f"(median {statistics.median(xprof_runs):.2f}), "
              f"{events / best_xprof:,.0f} events/s, peak RSS {xprof_rss:.0f} MiB")
        print(f"HolisticTraceAnalysis TraceAnalysis parse:        best {best_hta:.2f} s "
              f"(median {statistics.median(hta_runs):.2f}), "
              f"{events / best_hta:,.0f} events/s, peak RSS {hta_rss:.0f} MiB")
        print(f"ratio: xprof is {best_hta / best_xprof:.1f}x faster (goal: at least 8x; medians "
              f"{statistics.median(hta_runs) / statistics.median(xprof_runs):.1f}x) "
              f"with {hta_rss / xprof_rss:.1f}x less peak memory ({args.rounds} rounds each, "
              "alternating; peak RSS of the process and its children, in a round of its own)")
        if args.big_mib:
            sources = [("CPU", trace), ("GPU", GPU_FIXTURE)] if GPU_FIXTURE.exists() else [("CPU", trace)]
            for kind, source in sources:
                big_trace = Path(tmp) / f"big_{kind}.pt.trace.json"
                big_events = repeated_trace(source, big_trace, args.big_mib)
                wall, rss = tree_peak_rss([xprof, "import", str(big_trace), "--db", str(Path(tmp) / f"{kind}.db")])
                print(f"streaming, {kind}: xprof import of a {big_trace.stat().st_size / 2**20:,.0f} MiB "
                      f"trace ({big_events:,} events, {source.name} repeated): {wall:.1f} s, "
                      f"{big_events / wall:,.0f} events/s, peak RSS {rss:.0f} MiB")
                big_trace.unlink()
            if not GPU_FIXTURE.exists():
                print(f"(no GPU streaming check: {GPU_FIXTURE} is not there)")


if __name__ == "__main__":
    main()
