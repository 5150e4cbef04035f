"""When the daemon runs its cycles: every fixed interval (`90s`, `6h`, `1h30m`) or on a
five-field cron expression, in local time."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from profiler.errors import UserError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str, what: str = "duration", zero: bool = False) -> float:
    """Seconds in `text` such as "30m" or "1h30m" (or "0s" where `zero` allows it); a
    UserError naming `what` otherwise."""
    cleaned = str(text).strip().lower()
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise UserError(f"{what} {text!r} is not a duration: write a number and a unit "
                        "s, m, h or d, such as 90s, 30m, 6h, 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0 or (seconds == 0 and not zero):
        raise UserError(f"{what} {text!r} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class Schedule:
    """`every` seconds, or a five-field `cron` expression; exactly one of them."""

    every_s: float | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, every: str | None, cron: str | None) -> Schedule:
        if every and cron:
            raise UserError("give --every or --cron, not both")
        if cron:
            return cls(cron=_checked_cron(cron))
        if every:
            return cls(every_s=parse_duration(every, "--every"))
        raise UserError("the daemon needs a schedule: --every 6h or --cron '0 2 * * *' "
                        "(on the command line or in the config file)")

    def next_after(self, t: float) -> float:
        """The first cycle time strictly after `t` (Unix seconds)."""
        if self.every_s is not None:
            return t + self.every_s
        from croniter import croniter

        start = datetime.datetime.fromtimestamp(t).astimezone()
        return float(croniter(self.cron, start).get_next(float))

    def describe(self) -> str:
        if self.every_s is not None:
            return f"every {format_duration(self.every_s)}"
        return f"cron '{self.cron}'"


def _checked_cron(expression: str) -> str:
    from croniter import CroniterError, croniter

    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(expression):
        raise UserError(f"--cron {expression!r} is not a cron expression: five fields "
                        "'minute hour day-of-month month day-of-week', such as '0 2 * * *'")
    try:  # valid fields can still name a day that never comes (30 February)
        croniter(expression).get_next(float)
    except CroniterError:
        raise UserError(f"--cron {expression!r} never fires: no date matches it") from None
    return " ".join(fields)


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, largest units first: 5400 -> "1h30m"."""
    seconds = round(seconds)
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in sorted(_UNITS.items(), key=lambda kv: -kv[1]):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out
