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
import sys
from hta.trace_analysis import TraceAnalysis
TraceAnalysis(trace_dir=sys.argv[1])
"""

# The floor, each a whole process as the import is: decoding the same bytes into the
# same typed structs and nothing more; and storing the rows read before (a pickle of
# the TraceData, made once) with their categories, the run's figures and the commit,
# into a new store.
DECODE_ONLY = """
import sys
from pathlib import Path
from profiler.traces import kineto
from profiler.traces.json_pieces import ArrayPieces
with kineto._opened(Path(sys.argv[1])) as read:
    for _ in ArrayPieces(read, "traceEvents", kineto._decode_events, kineto._DOCUMENT.decode,
                         kineto.CHUNK_BYTES):
        pass
"""
INSERT_ONLY = """
import pickle, sys
from analysis.taxonomy import classify_event
from profiler.store import open_store
trace = pickle.load(open(sys.argv[1], "rb"))
store = open_store(sys.argv[2])
with store.transaction() as conn:
    store.insert_run(conn, id="floor", status="ok", framework="pytorch", source="import",
                     started_at=0.0, repeats=1)
    store.add_events(conn, "floor", 0, trace.events, classify_event)
    store.add_memory(conn, "floor", 0, trace.memory)
    store.add_steps(conn, "floor", trace.steps)
    store.keep_figures(conn, "floor")
"""
READ_TO_PICKLE = """
import pickle, sys
from profiler.traces.events import whole_trace_step
from profiler.traces import read_trace
trace = read_trace(sys.argv[1])
whole_trace_step(trace)
pickle.dump(trace, open(sys.argv[2], "wb"), protocol=pickle.HIGHEST_PROTOCOL)
"""

STEP_PREFIX = "ProfilerStep#"
# the A100 trace in the shared fixtures, repeated into the GPU trace and for the streaming check
ROOT = Path(__file__).resolve().parents[1]
GPU_FIXTURE = ROOT.parent / "shared/fixtures/kineto/a100_alexnet_train.json.gz"  # CUDA
ROCM_FIXTURE = ROOT.parent / "shared/fixtures/kineto/mi250_minitoy_train.json.gz"  # ROCm, with shapes


def run(command: list[str], label: str | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one child process, from its start to its exit."""
    started = time.perf_counter()
    child = subprocess.run(command, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        last = (child.stderr.decode().strip().splitlines() or ["no output"])[-1]
        sys.exit(f"{label or ' '.join(command[:2])} failed: {last}")
    return wall, child.stdout.decode()


def tree_peak_rss(command: list[str]) -> float:
    """Peak RSS (MiB) of a command and its children together (xprof's reading child
    runs beside it), sampled every 2 ms: a round of its own, not one of the timed rounds."""
    import psutil

    child = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    peak = 0
    while child.poll() is None:
        try:
            processes = [child, *child.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in processes))
        except psutil.Error:  # one ended while being read
            pass
        time.sleep(0.002)
    if child.returncode != 0:
        sys.exit(f"{' '.join(command[:2])} failed (exit {child.returncode})")
    return peak / 2**20


def count_events(trace: Path) -> int:
    return int(run([sys.executable, __file__, "--count-events", str(trace)], "counting events")[1])


def repeated_trace(source: Path, target: Path, copies: int) -> int:
    """Write `copies` of source (see write_repeated) in a child process, so that this
    one never holds a trace; returns its number of events."""
    return int(run([sys.executable, __file__, "--repeat", str(source), str(target), str(copies)])[1])


def copies_for(source: Path, *, events: int = 0, mib: int = 0) -> int:
    """How many copies of source make about `events` events or `mib` MiB."""
    return int(run([sys.executable, __file__, "--copies", str(source), str(events), str(mib)])[1])


# Kineto writes a thread's host activity for the whole trace first, then the runtime calls,
# device activity and flows: a repeated GPU trace keeps that order across its copies.
HOST_CATEGORIES = {"cpu_op", "operator", "user_annotation", "python_function", "cpu_instant_event"}


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as raw:
        return raw.read(2) == b"\x1f\x8b"


def _document(source: Path) -> dict:
    import gzip

    return json.loads(gzip.open(source).read() if _gzipped(source) else source.read_bytes())


def write_repeated(source: Path, target: Path, copies: int) -> int:
    """Write source's events `copies` times, each copy shifted in time past the one
    before, its ids past the last copy's and its steps renumbered: the host activity of
    every copy first, then the rest of every copy (two passes, so that memory holds one
    copy). Returns the events written."""
    import msgspec

    document = _document(source)
    events = document.pop("traceEvents")
    times = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    span = max(times) - min(times) + 1000.0
    steps = sum(1 for e in events if str(e.get("name", "")).startswith(STEP_PREFIX))
    ids = [v for e in events for k, v in (e.get("args") or {}).items()
           if k in ("correlation", "External id") and isinstance(v, int)]
    id_span = max(ids, default=0) + 1
    host = [e for e in events if e.get("cat") in HOST_CATEGORIES or e.get("name") == "[memory]"]
    rest = [e for e in events if not (e.get("cat") in HOST_CATEGORIES or e.get("name") == "[memory]")]

    def copy_text(part: list[dict], copy: int) -> bytes:
        shifted = []
        for event in part:
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
        separator = b""
        for part in (host, rest):
            for copy in range(copies):
                text = copy_text(part, copy)
                if text:
                    out.write(separator + text)
                    separator = b",\n"
        out.write(b"]}")
    return copies * len(events)


def compare(label: str, trace: Path, tmp: Path, rounds: int) -> dict:
    """Time both tools on one trace, alternating which goes first; then the floor, and
    the peak RSS of each in a round of its own."""
    xprof = str(Path(sys.executable).parent / "xprof")
    trace_dir = trace.parent
    times: dict[str, list[float]] = {"xprof": [], "hta": []}
    for round_ in range(rounds):
        sides = [("xprof", [xprof, "import", str(trace), "--db", str(tmp / f"{label}{round_}.db")]),
                 ("hta", [sys.executable, "-c", HTA_PARSE, str(trace_dir)])]
        order = sides if round_ % 2 == 0 else sides[::-1]
        for side, command in order:
            times[side].append(run(command, f"{side} on the {label} trace")[0])
        print(f"  {label} round {round_ + 1}/{rounds}: " + ", then ".join(
            f"{'xprof' if side == 'xprof' else 'HolisticTraceAnalysis'} {times[side][-1]:.2f} s"
            for side, _ in order), file=sys.stderr)
    rows = tmp / f"{label}.pickle"
    run([sys.executable, "-c", READ_TO_PICKLE, str(trace), str(rows)], "reading the rows for the floor")
    decode = [run([sys.executable, "-c", DECODE_ONLY, str(trace)], "decoding alone")[0] for _ in range(3)]
    insert = [run([sys.executable, "-c", INSERT_ONLY, str(rows), str(tmp / f"{label}_floor{i}.db")],
                  "storing alone")[0] for i in range(3)]
    return {"times": times, "ratios": [h / x for x, h in zip(times["xprof"], times["hta"])],
            "decode": statistics.median(decode), "insert": statistics.median(insert),
            "xprof_rss": tree_peak_rss([xprof, "import", str(trace), "--db", str(tmp / f"{label}rss.db")]),
            "hta_rss": tree_peak_rss([sys.executable, "-c", HTA_PARSE, str(trace_dir)])}


def report(label: str, trace: Path, events: int, made: str, found: dict) -> list[str]:
    """Print one trace's figures; the goals it misses."""
    label = label if label == "CPU" else f"GPU ({label})" if label in ("CUDA", "ROCm") else label
    times, ratios = found["times"], found["ratios"]
    xprof, hta = (statistics.median(times[side]) for side in ("xprof", "hta"))
    ratio = statistics.median(ratios)
    overlapped, serial = max(found["decode"], found["insert"]), found["decode"] + found["insert"]
    print(f"{label} trace: {events:,} events, {trace.stat().st_size / 2**20:.1f} MiB ({made})")
    print(f"  xprof import (whole command):    median {xprof:.2f} s (best {min(times['xprof']):.2f}, "
          f"{min(times['xprof']):.2f}-{max(times['xprof']):.2f}), {events / xprof:,.0f} events/s")
    print(f"  HolisticTraceAnalysis (whole):   median {hta:.2f} s (best {min(times['hta']):.2f}, "
          f"{min(times['hta']):.2f}-{max(times['hta']):.2f}), {events / hta:,.0f} events/s")
    print(f"  ratio: median {ratio:.1f}x (best round {max(ratios):.1f}x, rounds {min(ratios):.1f}x-"
          f"{max(ratios):.1f}x); goal at least 8x")
    print(f"  floor, each a whole process: decoding alone {found['decode']:.2f} s, storing the rows "
          f"alone {found['insert']:.2f} s; an import could reach {hta / serial:.1f}x "
          f"doing one after the other (as a GPU trace is: nothing in it is final before its end), "
          f"{hta / overlapped:.1f}x doing both at once perfectly")
    print(f"  peak RSS of the process tree: xprof {found['xprof_rss']:.0f} MiB, HolisticTraceAnalysis "
          f"{found['hta_rss']:.0f} MiB ({found['hta_rss'] / found['xprof_rss']:.1f}x less; goal at least 3x)")
    missed = ([f"{label}: median ratio {ratio:.1f}x, under 8x"] if ratio < 8 else []) + (
        [f"{label}: peak RSS {found['hta_rss'] / found['xprof_rss']:.1f}x less, under 3x"]
        if found["hta_rss"] < 3 * found["xprof_rss"] else [])
    return missed


def streaming(kind: str, source: Path, tmp: Path, mib: int) -> None:
    xprof = str(Path(sys.executable).parent / "xprof")
    big_trace = tmp / f"big_{kind}.pt.trace.json"
    big_events = repeated_trace(source, big_trace, copies_for(source, mib=mib))
    started = time.perf_counter()
    rss = tree_peak_rss([xprof, "import", str(big_trace), "--db", str(tmp / f"big_{kind}.db")])
    wall = time.perf_counter() - started
    print(f"streaming, {kind}: xprof import of a {big_trace.stat().st_size / 2**20:,.0f} MiB "
          f"trace ({big_events:,} events, {source.name} repeated): {wall:.1f} s, "
          f"{big_events / wall:,.0f} events/s, peak RSS {rss:.0f} MiB")
    big_trace.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=125)
    parser.add_argument("--trace", type=Path, help="a Kineto CPU trace to use instead of making one")
    parser.add_argument("--gpu-trace", type=Path,
                        help="a Kineto GPU trace to use instead of repeating the A100 and MI250 fixtures")
    parser.add_argument("--gpu-events", type=int, default=100_000,
                        help="events in each GPU trace made from a fixture")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--big-mib", type=int, default=400,
                        help="size of the repeated traces for the streaming check (0: skip it)")
    parser.add_argument("--count-events", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--copies", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_events:  # the child processes of count_events, repeated_trace and copies_for
        print(len(_document(args.count_events)["traceEvents"]))
        return
    if args.repeat:
        print(write_repeated(Path(args.repeat[0]), Path(args.repeat[1]), int(args.repeat[2])))
        return
    if args.copies:
        import msgspec

        events = _document(Path(args.copies[0]))["traceEvents"]
        by_events = int(args.copies[1]) / len(events)
        by_bytes = int(args.copies[2]) * 2**20 / len(msgspec.json.encode(events))
        print(max(1, round(by_events or by_bytes)))
        return
    try:
        import hta  # noqa: F401
    except ImportError:
        sys.exit("HolisticTraceAnalysis is not installed: .venv/bin/pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        traces = []
        cpu = tmp / "cpu" / "transformer.pt.trace.json"
        cpu.parent.mkdir()
        if args.trace:
            cpu = cpu.with_name(cpu.name + ".gz") if _gzipped(args.trace) else cpu
            os.symlink(args.trace.resolve(), cpu)
            traces.append(("CPU", cpu, f"from {args.trace}"))
        else:
            subprocess.run([sys.executable, "-c", MAKE_TRACE, str(args.steps), str(cpu)],
                           check=True, capture_output=True, cwd=ROOT)
            traces.append(("CPU", cpu, f"transformer small, {args.steps} profiled CPU training steps"))
        if args.gpu_trace:
            gpu = tmp / "gpu" / ("gpu.pt.trace.json.gz" if _gzipped(args.gpu_trace) else "gpu.pt.trace.json")
            gpu.parent.mkdir()
            os.symlink(args.gpu_trace.resolve(), gpu)
            traces.append(("GPU", gpu, f"from {args.gpu_trace}"))
        for label, fixture in (("CUDA", GPU_FIXTURE), ("ROCm", ROCM_FIXTURE)):
            if args.gpu_trace:
                break
            if not fixture.exists():
                print(f"(no {label} trace: {fixture} is not there; give a GPU trace with --gpu-trace)")
                continue
            gpu = tmp / label / "gpu.pt.trace.json"
            gpu.parent.mkdir()
            copies = copies_for(fixture, events=args.gpu_events)
            repeated_trace(fixture, gpu, copies)
            traces.append((label, gpu, f"{fixture.name} {copies} times over, ids and times offset, "
                                       "each copy's host activity first as Kineto writes it"))
        found = {label: compare(label, trace, tmp, args.rounds) for label, trace, _ in traces}
        missed = [m for label, trace, made in traces
                  for m in report(label, trace, count_events(trace), made, found[label])]
        print(f"{args.rounds} rounds a trace, alternating which tool goes first; each a fresh process "
              "timed from start to exit; peak RSS in a round of its own; floors the median of 3")
        print("goals met" if not missed else "goals NOT met: " + "; ".join(missed))
        if args.big_mib:
            for kind, source in [("CPU", cpu), *([("GPU", GPU_FIXTURE)] if GPU_FIXTURE.exists() else [])]:
                streaming(kind, source, tmp, args.big_mib)


if __name__ == "__main__":
    main()
