"""What each daemon cycle does: run settings plus a schedule, hooks and retention,
from a TOML file with command-line flags on top."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from profiler.collect.settings import (
    CheckSettings,
    RetentionSettings,
    RunSettings,
    check_type,
    flag,
    setting,
)
from profiler.daemon.schedule import Schedule, parse_duration
from profiler.errors import UserError

MIN_TELEMETRY_S = 0.2
MIN_EVERY_S = 1.0
# Run settings that only `xprof run` takes: a daemon cycle uses their defaults.
RUN_ONLY = ("python_profile", "aa", "telemetry_interval")


@dataclass
class DaemonConfig(RetentionSettings, CheckSettings, RunSettings):
    """The run settings of each cycle, how its regressions are checked, and what the
    daemon does around them."""

    every: str | None = setting(None, "Run a cycle at start, then every 30m|6h|1d.")
    cron: str | None = setting(None, "Run cycles at a five-field cron time, e.g. '0 2 * * *'.")
    on_regression: str | None = setting(None, "Command run with the Markdown summary's path when "
                                              "a cycle finds regressions or failed runs.")
    summary: str | None = setting(None, "Where each cycle writes its Markdown summary.",
                                  shown="state directory")
    telemetry_every: str = setting("30s", "Host/NVML sampling between cycles.")
    keep_raw: str = setting("7d", "How long telemetry is kept raw before means replace it.")
    downsample_to: str = setting("10m", "The window of the means that replace old telemetry.")
    worker_timeout: str = setting("1h", "A worker running longer is killed and its run failed.")

    @property
    def schedule(self) -> Schedule:
        return Schedule.parse(self.every, self.cron)

    def check_device_here(self) -> None:
        """A GPU the config names must be one every framework of its runs sees on this
        machine: checked when the daemon starts (asking the frameworks), not at 2 a.m."""
        from profiler.collect.devices import resolve_device
        from workloads import FRAMEWORKS

        if self.device is not None:
            resolve_device(self.device, self.frameworks or list(FRAMEWORKS))

    def check(self) -> None:
        """Every value parsed once now, so a bad one fails at start, not at 2 a.m."""
        for f in fields(self):
            check_type(f.name, getattr(self, f.name), f.type)
        self.schedule
        for name in ("telemetry_every", "keep_raw", "downsample_to", "worker_timeout"):
            parse_duration(getattr(self, name), flag(name))
        self.keep_events_s
        super().check()
        if self.schedule.every_s is not None and self.schedule.every_s < MIN_EVERY_S:
            raise UserError(f"--every {self.every!r} is shorter than {MIN_EVERY_S:g} s")
        if parse_duration(self.telemetry_every) < MIN_TELEMETRY_S:
            raise UserError(f"--telemetry-every {self.telemetry_every!r} is faster than "
                            f"{MIN_TELEMETRY_S:g} s: telemetry between cycles is meant to be cheap")
        if self.on_regression is not None:
            import shlex

            try:
                shlex.split(self.on_regression)
            except ValueError as error:
                raise UserError(f"--on-regression {self.on_regression!r}: {error}") from None


def config_keys() -> list[str]:
    """The keys a config file may hold."""
    return sorted(f.name for f in fields(DaemonConfig) if f.name not in RUN_ONLY)


def load_config(path: Path | None, overrides: dict) -> DaemonConfig:
    """The TOML file's [daemon] table (or top level), then every flag that was given."""
    values: dict = {}
    if path is not None:
        import tomllib  # here: every command's flags are made from this module

        try:
            document = tomllib.loads(Path(path).read_text())
        except OSError as error:
            raise UserError(f"cannot read config {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"config {path} is not valid TOML: {error}") from None
        values = {k.replace("-", "_"): v for k, v in document.get("daemon", document).items()}
        unknown = sorted(set(values) - set(config_keys()))
        if unknown:
            raise UserError(f"config {path}: unknown key{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} (known: {', '.join(config_keys())})")
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
