"""The calibration, roofline and layer tables on a terminal (rich); each function takes
what a library call returned."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from views.labels import run_label
from views.numbers import ms_text, rate_text, share_text, si_text
from views.terminal import _ratio_cell, _table


def print_calibration(result: dict) -> None:
    console = Console(highlight=False)
    table = _table(title=f"peaks measured on {result['host']} (best of the repeats; spread = (best - worst) / best)")
    for column in ("device", "framework", "dtype", "GEMM FLOP/s", "spread", "triad B/s", "spread"):
        table.add_column(column, no_wrap=True, justify="right" if "/s" in column or column == "spread" else "left")
    for row in result["calibrations"]:
        if "unsupported" in row:
            table.add_row(row["device"], row["framework"], row["dtype"], "[yellow]no kernel[/]", "", "", "")
            console_note = f"{row['framework']} {row['dtype']}: {row['unsupported']}"
            console.print(f"[yellow]note:[/] {escape(console_note)}")
            continue
        table.add_row(row["device"], row["framework"], row["dtype"], rate_text(row["flops_per_s"], "FLOP/s"),
                      share_text(row["flops_spread"]), rate_text(row["bytes_per_s"], "B/s"), share_text(row["bytes_spread"]))
    console.print(table)


def print_rooflines(results, top: int) -> None:
    for result in results if isinstance(results, list) else [results]:
        _print_roofline(result, top)


def _print_roofline(result: dict, top: int) -> None:
    console = Console(highlight=False)
    run, device = result["run"], result["device"]
    console.print(f"[bold]{escape(run['workload'] or '-')}[/] {run['mode'] or ''} {run_label(run, result['repeats'])}"
                  f": {ms_text(result['step_ms'])} ms of {result['basis']} time a step, in the rows below")
    if device["peak_flops_per_s"]:
        console.print(f"peak of {escape(str(device['name']))}: {rate_text(device['peak_flops_per_s'], 'FLOP/s')}, "
                      f"{rate_text(device['peak_bytes_per_s'], 'B/s')} [dim]({escape(device['source'])})[/]")
    table = _table(title=f"by {result['by']}, per step, slowest first")
    for column in (result["by"], "ms", "FLOPs", "bytes", "FLOP/s", "FLOP/B", "bound", "of roof"):
        table.add_column(column, no_wrap=True, justify="left" if column in (result["by"], "bound") else "right",
                         overflow="ellipsis", max_width=40 if column == result["by"] else None)
    for row in result["rows"][:top]:
        table.add_row(escape(row["key"]), _plus_minus(row["time_ms"], row["time_ms_low"], row["time_ms_high"]),
                      si_text(row["flops"]), si_text(row["bytes"]) if row["bytes"] else "-",
                      rate_text(row["flops_per_s"], ""), f"{row['intensity']:.1f}" if row["intensity"] else "-",
                      row["bound"] or "-", share_text(row["efficiency"]))
    console.print(table)
    if len(result["rows"]) > top:
        console.print(f"[dim]{len(result['rows']) - top} more rows (--top, or --json for all)[/]")
    if result["unmodelled"]:
        shown = ", ".join(f"{escape(u['key'])} {ms_text(u['time_ms'])} ms" for u in result["unmodelled"][:6])
        more = len(result["unmodelled"]) - 6
        console.print(f"unmodelled (time, no FLOPs): {shown}" + (f" and {more} more" if more > 0 else ""))
    if result.get("device_idle"):
        console.print(_idle_line("device", result["device_idle"]))
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")


def _idle_line(label: str, idle: dict) -> str:
    return (f"{label} idle per step: {ms_text(idle['idle_ms'])} ms of {ms_text(idle['idle_ms'] + idle['busy_ms'])} "
            f"(waiting for the host {ms_text(idle['host_wait_ms'])} ms, other {ms_text(idle['other_idle_ms'])} ms)")


def _plus_minus(ms: float, low: float | None, high: float | None) -> str:
    """A time and its interval's half-width: '0.312±0.041'."""
    return ms_text(ms) if low is None or high is None else f"{ms_text(ms)}±{ms_text((high - low) / 2)}"


def print_layer_diff(result: dict) -> None:
    """The rows of `diff --by layer`: each side's time (± its interval over repeats),
    op and kernel counts, FLOP/s and the share of the roof it reaches."""
    console = Console(highlight=False)
    rows = result["rows"]
    kernels = any(row["a"]["kernels"] or row["b"]["kernels"] for row in rows)
    peaks = result.get("peaks") or {}
    columns = ["layer", "A ms", "B ms", "B/A \\[interval]", "ops A/B"] + (["kernels A/B"] if kernels else []) \
        + ["FLOP/s A/B"] + (["of roof A/B"] if any(peaks.values()) else [])
    table = _table(title="per step, by layer (forward and backward), in the model's order")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="left" if column == "layer" else "right")
    for row in rows:
        a, b = row["a"], row["b"]
        cells = [row["key"] if row["in_catalog"] else f"[dim]{escape(row['key'])}[/]",
                 _plus_minus(row["a_ms"], a["time_ms_low"], a["time_ms_high"]),
                 _plus_minus(row["b_ms"], b["time_ms_low"], b["time_ms_high"]), _ratio_cell(row),
                 f"{a['ops']:.0f}/{b['ops']:.0f}"]
        if kernels:
            cells.append(f"{a['kernels']:.0f}/{b['kernels']:.0f}")
        cells.append(f"{rate_text(a['flops_per_s'], '')}/{rate_text(b['flops_per_s'], '')}" if a["flops"] else "-")
        if any(peaks.values()):
            cells.append(f"{share_text(a['efficiency'])}/{share_text(b['efficiency'])}")
        table.add_row(*cells)
    console.print(table)
    for label, idle in (result.get("device_idle") or {}).items():
        if idle:
            console.print(_idle_line(f"{label.upper()}'s device", idle))
    console.print(f"[dim]peaks: A {escape(str(peaks.get('a') or 'none (run xprof calibrate)'))}; "
                  f"B {escape(str(peaks.get('b') or 'none (run xprof calibrate)'))}[/]")
