"""How figures print, the same in the terminal, Markdown and HTML."""

from __future__ import annotations

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
