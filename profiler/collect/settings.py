"""Run settings, declared once with their defaults, allowed values and help: what
`xprof run`, the daemon (flags and TOML config) and the orchestrator take."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from profiler.collect.devices import parse_device
from profiler.errors import UserError
from workloads import (DEFAULT_DTYPE, DEFAULT_SEED, DTYPES, EXECUTIONS, FRAMEWORKS, MODES, SIZES, WORKLOADS,
                       get_workload)
from workloads.spec import check_choice, resolve_execution

# Allowed ranges, inclusive, of the numeric settings (and of the flags that set them).
LIMITS = {
    "steps": (1, 100_000),
    "warmup": (0, 10_000),
    "repeats": (1, 1000),
    "telemetry_interval": (0.05, 60),
    "baseline": (3, 1000),
    "min_effect": (0, 10),
    "keep_last": (0, 1_000_000),
    "batch_size": (1, 1_000_000),
}
# Each setting's allowed values, where they are a fixed list.
CHOICES = {"suite": SIZES, "workloads": tuple(WORKLOADS), "frameworks": FRAMEWORKS,
           "mode": MODES, "execution": EXECUTIONS, "dtype": DTYPES}
# A setting's flags where they are not just --its-name: the long one first.
FLAGS = {"workloads": ("--workload", "-w"), "frameworks": ("--framework", "-f"), "execution": ("--exec",),
         "keep_events": ("--older-than", "--keep-events")}


def flags(name: str) -> tuple[str, ...]:
    return FLAGS.get(name, ("--" + name.replace("_", "-"),))


def flag(name: str) -> str:
    """How a message names a setting: '-w/--workload', '--steps'."""
    return "/".join(reversed(flags(name)))


def setting(default=None, help: str = "", shown: str | None = None, **options):
    """A dataclass field with the help text of its flag; `shown` is how help names the
    default when it is not the value itself."""
    if isinstance(default, list):
        options["default_factory"] = list
    else:
        options["default"] = default
    return field(metadata={"help": help, "shown": shown}, **options)


@dataclass
class RunRequest:
    """One run: a workload in one framework, its repeats each in a worker process."""

    workload: str
    framework: str
    mode: str
    execution: str | None
    size: str
    steps: int
    warmup: int
    repeats: int
    python_profile: bool = False
    seed: int = DEFAULT_SEED
    device: str = "cpu"  # as stored: 'cpu' or 'gpu:N'
    dtype: str = DEFAULT_DTYPE
    batch_size: int | None = None  # None: the size's own

    def __post_init__(self):
        spec = get_workload(self.workload)
        spec.config(self.size, self.batch_size)
        if self.batch_size == spec.batch(self.size):  # the size's own batch, however it was asked for
            self.batch_size = None
        self.execution = resolve_execution(self.framework, self.execution)
        check_choice("dtype", self.dtype, DTYPES)
        if parse_device(self.device) != self.device:
            raise UserError(f"a request's device is stored as 'cpu' or 'gpu:N', not {self.device!r}")


@dataclass
class RunSettings:
    """What to profile and how. Empty `workloads` or `frameworks` mean all of them."""

    suite: str = setting("small", "Size of every workload: tiny (tests), small, large (GPU).")
    workloads: list[str] = setting([], "Only these workloads (repeatable; default: all).")
    frameworks: list[str] = setting([], "Only these frameworks (repeatable; default: both).")
    mode: str = setting("train", "Train (forward, backward, update) or infer (forward only).")
    execution: str | None = setting(None, "Execution style (default: torch eager, TensorFlow graph).")
    device: str | None = setting(None, "cpu, cuda:N or gpu:N (the same GPU; default: the first GPU where "
                                       "every framework of the run sees one, else the CPU).")
    dtype: str = setting(DEFAULT_DTYPE, "Precision: fp32, or bf16/fp16 mixed precision (torch autocast, "
                                        "Keras mixed-precision policy; fp16 training scales its loss).")
    batch_size: int | None = setting(None, "Examples a step takes instead of the size's own batch (1: "
                                           "inference as a server sees it); part of the configuration.")
    steps: int = setting(10, "Timed steps without the profiler, then as many under it.")
    warmup: int = setting(3, "Unmeasured steps first (tracing, compilation, caches).")
    repeats: int = setting(5, "Worker processes per run; frameworks interleaved, order alternated.")
    python_profile: bool = setting(False, "Also record one pyinstrument profile of the Python side per repeat.")
    aa: bool = setting(False, "Two identical runs per framework, their repeats interleaved: an A/A check "
                              "(`xprof diff` of the pair should find nothing significant).")
    telemetry_interval: float = setting(1.0, "Seconds between host/NVML samples during a run.")

    @classmethod
    def from_flags(cls, flags: dict) -> RunSettings:
        """Settings from click's values: repeated flags come as tuples, duplicates dropped."""
        return cls(**{k: list(dict.fromkeys(v)) if isinstance(v, tuple) else v for k, v in flags.items()})

    @classmethod
    def default(cls, name: str):
        """The default of one setting."""
        return getattr(cls(), name)

    def requests(self, device: str = "cpu") -> list[RunRequest]:
        """One request per workload, mode and framework, on `device` (the resolved
        --device); with `aa`, two identical runs of each, which the orchestrator
        interleaves like two frameworks."""
        copies = 2 if self.aa else 1
        return [
            RunRequest(workload, framework, self.mode, self.execution, self.suite, self.steps,
                       self.warmup, self.repeats, self.python_profile, device=device, dtype=self.dtype,
                       batch_size=self.batch_size)
            for workload in self.workloads or list(WORKLOADS)
            for framework in self.frameworks or list(FRAMEWORKS)
            for _ in range(copies)
        ]

    def check(self) -> None:
        """Every value of the right kind, among its choices and within its range: values
        from a config file are checked as strictly as flags."""
        for f in fields(self):
            check_type(f.name, getattr(self, f.name), f.type)
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            for item in value if isinstance(value, list) else [value]:
                if item is not None and item not in allowed:
                    raise UserError(f"{flag(name)}: {item!r} is not one of {', '.join(allowed)}")
        if self.device is not None:
            parse_device(self.device)
        check_limits(self)


@dataclass
class CheckSettings:
    """How stored runs are compared (diff, report, regressions): here so that the CLI,
    the daemon's config and analysis share the defaults."""

    baseline: int = setting(10, "Ok runs before the latest two whose spread judges them (3 at least).")
    min_effect: float = setting(0.05, "Smallest relative difference that can be significant.")


@dataclass
class RetentionSettings:
    """How long raw events stay (`xprof prune`, and the daemon after each cycle); runs, their
    steps and their figures stay for good."""

    keep_events: str = setting("30d", "Prune the raw events, memory events and traces of runs older "
                                      "than this; runs, steps and figures stay.")
    keep_last: int = setting(5, "Keep the raw events of the newest N runs of each configuration.")

    @property
    def keep_events_s(self) -> float:
        """--keep-events in seconds; zero prunes all but the newest --keep-last."""
        from profiler.daemon.schedule import parse_duration

        return parse_duration(self.keep_events, flag("keep_events"), zero=True)


DEFAULT_BASELINE = CheckSettings.baseline
DEFAULT_MIN_EFFECT = CheckSettings.min_effect


def check_limits(settings) -> None:
    """Each numeric setting of `settings` that LIMITS names within its range."""
    for name, (least, most) in LIMITS.items():
        value = getattr(settings, name, None)
        if value is not None and not least <= value <= most:
            raise UserError(f"{flag(name)} must be between {least} and {most}, not {value!r}")


# annotation -> (accepted values' types, how an error names them)
_KINDS = {"str": ((str,), "a string"), "int": ((int,), "a whole number"),
          "float": ((int, float), "a number"), "bool": ((bool,), "true or false"),
          "list[str]": ((list,), "a list of strings")}


def check_type(name: str, value, annotation: str) -> None:
    """A config file can hold any TOML value; say which key has the wrong kind, now."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return
    allowed = tuple(t for k in kinds if k in _KINDS for t in _KINDS[k][0])
    wrong = not isinstance(value, allowed) or (isinstance(value, bool) and "bool" not in kinds)
    if not wrong and isinstance(value, list):
        wrong = not all(isinstance(item, str) for item in value)
    if wrong:
        kind = " or ".join(_KINDS[k][1] for k in kinds if k in _KINDS)
        raise UserError(f"--{name.replace('_', '-')} must be {kind}, not {value!r}")
