"""How figures print, the same in the terminal, Markdown and HTML."""

from __future__ import annotations

# Above this a ratio's bound says only "unbounded in practice": with two repeats a side
# and many rows, Welch's interval can reach 1e40, which reads as noise, not as a number.
RATIO_CEILING = 1000.0


def ratio_text(value: float | None) -> str:
    if value is None or value != value or value >= RATIO_CEILING:
        return f">{RATIO_CEILING:.0f}" if value is not None and value >= RATIO_CEILING else "inf"
    return f"{value:.2f}"


def interval_text(low: float | None, high: float | None, sep: str = ", ") -> str:
    """' [low, high]', or '' when there is no interval."""
    if low is None and high is None:
        return ""
    return f" [{ratio_text(low) if low is not None else '0.00'}{sep}{ratio_text(high)}]"
