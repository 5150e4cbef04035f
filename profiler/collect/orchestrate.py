"""Run orchestration: one worker process per (run, repeat), frameworks interleaved and
their order alternated, telemetry beside each worker, each repeat stored in one transaction."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from profiler.collect.devices import resolve_device
from profiler.collect.settings import RunRequest, RunSettings
from profiler.processes import process_alive_since, sigterm_as_interrupt
from profiler.store import Store, StoreError
from profiler.store.artifacts import keep_compressed, sha256_of, trace_suffix
from profiler.telemetry import telemetry_sampler
from profiler.traces import read_trace
from profiler.traces.events import StepTiming, TraceFormatError
from workloads import FRAMEWORKS

STDERR_TAIL_LINES = 12
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")
WORKER_TIMEOUT_S = 3600
WORKER_DIR_PREFIX = "xprof-worker-"


@dataclass
class RunOutcome:
    id: str | None  # None until its first repeat starts: a run is stored once it begins
    request: RunRequest
    status: str = "running"
    error: str | None = None
    step_ns: list[int] = field(default_factory=list)  # unprofiled timed steps, all repeats
    events: int = 0  # every event stored: ops, runtime calls, device events
    memory_events: int = 0

    def as_json(self) -> dict:
        median = statistics.median(self.step_ns) / 1e6 if self.step_ns else None
        return {
            "id": self.id,
            "framework": self.request.framework,
            "workload": self.request.workload,
            "mode": self.request.mode,
            "execution": self.request.execution,
            "size": self.request.size,
            "device": self.request.device,
            "dtype": self.request.dtype,
            "batch_size": self.request.batch_size,
            "status": self.status,
            "step_ms_median": median,
            "kernels": self.events,
            "memory_events": self.memory_events,
            "error": self.error,
        }


class WorkerFailed(RuntimeError):
    pass


def _schedule(requests: list[RunRequest]):
    """(request index, repeat) pairs: groups of one workload+mode, frameworks
    interleaved and their order alternated each repeat."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.workload, r.mode, r.size, r.dtype, r.batch_size), []).append(i)
    for members in groups.values():
        repeats = max(requests[i].repeats for i in members)
        for repeat in range(repeats):
            order = members if repeat % 2 == 0 else list(reversed(members))
            for i in order:
                if repeat < requests[i].repeats:
                    yield i, repeat


def profile(store: Store, settings: RunSettings, classify: Callable | None = None,
            progress: Callable | None = None, worker_timeout_s: float = WORKER_TIMEOUT_S,
            requests: list[RunRequest] | None = None) -> list[RunOutcome]:
    """Profile what `settings` ask for (or `requests`, with settings' telemetry) into
    `store`, with telemetry beside each worker, on the device --device names (by default
    the first GPU every framework sees, else the CPU). SIGTERM ends it as Ctrl-C does:
    the cut run is stored as interrupted."""
    if requests is None:
        requests = settings.requests(resolve_device(settings.device, settings.frameworks or list(FRAMEWORKS)))
    orchestrator = Orchestrator(store, classify=classify, progress=progress,
                                sampler_factory=telemetry_sampler(settings.telemetry_interval),
                                worker_timeout_s=worker_timeout_s)
    with sigterm_as_interrupt():
        return orchestrator.execute(requests)


class Orchestrator:
    """Runs requests into a store. `progress(event, outcome, repeat)` is told of each
    repeat's start and finish; `sampler_factory(pid)`, when given, makes the telemetry
    thread that watches each worker; `classify(event)` sets each event's category."""

    def __init__(self, store: Store, *, classify: Callable | None = None,
                 progress: Callable | None = None, sampler_factory: Callable | None = None,
                 worker_timeout_s: float = WORKER_TIMEOUT_S):
        self.store = store
        self.worker_timeout_s = worker_timeout_s
        self.classify = classify
        self.progress = progress or (lambda event, **info: None)
        self.sampler_factory = sampler_factory
        self._host_env_cache = None
        self.batch_id = hashlib.sha1(f"{time.time_ns()}{os.getpid()}".encode()).hexdigest()[:12]

    def execute(self, requests: list[RunRequest]) -> list[RunOutcome]:
        self.store.mark_orphaned_runs()
        remove_abandoned_worker_dirs()
        outcomes = [RunOutcome(None, r) for r in requests]
        done_repeats = [0] * len(outcomes)
        try:
            for index, repeat in _schedule(requests):
                outcome = outcomes[index]
                if outcome.status == "failed":
                    continue
                if outcome.id is None:
                    outcome.id = self._create(outcome.request)
                self.progress("start", outcome=outcome, repeat=repeat)
                try:
                    self._run_repeat(outcome, repeat)
                except (WorkerFailed, TraceFormatError) as error:
                    outcome.status, outcome.error = "failed", str(error)
                    self.store.finish_run(outcome.id, "failed", outcome.error)
                done_repeats[index] += 1
                if outcome.status == "running" and done_repeats[index] == outcome.request.repeats:
                    self._finish_ok(outcome)  # final now: a later Ctrl-C cannot undo it
                self.progress("finish", outcome=outcome, repeat=repeat)
        except BaseException as error:
            # Ctrl-C, SIGTERM, a store that stopped taking writes: the runs begun are
            # marked, not lost; those not begun were never stored. If even that write fails (the store is
            # locked), the next `xprof run` marks them, as runs of a dead process.
            cause = "interrupted" if isinstance(error, KeyboardInterrupt) else f"stopped: {error}"
            for outcome in outcomes:
                if outcome.status == "running":
                    outcome.status = "interrupted"
                    outcome.error = cause if outcome.id is not None else f"not started: {cause}"
                    if outcome.id is None:
                        continue  # never stored: nothing to mark
                    try:
                        self.store.finish_run(outcome.id, "interrupted", outcome.error)
                    except StoreError:
                        break
            raise
        return outcomes

    def _finish_ok(self, outcome: RunOutcome) -> None:
        outcome.status = "ok"
        median = statistics.median(outcome.step_ns) / 1e6 if outcome.step_ns else None
        self.store.finish_run(outcome.id, "ok", step_ms_median=median)

    def _create(self, r: RunRequest) -> str:
        return self.store.create_run(
            framework=r.framework, workload=r.workload, mode=r.mode, execution=r.execution,
            size=r.size, device=r.device, dtype=r.dtype, batch_size=r.batch_size, source="profile",
            batch_id=self.batch_id, steps_requested=r.steps,
            repeats=r.repeats, warmup_steps=r.warmup,
        )

    def _run_repeat(self, outcome: RunOutcome, repeat: int) -> None:
        r = outcome.request
        with tempfile.TemporaryDirectory(prefix=WORKER_DIR_PREFIX) as tmp:
            out_dir = Path(tmp)
            request = {**r.__dict__, "out_dir": str(out_dir), "repeat": repeat,
                       "parent_pid": os.getpid()}
            (out_dir / "request.json").write_text(json.dumps(request))
            result, samples = self._spawn(out_dir)
            trace_path = Path(result["trace_path"])
            trace = read_trace(trace_path)
            self._store_repeat(outcome, repeat, result, trace, trace_path, out_dir, samples)

    def _spawn(self, out_dir: Path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONFAULTHANDLER="1")
        stderr_path = out_dir / "stderr.txt"
        with open(stderr_path, "wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-P", "-m", "profiler.collect.worker", str(out_dir / "request.json")],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=out_dir,
            )
            sampler = self.sampler_factory(child.pid) if self.sampler_factory else None
            if sampler:
                sampler.start()
            try:
                returncode = child.wait(timeout=self.worker_timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise WorkerFailed(f"worker exceeded {self.worker_timeout_s:g} s and was killed") from None
            except BaseException:
                child.kill()
                child.wait()
                raise
            finally:
                samples = []
                if sampler:
                    sampler.stop()
                    samples = sampler.drain()
        if returncode != 0:
            raise WorkerFailed(_describe_exit(returncode, stderr_path))
        result_path = out_dir / "result.json"
        if not result_path.exists():
            raise WorkerFailed("worker exited 0 without writing result.json")
        return json.loads(result_path.read_text()), samples

    def _store_repeat(self, outcome, repeat, result, trace, trace_path, out_dir, samples):
        env = {**result["env"], **self._host_env()}
        trace_starts = {s.step: s.start_ns for s in trace.steps}
        steps = [
            StepTiming(s["step"], s["wall_ns"], False, None, repeat, s["peak_bytes"], s["reserved_bytes"])
            for s in result["timed"]
        ] + [
            StepTiming(s["step"], s["wall_ns"], True, trace_starts.get(s["step"]), repeat,
                       s["peak_bytes"], s["reserved_bytes"])
            for s in result["profiled"]
        ]
        artifact_dir = self.store.artifacts_dir() / outcome.id
        try:
            artifact_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the artifacts directory {artifact_dir}: "
                             f"{error.strerror}") from None
        stored_trace = keep_compressed(trace_path, artifact_dir / f"r{repeat}.{trace_suffix(trace_path)}")
        python_profile = result.get("python_profile")
        with self.store.transaction() as conn:
            self.store.add_steps(conn, outcome.id, steps)
            outcome.events += self.store.add_events(conn, outcome.id, repeat, trace.events, self.classify)
            outcome.memory_events += self.store.add_memory(conn, outcome.id, repeat, trace.memory)
            self.store.add_artifact(conn, outcome.id, "trace", stored_trace, sha256_of(stored_trace),
                                    stored_trace.stat().st_size, {"repeat": repeat, "format": trace.source_format})
            if python_profile:
                kept = shutil.copy(out_dir / python_profile["path"], artifact_dir / f"r{repeat}.python_profile.html")
                kept = Path(kept)
                self.store.add_artifact(conn, outcome.id, "python_profile", kept, sha256_of(kept),
                                        kept.stat().st_size, python_profile)
            self.store.set_run_columns(
                conn, outcome.id, framework_version=env.get("framework_version"),
                host=env.get("hostname"), env=env,
                event_count=outcome.events, memory_event_count=outcome.memory_events)
        self.store.add_samples(samples, outcome.id)
        outcome.step_ns += [s["wall_ns"] for s in result["timed"]]

    def _host_env(self) -> dict:
        if self._host_env_cache is None:
            from profiler.telemetry.host import environment as host_environment
            from profiler.telemetry.nvml import Nvml

            self._host_env_cache = {**host_environment(), **Nvml().environment()}
        return self._host_env_cache


def remove_abandoned_worker_dirs() -> int:
    """Worker directories (a request, maybe a half-written trace) of an xprof process
    that was killed before it could clean up; a live process's are left alone."""
    removed = 0
    for directory in Path(tempfile.gettempdir()).glob(WORKER_DIR_PREFIX + "*"):
        try:
            parent = json.loads((directory / "request.json").read_text())["parent_pid"]
            created = directory.stat().st_mtime
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or being written this instant
        if not process_alive_since(parent, created):
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


def _describe_exit(returncode: int, stderr_path: Path) -> str:
    tail = stderr_path.read_text(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:]
    tail = [line for line in tail if line.strip()]
    if returncode < 0:
        name = signal.Signals(-returncode).name
        cause = " (out of memory?)" if name == "SIGKILL" else ""
        head = f"worker killed by {name}{cause}"
    else:
        head = f"worker exited with status {returncode}"
    # the exception line first: it is what a reader of `xprof runs` needs
    errors = [line for line in tail if _EXCEPTION_LINE.match(line)]
    if errors:
        tail = [errors[-1]] + [line for line in tail if line is not errors[-1]]
    return head + (": " + " | ".join(tail) if tail else "")
