"""How figures print, the same in the terminal, Markdown and HTML: one function each."""

from __future__ import annotations

import time

from views.labels import size_text

# Above this a ratio's bound says only "unbounded in practice": with two repeats a side
# and many rows, Welch's interval can reach 1e40, which reads as noise, not as a number.
RATIO_CEILING = 1000.0


def ratio_text(value: float | None) -> str:
    if value is None or value != value or value >= RATIO_CEILING:
        return f">{RATIO_CEILING:.0f}" if value is not None and value >= RATIO_CEILING else "inf"
    if 0 < value < 0.01:  # two significant digits, never a 0.00 that is not zero
        return f"{value:.2g}"
    return f"{value:.2f}"


def ratio_word(value: float | None) -> str:
    """A row's B/A: 'only in B' (None), 'only in A' (0), else '1.25x'."""
    if value is None:
        return "only in B"
    if value == 0:
        return "only in A"
    return f"{ratio_text(value)}x"


def change_text(value: float | None) -> str:
    """A regression's latest/baseline: '1.25x', or 'new' for a key the baseline lacks."""
    return "new" if value is None else f"{ratio_text(value)}x"


def ms_text(value: float | None) -> str:
    """Milliseconds, always: 3 decimals, 4 below 0.01 ms, none from 100 ms (with
    thousands separators); '-' for none."""
    if value is None or value != value:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.4f}"


def interval_text(low: float | None, high: float | None, sep: str = ", ") -> str:
    """' [low, high]', or '' when there is no interval."""
    if low is None and high is None:
        return ""
    return f" [{ratio_text(low) if low is not None else '0.00'}{sep}{ratio_text(high)}]"


def delta_text(value: float | None) -> str:
    """A difference in milliseconds, signed: '+0.483', '-0.152', '0'."""
    return ("+" if value is not None and value > 0 else "") + ms_text(value)


def bytes_text(value: int | None) -> str:
    """A size in the largest binary unit it fills: '161.5 KiB'; '-' for none."""
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def gib_text(value: int | None) -> str:
    """A size in GiB always, so that a column of them lines up: '0.4 GiB'."""
    return "-" if value is None else f"{value / 2**30:.1f} GiB"


def count_text(value: float | None) -> str:
    """A count that may have a fraction (per step): '24.6'; '-' for none."""
    return "-" if value is None else f"{value:,.1f}"


def si_text(value: float) -> str:
    """A large count with a decimal prefix: '1.23 G', '45.60 M'."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:g}"


def rate_text(value: float | None, unit: str = "") -> str:
    """A rate with a decimal prefix, '12.96 GFLOP/s'; '-' for none or zero."""
    return f"{si_text(value)}{unit}" if value else "-"


def share_text(value: float | None) -> str:
    """A fraction as a percentage, '47%'; '-' for none."""
    return "-" if value is None else f"{value:.0%}"


def clock_text(t: float) -> str:
    """A Unix time as the local date and time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def duration_text(seconds: float) -> str:
    """Seconds as the daemon's durations are written: '1h30m'; '0s' for none."""
    from profiler.daemon.schedule import format_duration

    return format_duration(max(seconds, 0))


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], low: float | None = None) -> str:
    """A series as block characters from `low` (default: its own least) to its greatest;
    a missing value is a space."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known) if low is None else low, max(known)
    scale = (len(SPARKS) - 1) / (high - low) if high > low else 0
    return "".join(" " if v is None else SPARKS[round((v - low) * scale)] for v in values)


def configuration_text(entry: dict) -> str:
    """A configuration in words: 'cnn train tiny fp32, torch eager on cpu'."""
    size = size_text(entry.get("size"), entry.get("batch_size"))
    where = " ".join(str(v) for v in (entry.get("workload"), entry.get("mode"), size, entry.get("dtype")) if v)
    return (f"{where}, {entry['framework']} {entry['execution'] or ''}".rstrip() + f" on {entry['device'] or '?'}"
            + host_text(entry.get("host")))


def host_text(host: str | None) -> str:
    """' of HOST' for a run of another host than this one (a fleet's store); '' for this one's."""
    from profiler.processes import host_name

    return f" of {host}" if host and host != host_name() else ""


def left_out_text(entry: dict) -> str:
    """A repeat or run left out of a figure, and why: 'run 3f2a9c1b repeat 2: ...'."""
    what = f"run {entry['run'][:8]}" + (f" repeat {entry['repeat']}" if entry.get("repeat") is not None else "")
    return f"{what}: {entry['reason']}"


def visible_text(value: float | None) -> str:
    """The smallest change a check can see: 'sees 6% and more', 'sees 2.4x and more'; ''
    when unknown."""
    from analysis.regressions import change_words

    return "" if value is None else f"sees {change_words(value)} and more"
