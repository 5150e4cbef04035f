"""`xprof claims` in words: the environment line, each verdict's cells and each claim's
unmeasured workloads, shared by the terminal, Markdown and HTML."""

from __future__ import annotations

import time

from views.labels import short_id
from views.numbers import interval_text, ms_text, ratio_text

COLUMNS = ("workload", "comparison", "verdict", "claimed", "other", "advantage [interval]", "runs")
VERDICT_COLOURS = {"holds": "green", "reversed": "red", "no significant difference": "yellow",
                   "not measured here": "dim"}


def environment_line(result: dict) -> str:
    """'vm: AMD EPYC, 2 logical cores, no GPU; torch 2.13.0+cpu (2 threads), ...'."""
    env = result["environment"]
    gpus = ", ".join(str(g) for g in env["gpus"]) or "no GPU"
    frameworks = ", ".join(f"{fw} {facts['version'] or '(version not recorded)'} ({facts['threads'] or '?'} threads"
                           + (f", CUDA {facts['cuda']}" if facts.get("cuda") else "") + ")"
                           for fw, facts in env["frameworks"].items())
    when = ""
    if not env["frameworks"]:
        frameworks = f"no {result['size']} runs to judge yet"
    if env.get("runs_from"):
        first, last = (time.strftime("%Y-%m-%d %H:%M", time.localtime(env[k])) for k in ("runs_from", "runs_to"))
        when = f"; runs of {first}" + (f" to {last}" if last != first else "")
    return (f"{env['host']}: {env['cpu']}, {env['logical_cores']} logical cores, {gpus}; "
            f"{frameworks}; {result['dtype']} on {result['device']}, size {result['size']}{when}")


def value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{ms_text(value)} ms"
    if unit == "lines":
        return f"{value:.0f} lines"
    if unit == "GFLOP/s":
        rate = value * 1e9
        for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)):
            if rate >= scale or not prefix:
                return f"{rate / scale:.3g} {prefix}FLOP/s"
    return f"{value:.1f}{unit if unit.startswith('%') else ' ' + unit}"


def verdict_cells(verdict: dict, comparisons: int) -> list[str]:
    """One measured verdict as text cells, in COLUMNS order (the comparison only where a
    claim makes more than one, or is checked on more than one device)."""
    values = verdict["values"] or {}
    comparison = verdict["comparison"] if comparisons > 1 else ""
    if comparisons > 1 and verdict["device"] != "cpu":
        comparison += f" on {verdict['device']}"
    advantage = "-" if verdict["ratio"] is None else (
        f"{ratio_text(verdict['ratio'])}x{interval_text(verdict['ci_low'], verdict['ci_high'])}")
    claimed, other = value_text(values.get("claimed"), values.get("unit")), value_text(values.get("other"),
                                                                                         values.get("unit"))
    if values.get("claimed_share") is not None:  # efficiency against the device's peak
        claimed += f" ({values['claimed_share']:.0%} of peak)"
        other += f" ({values['other_share']:.0%} of peak)"
    return [verdict["workload"], comparison, verdict["verdict"], claimed, other, advantage,
            " ".join(short_id(run) for run in verdict["runs"]) or "-"]


def measured(claim: dict) -> list[dict]:
    return [v for v in claim["verdicts"] if v["verdict"] != "not measured here"]


def unmeasured_line(claim: dict, size: str) -> str | None:
    """The workloads a claim could be checked on here but lacks runs for, and the
    command that makes them."""
    missing = [v for v in claim["verdicts"] if v["verdict"] == "not measured here"]
    if not missing:
        return None
    workloads = ", ".join(dict.fromkeys(v["workload"] for v in missing))
    return (f"not measured on {workloads}: no ok runs of what it compares; `xprof claims --run --size {size}` "
            f"makes them (one is `{missing[0]['command'].split(' && ')[0]}`)")


def print_claims(result: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"[bold]claims checked on this machine[/] {escape(environment_line(result))}")
    for claim in result["claims"]:
        console.print(f"\n[bold]{claim['id']}. {escape(claim['claim'])}[/]")
        console.print(f"   [dim]source:[/] {escape(claim['source'])}")
        console.print(f"   [dim]test:[/] {escape(claim['test'])}")
        groups: dict[str, list[dict]] = {}
        for verdict in measured(claim):
            where = verdict["comparison"] + (f", on {verdict['device']}" if claim["kind"] == "efficiency" else "")
            groups.setdefault(where, []).append(verdict)
        for where, verdicts in groups.items():
            console.print(f"   [dim]{escape(where)}[/]")
            table = Table(box=None, padding=(0, 1), pad_edge=True, show_header=True)
            for column in COLUMNS:
                if column != "comparison":
                    table.add_column(column, no_wrap=column != "runs",
                                     justify="right" if column in ("claimed", "other") else "left")
            for verdict in verdicts:
                cells = verdict_cells(verdict, 1)
                colour = VERDICT_COLOURS[cells[2]]
                table.add_row(escape(cells[0]), f"[{colour}]{escape(cells[2])}[/]", *(escape(c) for c in cells[3:]))
            console.print(table)
        for note in dict.fromkeys(note for verdict in measured(claim) for note in verdict["notes"]):
            console.print(f"   [yellow]note:[/] {escape(note)}")
        line = unmeasured_line(claim, result["size"])
        if line:
            console.print(f"   [dim]{escape(line)}[/]")
        console.print(f"   [bold]→ {escape(claim['summary'])}[/]")
    console.print(f"\n[dim]{escape(result['ratio'])}. {escape(result['method'])}.[/]")
