"""What a GPU run stores, without a GPU: the orchestrator takes a repeat as a torch worker
on an A100 hands it over (the A100 fixture's trace, device allocator peaks per step), and
everything after the worker (trace reading, steps, the store, figures, diff, report) is
the code a GPU run takes."""

import gzip
import json
import shutil

import pytest

from analysis.diff import compare
from analysis.figures import run_figures
from analysis.report import build_report
from conftest import fixture_path, repeated_trace
from profiler.collect.orchestrate import Orchestrator
from profiler.collect.settings import RunRequest
from profiler.store import Store

STEPS = 3
MiB = 2**20


def _a100_trace(directory):
    """The A100 fixture (no step markers of its own) as three profiled steps, each a copy
    wrapped in `ProfilerStep#N` as torch.profiler's schedule marks them."""
    document = json.loads(gzip.decompress(fixture_path("kineto", "a100_alexnet_train.json.gz").read_bytes()))
    events = document["traceEvents"]
    timed = [e for e in events if isinstance(e.get("ts"), (int, float))]
    first = min(e["ts"] for e in timed)
    last = max(e["ts"] + e.get("dur", 0) for e in timed)
    host = next(e for e in events if e.get("cat") == "cpu_op")
    marker = {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": host["pid"],
              "tid": host["tid"], "ts": first, "dur": last - first}
    return repeated_trace({**document, "traceEvents": [marker, *events]}, STEPS, directory / "trace.pt.trace.json")


def _peak(repeat, step):
    return (100 + 10 * repeat + step) * MiB


class A100Worker(Orchestrator):
    """The orchestrator, its worker process replaced by what a torch worker on an A100
    writes: result.json's records and the Kineto trace."""

    def _spawn(self, out_dir):
        request = json.loads((out_dir / "request.json").read_text())
        trace = _a100_trace(out_dir)
        records = lambda steps: [{"step": s, "wall_ns": 4_000_000 + s, "peak_bytes": _peak(request["repeat"], s),
                                  "reserved_bytes": 512 * MiB} for s in steps]
        env = {"framework": "torch", "framework_version": "2.13.0+cu128", "cuda": "12.8", "cudnn": 91000,
               "framework_gpus": ["NVIDIA A100-PG509-200"], "device": request["device"],
               "device_name": "NVIDIA A100-PG509-200"}
        return {"env": env, "timed": records(range(1, STEPS + 1)), "profiled": records(range(1, STEPS + 1)),
                "trace": trace.name, "trace_path": str(trace)}, []


@pytest.fixture
def gpu_store(tmp_path):
    store = Store.open(tmp_path / "x.db")
    orchestrator = A100Worker(store)
    requests = [RunRequest("cnn", framework, "train", None, "tiny", STEPS, 0, 2, device="gpu:0", dtype="bf16")
                for framework in ("torch", "tensorflow")]
    outcomes = orchestrator.execute(requests)
    assert [o.status for o in outcomes] == ["ok", "ok"], [o.error for o in outcomes]
    return store, [store.run(o.id) for o in outcomes]


def test_a_gpu_repeat_is_stored_with_its_kernels_device_time_and_peak_memory(gpu_store):
    store, (run, _) = gpu_store
    assert (run["device"], run["dtype"], run["basis"]) == ("gpu:0", "bf16", "device")
    assert json.loads(run["env"])["device_name"] == "NVIDIA A100-PG509-200"
    # every profiled step found in the trace, each holding one copy's 79 kernels
    kernels = store._rows("SELECT repeat, step, count(*) FROM event_rows WHERE run_id = ? AND kind = 'kernel'"
                          " GROUP BY repeat, step", (run["id"],))
    assert kernels == [(repeat, step, 79) for repeat in (0, 1) for step in range(1, STEPS + 1)]
    # the device allocator's peak of every step, timed and profiled alike
    peaks = store._rows("SELECT repeat, step, profiled, peak_bytes, reserved_bytes FROM steps WHERE run_id = ?"
                        " ORDER BY repeat, profiled, step", (run["id"],))
    assert peaks == [(r, s, p, _peak(r, s), 512 * MiB) for r in (0, 1) for p in (0, 1) for s in range(1, STEPS + 1)]
    assert store._rows("SELECT count(*) FROM steps WHERE run_id = ? AND profiled AND start_ns IS NULL",
                       (run["id"],)) == [(0,)]  # each placed in the trace
    figures = run_figures(store, run)
    assert figures.basis == "device" and figures.peak_bytes == _peak(1, STEPS)
    # device time per step by category: the A100 copy's kernels, the same in every step
    assert figures.per_repeat and all(len(set(v)) == 1 for v in figures.per_repeat.values())


def test_a_gpu_pair_compares_on_device_time_and_reports_its_peaks(gpu_store):
    store, (torch_run, tf_run) = gpu_store
    result = compare(store, torch_run, tf_run)
    assert result["a"]["basis"] == result["b"]["basis"] == "device"
    assert result["a"]["peak_bytes"] == _peak(1, STEPS) and result["a"]["device"] == "gpu:0"
    [entry] = build_report(store)["workloads"]
    assert (entry["dtype"], entry["device"]) == ("bf16", "gpu:0")
    assert {fw: side["peak_bytes"] for fw, side in entry["frameworks"].items()} == {
        "torch": _peak(1, STEPS), "tensorflow": _peak(1, STEPS)}


def test_a_gpu_trace_is_kept_as_the_runs_artifact(gpu_store, tmp_path):
    store, (run, _) = gpu_store
    kept = store.artifact_file(store.trace_artifact(run["id"], 1))
    copy = tmp_path / "kept.json"
    with gzip.open(kept) as src, open(copy, "wb") as dst:
        shutil.copyfileobj(src, dst)
    names = [e["name"] for e in json.loads(copy.read_text())["traceEvents"] if e.get("cat") == "user_annotation"]
    assert [n for n in names if n.startswith("ProfilerStep#")] == [f"ProfilerStep#{s}" for s in range(1, STEPS + 1)]
