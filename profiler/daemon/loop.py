"""The xprof daemon: profiling cycles on a schedule, telemetry between them, one per store.

Files. A lock beside the store (`<db>.daemon-lock`, an flock that also holds the pid)
makes it one daemon per store, whoever starts it; the kernel drops the lock when the
process dies, however it dies, so a lock is never stale. The pid file, the log and a
status file live in the user state directory (`$XPROF_STATE_DIR`, else platformdirs'
user state dir), named after the store so daemons on different stores keep apart.

A cycle profiles the configured suite through the same Orchestrator as `xprof run`,
then checks regressions, writes the Markdown summary and, when there are regressions,
runs the user's `--on-regression` command with the summary's path. Between cycles the
daemon samples host/NVML telemetry at a low rate and downsamples old samples. SIGTERM
(and Ctrl-C) cut the current run, which is stored `interrupted`; a daemon killed
outright leaves its run `running`, and the next start marks it `interrupted`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import socket
import subprocess
import time
import tomllib
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

from profiler.errors import UserError
from profiler.daemon.schedule import Schedule, format_duration, parse_duration
from profiler.store.store import Store, StoreError

STATE_ENV = "XPROF_STATE_DIR"
# set by `xprof daemon start` for the daemon it detaches: where its output goes
LOG_ENV = "XPROF_DAEMON_LOG"
MAX_BACKOFF_S = 24 * 3600
HOOK_TIMEOUT_S = 600
RETENTION_EVERY_S = 3600
MIN_TELEMETRY_S = 0.2
MIN_EVERY_S = 1.0


def default_state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("xprof", appauthor=False))


@dataclass(frozen=True)
class DaemonFiles:
    """Where the daemon of one store keeps its pid, log, status and summary."""

    store: Path
    directory: Path

    @classmethod
    def of(cls, store, directory=None) -> DaemonFiles:
        store = Path(store).expanduser().resolve()
        return cls(store, Path(directory).expanduser().resolve() if directory else default_state_dir())

    @property
    def _stem(self) -> str:
        digest = hashlib.sha1(str(self.store).encode()).hexdigest()[:10]
        return f"daemon-{self.store.stem}-{digest}"

    @property
    def pid(self) -> Path:
        return self.directory / f"{self._stem}.pid"

    @property
    def log(self) -> Path:
        return self.directory / f"{self._stem}.log"

    @property
    def status(self) -> Path:
        return self.directory / f"{self._stem}.status.json"

    @property
    def summary(self) -> Path:
        return self.directory / f"{self._stem}.summary.md"

    @property
    def lock(self) -> Path:
        return self.store.with_name(self.store.name + ".daemon-lock")

    def prepare(self) -> None:
        """Create the state directory and prove it takes files: one line if not."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".{self._stem}.probe"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise UserError(f"state directory {self.directory} is not writable: "
                            f"{error.strerror or error} (set ${STATE_ENV} or --state-dir)") from None


class StoreLock:
    """An exclusive flock on `<db>.daemon-lock`, which holds the owner's pid."""

    def __init__(self, files: DaemonFiles):
        self.files = files
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.files.lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(f"cannot create the daemon lock {self.files.lock}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise UserError(f"another xprof daemon (pid {holder or 'unknown'}) already runs on "
                            f"store {self.files.store}; `xprof daemon stop` stops it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse_pid(os.read(fd, 64).decode(errors="replace"))


def _parse_pid(text: str) -> int | None:
    """The pid a lock or pid file holds; None when it holds nothing readable."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def lock_holder(files: DaemonFiles) -> int | None:
    """The pid of the daemon holding the store's lock, or None when no daemon runs."""
    try:
        fd = os.open(files.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    finally:
        os.close(fd)  # also drops our shared lock when we got one
    return None


def read_status(files: DaemonFiles) -> dict:
    """Whether a daemon runs on the store, since when, its last and next cycle."""
    holder = lock_holder(files)
    try:
        recorded = json.loads(files.status.read_text())
    except (OSError, ValueError):
        recorded = {}
    pid_file = _pid_from_file(files.pid)
    status = {
        "running": holder is not None,
        "pid": holder,
        "store": str(files.store),
        "log": str(files.log) if files.log.exists() else None,
        "stale_pid": pid_file if holder is None and pid_file else None,
    }
    if holder is not None and recorded.get("pid") == holder:
        status.update({k: recorded.get(k) for k in (
            "started_at", "host", "schedule", "phase", "activity", "next_cycle_at",
            "last_cycle", "consecutive_failures", "summary", "log")})
    elif recorded:
        status["last_cycle"] = recorded.get("last_cycle")
        status["stopped_at"] = recorded.get("stopped_at")
    return status


def _pid_from_file(path: Path) -> int | None:
    try:
        return _parse_pid(path.read_text())
    except OSError:
        return None


# -- configuration ----------------------------------------------------------------

@dataclass
class DaemonConfig:
    """What each cycle does. Built from a TOML file, then command-line flags on top."""

    every: str | None = None
    cron: str | None = None
    suite: str = "small"
    workloads: list[str] = field(default_factory=list)  # empty: all
    frameworks: list[str] = field(default_factory=list)  # empty: both
    mode: str = "train"
    execution: str | None = None
    steps: int = 10
    warmup: int = 3
    repeats: int = 5
    baseline: int = 5
    min_effect: float = 0.05
    on_regression: str | None = None
    summary: str | None = None
    telemetry_every: str = "30s"
    keep_raw: str = "7d"
    downsample_to: str = "10m"
    worker_timeout: str = "1h"

    @property
    def schedule(self) -> Schedule:
        return Schedule.parse(self.every, self.cron)

    def check(self) -> None:
        """Every value parsed once now, so a bad one fails at start, not at 2 a.m."""
        from workloads import EXECUTIONS, FRAMEWORKS, MODES, SIZES, WORKLOADS

        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        self.schedule
        for name in ("telemetry_every", "keep_raw", "downsample_to", "worker_timeout"):
            parse_duration(getattr(self, name), "--" + name.replace("_", "-"))
        _one_of("--suite", [self.suite], SIZES)
        _one_of("-w/--workload", self.workloads, WORKLOADS)
        _one_of("-f/--framework", self.frameworks, FRAMEWORKS)
        _one_of("--mode", [self.mode], MODES)
        if self.execution is not None:
            _one_of("--exec", [self.execution], EXECUTIONS)
        # the same ranges as the flags of `xprof run`
        for name, least, most in (("steps", 1, 100_000), ("repeats", 1, 1000),
                                  ("baseline", 1, 1000), ("warmup", 0, 10_000)):
            if not least <= getattr(self, name) <= most:
                raise UserError(f"--{name} must be between {least} and {most}, "
                                f"not {getattr(self, name)!r}")
        if not 0 <= self.min_effect <= 10:
            raise UserError(f"--min-effect must be between 0 and 10, not {self.min_effect!r}")
        if self.schedule.every_s is not None and self.schedule.every_s < MIN_EVERY_S:
            raise UserError(f"--every {self.every!r} is shorter than {MIN_EVERY_S:g} s")
        if parse_duration(self.telemetry_every) < MIN_TELEMETRY_S:
            raise UserError(f"--telemetry-every {self.telemetry_every!r} is faster than "
                            f"{MIN_TELEMETRY_S:g} s: telemetry between cycles is meant to be cheap")
        if self.on_regression is not None:
            try:
                shlex.split(self.on_regression)
            except ValueError as error:
                raise UserError(f"--on-regression {self.on_regression!r}: {error}") from None


# annotation -> (accepted TOML value types, how an error names them)
_KINDS = {"str": ((str,), "a string"), "int": ((int,), "a whole number"),
          "float": ((int, float), "a number"), "list[str]": ((list,), "a list of strings")}


def _check_type(name: str, value, annotation: str) -> None:
    """A config file can hold any TOML value; say which key has the wrong kind, now."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return
    allowed = tuple(t for k in kinds if k in _KINDS for t in _KINDS[k][0])
    wrong = not isinstance(value, allowed) or isinstance(value, bool)
    if not wrong and isinstance(value, list):
        wrong = not all(isinstance(item, str) for item in value)
    if wrong:
        kind = " or ".join(_KINDS[k][1] for k in kinds if k in _KINDS)
        raise UserError(f"--{name.replace('_', '-')} must be {kind}, not {value!r}")


def _one_of(name, values, allowed) -> None:
    for value in values:
        if value not in allowed:
            raise UserError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def load_config(path: Path | None, overrides: dict) -> DaemonConfig:
    """The TOML file's [daemon] table (or top level), then every flag that was given."""
    values: dict = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text())
        except OSError as error:
            raise UserError(f"cannot read config {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"config {path} is not valid TOML: {error}") from None
        values = document.get("daemon", document)
        known = {f.name for f in fields(DaemonConfig)}
        unknown = sorted(set(k.replace("-", "_") for k in values) - known)
        if unknown:
            raise UserError(f"config {path}: unknown key{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({k: v for k, v in overrides.items() if v not in (None, (), [])})
    for name in ("workloads", "frameworks"):
        if isinstance(values.get(name), (tuple, str)):  # repeated flags, or one name in the file
            values[name] = [values[name]] if isinstance(values[name], str) else list(values[name])
    if overrides.get("every") and "cron" in values and not overrides.get("cron"):
        values.pop("cron")  # a flag replaces the file's schedule rather than clashing with it
    if overrides.get("cron") and "every" in values and not overrides.get("every"):
        values.pop("every")
    config = DaemonConfig(**values)
    config.check()
    return config


# -- the daemon -------------------------------------------------------------------

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
    """Runs cycles until SIGTERM. `check_regressions(conn) -> dict` and
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
        from profiler.collect.orchestrate import sigterm_as_interrupt

        self.files.prepare()
        lock = StoreLock(self.files)
        lock.acquire()
        try:
            with sigterm_as_interrupt():
                stale = _pid_from_file(self.files.pid)
                if stale and stale != os.getpid():
                    self.log(f"replacing a stale pid file (pid {stale} is gone)")
                self.files.pid.write_text(f"{os.getpid()}\n")
                self.log(f"xprof daemon (pid {os.getpid()}) on store {self.files.store}, "
                         f"{self.schedule.describe()}; status: {self.files.status}")
                orphans = self._safely(self.store.mark_orphaned_runs, "marking orphaned runs") or 0
                if orphans:
                    self.log(f"marked {orphans} run(s) of a process that died as interrupted")
                now = time.time()
                self.next_cycle_at = now if self.schedule.every_s is not None else self.schedule.next_after(now)
                while True:
                    self._write_status("waiting")
                    self._between_cycles(self.next_cycle_at)
                    result = self._guarded_cycle()
                    self.failures = self.failures + 1 if result.failed else 0
                    self.next_cycle_at = self._next_cycle(time.time())
                    if self.failures:
                        self.log(f"{self.failures} failed cycle(s) in a row: next cycle in "
                                 f"{format_duration(self.next_cycle_at - time.time())}")
        except KeyboardInterrupt:
            self.log("stopping (SIGTERM or Ctrl-C)")
        finally:
            self._write_status("stopped", stopped_at=time.time())
            if _pid_from_file(self.files.pid) == os.getpid():
                self.files.pid.unlink(missing_ok=True)
            lock.release()

    def _guarded_cycle(self) -> CycleResult:
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
        from profiler.telemetry.host import HostSampler
        from profiler.telemetry.nvml import Nvml, NvmlSampler
        from profiler.telemetry.sampling import SamplerThread

        every = parse_duration(self.config.telemetry_every)
        sampler = SamplerThread([HostSampler(), NvmlSampler(Nvml())], every)
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
        from profiler.collect.orchestrate import Orchestrator, plan, telemetry_sampler

        self.cycles += 1
        result = CycleResult(self.cycles, time.time())
        c = self.config
        from workloads import FRAMEWORKS, WORKLOADS

        requests = plan(c.workloads or list(WORKLOADS), c.frameworks or list(FRAMEWORKS), [c.mode],
                        c.suite, c.steps, c.repeats, c.execution, c.warmup)
        self.log(f"cycle {self.cycles}: profiling {len(requests)} run(s) at size {c.suite}, "
                 f"{c.repeats} repeat(s) each")
        self._write_status("profiling", activity=f"cycle {self.cycles}: starting")
        orchestrator = Orchestrator(self.store, classify=self.classify, progress=self._progress,
                                    sampler_factory=telemetry_sampler(1.0),
                                    worker_timeout_s=parse_duration(c.worker_timeout))
        outcomes = []
        try:
            outcomes = orchestrator.execute(requests)
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
        regressions = self._safely(lambda: self.check_regressions(self.store.connection),
                                   "checking regressions") or {"regressions": []}
        result.regressions = len(regressions["regressions"])
        result.finished_at = time.time()
        result.summary = self._write_summary(result, runs, regressions)
        # the hook hears of failed runs too: a nightly that fails every night must not
        # stay silent
        if (result.regressions or result.runs_failed) and c.on_regression and result.summary:
            result.hook = self._run_hook(result.summary)
        self.last_cycle = result
        self.log(f"cycle {self.cycles} done in {format_duration(result.finished_at - result.started_at)}: "
                 f"{result.runs_ok} ok, {result.runs_failed} failed, {result.regressions} regression(s)")
        return result

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
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text)
            partial.replace(path)
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
        status = {"pid": os.getpid(), "host": socket.gethostname(), "store": str(self.files.store),
                  "started_at": self.started_at, "schedule": self.schedule.describe(),
                  "phase": phase, "activity": None, "next_cycle_at": self.next_cycle_at,
                  "last_cycle": last, "consecutive_failures": self.failures,
                  "log": os.environ.get(LOG_ENV),
                  "summary": last and last["summary"], **extra}
        try:
            partial = self.files.status.with_name(self.files.status.name + ".partial")
            partial.write_text(json.dumps(status))
            partial.replace(self.files.status)
        except OSError as error:
            self.log(f"cannot write the status file {self.files.status}: {error.strerror}")

