"""The daemon's loop: profiling cycles on a schedule, regressions and a summary after each,
the hook when something regressed or failed, telemetry between cycles."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from profiler.collect.orchestrate import profile
from profiler.daemon.config import DaemonConfig
from profiler.daemon.files import DaemonFiles, StoreLock, pid_in_file, write_atomically
from profiler.daemon.schedule import format_duration, parse_duration
from profiler.processes import host_name, sigterm_as_interrupt
from profiler.store import Store, StoreError
from profiler.telemetry import telemetry_sampler

# set by `xprof daemon start` for the daemon it detaches: where its output goes
LOG_ENV = "XPROF_DAEMON_LOG"
MAX_BACKOFF_S = 24 * 3600
HOOK_TIMEOUT_S = 600
RETENTION_EVERY_S = 3600


@dataclass
class CycleResult:
    number: int
    started_at: float
    finished_at: float | None = None
    runs_ok: int = 0
    runs_failed: int = 0
    regressions: int = 0
    error: str | None = None
    summary: str | None = None
    hook: str | None = None

    @property
    def failed(self) -> bool:
        """A cycle with no run that finished ok (or a store that refused it) is a failure
        that backs the schedule off; one workload failing among others is not."""
        return self.error is not None or self.runs_ok == 0


class Daemon:
    """Runs cycles until SIGTERM. `check_regressions(store) -> dict` and
    `render_summary(cycle, runs, regressions) -> str` come from analysis/ and views/,
    `classify` from the taxonomy: the profiler package does not reach into them."""

    def __init__(self, store: Store, files: DaemonFiles, config: DaemonConfig, *,
                 check_regressions: Callable, render_summary: Callable,
                 classify: Callable | None = None, log: Callable[[str], None] = print):
        self.store = store
        self.files = files
        self.config = config
        self.schedule = config.schedule
        self.check_regressions = check_regressions
        self.render_summary = render_summary
        self.classify = classify
        self.log = log
        self.started_at = time.time()
        self.cycles = 0
        self.failures = 0
        self.last_cycle: CycleResult | None = None
        self.next_cycle_at: float | None = None
        self._last_retention = 0.0

    # -- lifecycle

    def run(self) -> None:
        self.files.prepare()
        lock = StoreLock(self.files)
        lock.acquire()
        try:
            with sigterm_as_interrupt():
                stale = pid_in_file(self.files.pid)
                if stale and stale != os.getpid():
                    self.log(f"replacing a stale pid file (pid {stale} is gone)")
                self.files.pid.write_text(f"{os.getpid()}\n")
                self.log(f"xprof daemon (pid {os.getpid()}) on store {self.files.shown_store}, "
                         f"{self.schedule.describe()}; status: {self.files.status}")
                orphans = self._safely(self.store.mark_orphaned_runs, "marking orphaned runs") or 0
                if orphans:
                    self.log(f"marked {orphans} run(s) of a process that died as interrupted")
                now = time.time()
                self.next_cycle_at = now if self.schedule.every_s is not None else self.schedule.next_after(now)
                while True:
                    self._write_status("waiting")
                    self._between_cycles(self.next_cycle_at)
                    self._safely(lock.keep, "holding the store's lock")  # a server that restarted
                    result = self.run_cycle()
                    self.failures = self.failures + 1 if result.failed else 0
                    self.next_cycle_at = self._next_cycle(time.time())
                    if self.failures:
                        self.log(f"{self.failures} failed cycle(s) in a row: next cycle in "
                                 f"{format_duration(self.next_cycle_at - time.time())}")
        except KeyboardInterrupt:
            self.log("stopping (SIGTERM or Ctrl-C)")
        finally:
            self._write_status("stopped", stopped_at=time.time())
            if pid_in_file(self.files.pid) == os.getpid():
                self.files.pid.unlink(missing_ok=True)
            lock.release()

    def run_cycle(self) -> CycleResult:
        """A cycle whose failure is logged and counted, never the daemon's end: a bug in
        one night's analysis must not stop the next night's profiling."""
        try:
            return self._cycle()
        except Exception as error:  # noqa: BLE001 - logged with its traceback, cycle counted failed
            self.log(f"cycle {self.cycles} failed: {type(error).__name__}: {error}\n"
                     + traceback.format_exc().rstrip())
            result = CycleResult(self.cycles, time.time(), time.time(),
                                 error=f"{type(error).__name__}: {error}")
            self.last_cycle = result
            return result

    def _next_cycle(self, now: float) -> float:
        """The next scheduled time; after failed cycles, 2**failures - 1 slots skipped,
        capped at a day."""
        at = self.schedule.next_after(now)
        if not self.failures:
            return at
        for _ in range(2 ** min(self.failures, 10) - 1):
            at = self.schedule.next_after(at)
            if at - now >= MAX_BACKOFF_S:
                break
        return max(self.schedule.next_after(now), min(at, now + MAX_BACKOFF_S))

    # -- between cycles: telemetry and retention

    def _between_cycles(self, until: float) -> None:
        """Host/NVML readings at the low rate until `until`, stored as they come;
        old readings downsampled once an hour."""
        every = parse_duration(self.config.telemetry_every)
        sampler = telemetry_sampler(every)()
        sampler.start()
        try:
            while (remaining := until - time.time()) > 0:
                time.sleep(min(every, remaining))
                readings = sampler.drain()
                self._safely(lambda: self.store.add_samples(readings), "storing telemetry")
                if time.time() - self._last_retention >= RETENTION_EVERY_S:
                    self._last_retention = time.time()
                    replaced = self._safely(self._retention, "downsampling telemetry")
                    if replaced:
                        self.log(f"downsampled {replaced} telemetry samples older than "
                                 f"{self.config.keep_raw}")
        finally:
            sampler.stop()
        for error in sampler.errors:
            self.log(f"telemetry: {error}")

    def _retention(self) -> int:
        return self.store.downsample_samples(parse_duration(self.config.keep_raw),
                                             parse_duration(self.config.downsample_to))

    # -- one cycle

    def _cycle(self) -> CycleResult:
        self.cycles += 1
        result = CycleResult(self.cycles, time.time())
        c = self.config
        requests = c.requests()
        self.log(f"cycle {self.cycles}: profiling {len(requests)} run(s) at size {c.suite}, "
                 f"{c.repeats} repeat(s) each")
        self._write_status("profiling", activity=f"cycle {self.cycles}: starting")
        outcomes = []
        try:
            outcomes = profile(self.store, c, self.classify, self._progress,
                               parse_duration(c.worker_timeout))
        except StoreError as error:
            result.error = str(error)
            self.log(f"cycle {self.cycles}: the store refused it: {error}")
        runs = [o.as_json() for o in outcomes]
        result.runs_ok = sum(r["status"] == "ok" for r in runs)
        result.runs_failed = len(requests) - result.runs_ok
        for run in runs:
            if run["status"] != "ok":
                self.log(f"cycle {self.cycles}: {run['workload']} {run['framework']} "
                         f"{run['status']}: {run['error']}")
        self._write_status("checking regressions")
        regressions = self._safely(lambda: self.check_regressions(self.store),
                                   "checking regressions") or {"regressions": []}
        result.regressions = len(regressions["regressions"])
        result.finished_at = time.time()
        result.summary = self._write_summary(result, runs, regressions)
        # the hook hears of failed runs too: a nightly that fails every night must not
        # stay silent
        if (result.regressions or result.runs_failed) and c.on_regression and result.summary:
            result.hook = self._run_hook(result.summary)
        self._prune()
        self.last_cycle = result
        self.log(f"cycle {self.cycles} done in {format_duration(result.finished_at - result.started_at)}: "
                 f"{result.runs_ok} ok, {result.runs_failed} failed, {result.regressions} regression(s)")
        return result

    def _prune(self) -> None:
        """Raw events of runs older than --keep-events go; their figures stay."""
        c = self.config
        pruned = self._safely(lambda: self.store.prune(c.keep_events_s, c.keep_last),
                              "pruning raw events")
        if pruned and pruned["runs"]:
            self.log(f"pruned the raw events of {len(pruned['run_ids'])} run(s) older than {c.keep_events} "
                     f"({', '.join(pruned['run_ids'])}): {pruned['events']:,} events, {pruned['memory_events']:,} "
                     f"memory events, {pruned['artifact_bytes']:,} bytes of raw traces")
        for left in (pruned or {}).get("files_left", []):
            self.log(f"pruning: could not remove {left}")

    def _progress(self, event, outcome, repeat) -> None:
        r = outcome.request
        what = f"{r.workload}/{r.mode} {r.framework} repeat {repeat + 1}/{r.repeats}"
        if event == "start":
            self._write_status("profiling", activity=f"cycle {self.cycles}: {what}")

    def _write_summary(self, result: CycleResult, runs: list, regressions: dict) -> str | None:
        path = Path(self.config.summary).expanduser().resolve() if self.config.summary else self.files.summary
        text = self.render_summary(asdict(result), runs, regressions)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, text)
        except OSError as error:
            self.log(f"cannot write the summary {path}: {error.strerror}")
            return None
        return str(path)

    def _run_hook(self, summary: str) -> str:
        command = shlex.split(self.config.on_regression) + [summary]
        self.log(f"regressions or failed runs: running {shlex.join(command)}")
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=HOOK_TIMEOUT_S, env={**os.environ, "XPROF_SUMMARY": summary})
        except (OSError, subprocess.TimeoutExpired) as error:
            outcome = f"could not run: {error}"
        else:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            outcome = f"exit {done.returncode}" + (f": {' | '.join(tail)}" if tail else "")
        self.log(f"--on-regression: {outcome}")
        return outcome

    # -- helpers

    def _safely(self, action: Callable, what: str):
        """A store that is locked or full for a moment must not end the daemon."""
        try:
            return action()
        except StoreError as error:
            self.log(f"{what} failed: {error}")
            return None

    def _write_status(self, phase: str, **extra) -> None:
        last = asdict(self.last_cycle) if self.last_cycle else None
        status = {"pid": os.getpid(), "host": host_name(), "store": self.files.shown_store,
                  "started_at": self.started_at, "schedule": self.schedule.describe(),
                  "phase": phase, "activity": None, "next_cycle_at": self.next_cycle_at,
                  "last_cycle": last, "consecutive_failures": self.failures,
                  "log": os.environ.get(LOG_ENV),
                  "summary": last and last["summary"], **extra}
        try:
            write_atomically(self.files.status, json.dumps(status))
        except OSError as error:
            self.log(f"cannot write the status file {self.files.status}: {error.strerror}")

