"""One repeat of one run in its own process (`python -m profiler.collect.worker REQUEST.json`):
warm-up, timed steps, profiled steps, then result.json and the raw trace."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from profiler.collect.collectors import collector_for
from profiler.processes import die_with_parent
from workloads.spec import is_missing_kernel

# Test seams, acting on real subprocesses:
# XPROF_INJECT_FAULT="<workload>:raise|exit|segfault" makes that workload fail in its
# first step (crash isolation), and ":hang" makes it sleep there for an hour (a run
# that is surely in progress when a test signals the parent); XPROF_INJECT_SLOWDOWN="<workload>:<k>" runs its model
# k times a step (a regression that is known to be real, in the model's own ops).
FAULT_ENV = "XPROF_INJECT_FAULT"
SLOWDOWN_ENV = "XPROF_INJECT_SLOWDOWN"


def _forward_passes(workload: str) -> int:
    target, _, factor = os.environ.get(SLOWDOWN_ENV, "").partition(":")
    return int(factor) if target == workload and factor else 1


def _inject_fault(workload: str) -> None:
    target, _, kind = os.environ.get(FAULT_ENV, "").partition(":")
    if target != workload:
        return
    if kind == "raise":
        raise RuntimeError(f"injected failure in {workload}")
    if kind == "exit":
        os._exit(3)
    if kind == "segfault":
        import ctypes

        ctypes.string_at(0)
    if kind == "hang":
        time.sleep(3600)


def _python_profile(workload, steps: int, out_dir: Path) -> dict:
    """Where the Python side of a step spends its time (pyinstrument), one artifact."""
    from pyinstrument import Profiler

    # pyinstrument's default 1 ms interval: at 0.2 ms its own cost multiplied a 0.2 ms
    # torch step by 15 to 125 in the figure below
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(steps):
        workload.step()
    workload.synchronize()
    session = profiler.stop()
    path = out_dir / "python_profile.html"
    path.write_text(profiler.output_html())
    duration = session.duration
    root = session.root_frame()
    leaves = {}
    python_s = 0.0
    stack = [root] if root else []
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if frame.children:
            continue
        # pyinstrument puts a function's own time in a synthetic "[self]" leaf
        owner = frame.parent if frame.is_synthetic and frame.parent else frame
        key = f"{owner.function} ({Path(owner.file_path or '?').name}:{owner.line_no})"
        leaves[key] = leaves.get(key, 0.0) + frame.time
        if owner.file_path and owner.file_path != "<built-in>":
            python_s += frame.time
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:5]
    return {
        "path": path.name,
        "ms_per_step_under_pyinstrument": 1e3 * duration / steps,
        # time whose innermost frame is Python code, not a call into native code
        "python_share": python_s / duration if duration else None,
        "top_self": [{"function": k, "share": v / duration} for k, v in top] if duration else [],
    }


def run(request: dict) -> dict:
    try:
        return _run(request)
    except RuntimeError as error:
        if request.get("dtype", "fp32") == "fp32" or not is_missing_kernel(error):
            raise
        # a framework without a kernel for the precision on this device says so obscurely
        raise RuntimeError(f"{request['framework']} could not run {request['workload']} at "
                           f"{request['dtype']} on {request.get('device', 'cpu')}: {error}") from error


def _run(request: dict) -> dict:
    collector = collector_for(request["framework"])
    out_dir = Path(request["out_dir"])
    workload = collector.build({**request, "forward_passes": _forward_passes(request["workload"])})
    _inject_fault(request["workload"])
    collector.device_memory(workload)

    def timed_step(step: int) -> dict:
        start = time.perf_counter_ns()
        workload.step()
        workload.synchronize()
        wall_ns = time.perf_counter_ns() - start
        peak, reserved = collector.device_memory(workload)
        return {"step": step, "wall_ns": wall_ns, "peak_bytes": peak, "reserved_bytes": reserved}

    for step in range(request["warmup"]):
        workload.step()
    workload.synchronize()
    # Half the unprofiled steps before the profiled ones and half after, so that warming
    # up (or slowing down) over the run does not pass for profiler overhead.
    steps = request["steps"]
    before = steps // 2
    timed = [timed_step(step) for step in range(1, before + 1)]
    profiled, trace = collector.profile_steps(workload, steps, out_dir, timed_step)
    timed += [timed_step(step) for step in range(before + 1, steps + 1)]
    result = {
        "env": collector.environment(),
        "timed": timed,
        "profiled": profiled,
        "trace": trace.name,
        "trace_path": str(trace),
    }
    if request.get("python_profile"):
        result["python_profile"] = _python_profile(workload, request["steps"], out_dir)
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(argv[0]).read_text())
    die_with_parent(request["parent_pid"])
    result = run(request)
    (Path(request["out_dir"]) / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
