"""The tables and progress the commands draw with rich on a terminal. Each function takes
what a library call returned; none reads the store."""

from __future__ import annotations

import sys

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from views.labels import STATE_COLOURS, STATUS_COLOURS, entry_label, placement, run_label, short_id, size_text
from views.numbers import (bytes_text, change_text, clock_text, configuration_text, count_text, delta_text, host_text,
                           interval_text, left_out_text, ms_text, ratio_text, ratio_word, si_text, sparkline,
                           visible_text)



def _table(**options) -> Table:
    return Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold underline",
                 **options)


# -- workloads --------------------------------------------------------------------

def print_workloads(rows, size, mode) -> None:
    table = Table(title=f"workloads at size {size} (FLOPs per {mode} step)", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("workload", no_wrap=True, min_width=11)
    table.add_column("params", justify="right", no_wrap=True, min_width=10)
    table.add_column("FLOPs/step", justify="right", no_wrap=True, min_width=10)
    has_parity = any(row["parity"] for row in rows)
    if has_parity:
        dtype = next(row["parity"]["dtype"] for row in rows if row["parity"])
        table.add_column(f"parity at {dtype}: max |diff| <= tolerance", no_wrap=True)
    else:
        table.add_column("what it is", no_wrap=True, overflow="ellipsis")
    for row in rows:
        torch_side = row["frameworks"]["torch"]
        tf_side = row["frameworks"]["tensorflow"]
        params = f"{torch_side['params']:,}"
        if torch_side["params"] != tf_side["params"]:
            params = f"{torch_side['params']:,} / {tf_side['params']:,}"
        cells = [row["name"], params, si_text(torch_side["flops_per_step"])]
        if has_parity:
            parity = row["parity"]
            if parity["unsupported"]:
                cells.append("[yellow]not run on this machine[/] (below)")
            elif parity["ok"]:
                cells.append(f"[green]ok[/] {parity['max_abs_diff']:.1e} <= {parity['atol']:.1e}")
            else:
                cells.append(f"[red]FAIL[/] {parity['error']}")
        else:
            cells.append(row["description"])
        table.add_row(*cells)
    console = Console()
    console.print(table)
    for row in rows:
        if row["parity"] and row["parity"]["unsupported"]:
            console.print(f"[yellow]{row['name']} at {row['parity']['dtype']} not run:[/] "
                          f"{escape(row['parity']['unsupported'])}", highlight=False)


# -- runs -------------------------------------------------------------------------

def print_runs(rows, title) -> None:
    """The runs table; a run whose raw events were pruned has its counts starred."""
    table = _table(title=title)
    cells = [
        (short_id(row["id"]), f"[{STATUS_COLOURS.get(row['status'], 'white')}]{row['status']}[/]",
         row["workload"] or "-", row["mode"] or "-", size_text(row["size"], row.get("batch_size")) or "-",
         placement(row),
         "tf" if row["framework"] == "tensorflow" else row["framework"], row["execution"] or "-",
         ms_text(row["step_ms_median"]), *(f"{row[count]:,}{PRUNED_MARK * _pruned(row)}"
                                           for count in ("kernels", "memory_events")))
        for row in rows
    ]
    numeric = ("step ms", "events", "mem ev")  # events: ops, runtime calls and device events stored
    hosts = {row.get("host") for row in rows}
    fleet = len(hosts) > 1 or any(host_text(host) for host in hosts)  # runs of other hosts: say whose
    if fleet:
        cells = [(*c[:2], row.get("host") or "-", *c[2:]) for c, row in zip(cells, rows)]
    for i, column in enumerate(("id", "status") + ("host",) * fleet + ("workload", "mode", "size", "at", "fw", "exec")
                               + numeric):
        if column in numeric:
            # numbers are never cut short: the text columns give way first
            width = max([len(column)] + [len(c[i]) for c in cells])
            table.add_column(column, justify="right", no_wrap=True, min_width=width)
        else:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
    for row_cells in cells:
        table.add_row(*row_cells)
    console = Console()
    console.print(table)
    if any(_pruned(row) for row in rows):
        console.print(f"{PRUNED_MARK} raw events pruned (xprof prune): the counts are those stored, "
                      "the figures stay", highlight=False)
    for row in rows:
        if row["error"]:
            console.print(f"[red]{row['id']}[/] {row['workload']} {row['framework']}: "
                          f"{escape(row['error'])}", highlight=False)


PRUNED_MARK = "*"


def _pruned(row) -> bool:
    return row.get("events_pruned_at") is not None


class RunProgress:
    """A rich progress bar on a terminal, one line per finished repeat otherwise."""

    def __init__(self, runs, repeats, quiet):
        self.total = runs * repeats
        self.quiet = quiet
        self.done = 0
        self.bar = None

    def __enter__(self):
        if not self.quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("profiling", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def update(self, event, outcome, repeat):
        r = outcome.request
        batch = f", batch {r.batch_size}" if r.batch_size else ""
        what = (f"{r.workload}/{r.mode} {r.framework} ({r.execution}, {r.dtype}@{r.device}{batch}) "
                f"repeat {repeat + 1}/{r.repeats}")
        if event == "start":
            if self.bar:
                self.bar.update(self.task, description=f"profiling {what}")
            return
        self.done += 1
        if self.bar:
            self.bar.advance(self.task)
        elif not self.quiet:
            status = "ok" if outcome.status == "running" else outcome.status
            click.echo(f"[{self.done}/{self.total}] {what}: {status}", err=True)


# -- diff and report --------------------------------------------------------------

def _ratio_cell(row) -> str:
    text = ratio_word(row["ratio"]) + interval_text(row["ci_low"], row["ci_high"])
    if row["significant"]:
        colour = "red" if row["delta_ms"] > 0 else "green"
        return f"[{colour}]{text}[/]"
    return f"[dim]{text}[/]"


def print_diff(result, top) -> None:
    console = Console(highlight=False)
    a, b, step = result["a"], result["b"], result["step"]
    console.print(f"[bold]{escape(entry_label(a))}[/]: "
                  f"A = {run_label(a, a['repeats'])}, B = {run_label(b, b['repeats'])}")
    steps = ("profiled steps: an imported run has no others" if step.get("steps") == "profiled"
             else "unprofiled steps")
    console.print(f"step time ({steps}): A {ms_text(step['a_ms'])} ms, "
                  f"B {ms_text(step['b_ms'])} ms, B/A {_ratio_cell(step)}")
    if result["by"] == "layer":
        from views.terminal_why import print_layer_diff

        print_layer_diff(result)
        _print_diff_footer(console, result)
        return
    table = _table(title=f"per step, by {result['by']} ({a['basis']} time), |delta| first")
    cells = [(escape(row["key"]), ms_text(row["a_ms"]), ms_text(row["b_ms"]),
              delta_text(row["delta_ms"]), _ratio_cell(row))
             for row in result["rows"][:top]]
    # figures are never cut short: the name column gives way (a kernel name can be long)
    headers = ("A ms", "B ms", "delta ms", "B/A \\[interval]")
    widths = [max([len(h.replace("\\", ""))] + [Text.from_markup(c[i]).cell_len for c in cells])
              for i, h in enumerate(headers, start=1)]
    table.add_column(result["by"], no_wrap=True, overflow="ellipsis",
                     max_width=max(12, console.width - sum(widths) - len(widths) - 1))
    for i, (column, width) in enumerate(zip(headers, widths), start=1):
        table.add_column(column, justify="right" if i < 4 else "left", no_wrap=True,
                         min_width=width)
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)
    hidden = len(result["rows"]) - top
    if hidden > 0:
        console.print(f"[dim]{hidden} more rows (--top, or --json for all)[/]")
    _print_diff_footer(console, result)


def _print_diff_footer(console, result) -> None:
    a, b = result["a"], result["b"]
    console.print(f"peak memory: A {bytes_text(a['peak_bytes'])}, B {bytes_text(b['peak_bytes'])}; "
                  f"allocations per step: A {count_text(a['allocations_per_step'])}, "
                  f"B {count_text(b['allocations_per_step'])}")
    console.print(f"[dim]significant = {int(result['confidence'] * 100)}% interval excludes 1, effect > "
                  f"{result['min_effect']:.0%}, |delta| > timer resolution; {result['method']}[/]")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    for difference in result["environment_differences"]:
        console.print(f"[yellow]environment differs:[/] {difference}")


def _interval(entry) -> str:
    return interval_text(entry.get("ci_low"), entry.get("ci_high"))


def print_report(report) -> None:
    console = Console(highlight=False)
    table = _table(title="verdict per workload (TF/torch: TensorFlow / torch step time)")
    for column in ("workload", "mode", "size", "at", "torch ms", "tf ms", "TF/torch \\[interval]",
                   "peak torch/tf"):
        table.add_column(column, no_wrap=True, justify="right" if "ms" in column else "left")
    details = []
    for entry in report["workloads"]:
        fws = entry["frameworks"]
        torch_side, tf_side = fws.get("torch", {}), fws.get("tensorflow", {})
        ratio = entry.get("ratio")
        if ratio is None:
            cell = "[dim]-[/]"
        else:
            colour = {"torch": "cyan", "tensorflow": "magenta"}.get(entry.get("faster"), "dim")
            cell = f"[{colour}]{ratio_text(ratio)}x{_interval(entry)}[/]"
        table.add_row(entry["workload"], entry["mode"] or "-", size_text(entry["size"], entry.get("batch_size")) or "-",
                      placement(entry) + host_text(entry.get("host")),
                      ms_text(torch_side.get("step_ms")), ms_text(tf_side.get("step_ms")), cell,
                      f"{bytes_text(torch_side.get('peak_bytes'))}/{bytes_text(tf_side.get('peak_bytes'))}")
        details.append(_report_line(entry))
    console.print(table)
    for line in details:
        console.print(line)
    notes = [note for entry in report["workloads"] for note in entry.get("notes", [])]
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print("[dim]n.s. = not significant; intervals and significance as in `xprof diff`[/]")


def _roof(side: dict) -> str:
    """A framework's efficiency in a layer, else its FLOP/s, else '-'."""
    if side.get("efficiency") is not None:
        return f"{side['efficiency']:.0%}"
    return f"{si_text(side['flops_per_s'])}FLOP/s" if side.get("flops_per_s") else "-"


def _report_line(entry) -> str:
    """The verdict of one workload, the categories behind the gap, the other styles."""
    why = ", ".join(f"{c['category']} {delta_text(c['delta_ms'])} ms"
                    f"{'' if c['significant'] else ' (n.s.)'}" for c in entry.get("top_categories", []))
    effects = [f"{framework} {execution} {ratio_text(effect['ratio'])}x{_interval(effect)}"
               for framework, side in entry["frameworks"].items()
               for execution, effect in side["execution_effects"].items()
               if effect["ratio"] is not None]
    line = (f"[bold]{escape(entry_label(entry))}[/]: "
            f"{entry['verdict']}")
    if why:
        line += f"; gap (tf - torch) from {why}"
    layer = entry.get("layer_gap")
    if layer:
        line += (f"; most in layer {layer['layer']} ({delta_text(layer['delta_ms'])} ms; "
                 f"of roof torch {_roof(layer['torch'])}, tf {_roof(layer['tensorflow'])})")
    if effects:
        line += f"; vs usual style: {', '.join(effects)}"
    return line


# -- regressions ------------------------------------------------------------------

def print_regressions(result) -> None:
    """Each configuration's state with its recent step times, then the regressions' figures,
    what was left out, and what changed in the environment."""
    console = Console(highlight=False)
    found, entries = result["regressions"], result["configurations"]
    counts = ", ".join(f"{n} {state}" for state, n in result["states"].items() if n)
    console.print(f"checked {result['configurations_checked']} of {len(entries)} configurations against up to "
                  f"{result['baseline']} runs each ({result['comparisons']} comparisons): {counts or 'no runs'}")
    width = max(len(state) for state in result["states"])
    for e in entries:
        steps = e["recent_step_ms"]
        why = e["why"] or visible_text(e["smallest_visible_change"])
        console.print(f"[{STATE_COLOURS[e['state']]}]{e['state']:<{width}}[/] {escape(configuration_text(e))}")
        console.print(f"{'':<{width}} {e['runs']} run{'s' * (e['runs'] != 1)}, step {sparkline(steps)} "
                      f"{ms_text(steps[-1])} ms" + (f"; {escape(why)}" if why else ""))
    if found:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        for column in ("regression", "baseline ms", "previous", "latest", "ratio \\[interval]"):
            table.add_column(column, justify="left" if column == "regression" else "right",
                             no_wrap=column != "regression", overflow="fold")
        for r in found:
            table.add_row(f"{r['workload']} {r['dtype'] or ''} {r['framework']} {r['execution'] or ''}"
                          f"{host_text(r.get('host'))}: {escape(r['key'])}",
                          ms_text(r["baseline_ms"]), ms_text(r["previous_ms"]), ms_text(r["latest_ms"]),
                          f"[red]{change_text(r['ratio'])}{_interval(r)}[/]")
        console.print(table)
    for e in entries:
        for left in e["left_out"]:
            console.print(f"[yellow]left out[/] of {escape(configuration_text(e))}: {escape(left_out_text(left))}")
        if e["state"] in ("regression", "suspicious"):
            for change in e["environment_changed"]:
                console.print(f"[yellow]{escape(configuration_text(e))}: environment changed, a likely cause:[/] "
                              f"{escape(change)}")


def print_history(result) -> None:
    """Each configuration's series as a sparkline, its first and latest figure, and each
    place it changed with the environment at that point."""
    console = Console(highlight=False)
    key = result["key"] if result["key"] == "step" else f"{result['by']} {result['key']}"
    for h in result["configurations"]:
        series = h["series"]
        values = [p["value_ms"] for p in series]
        console.print(f"[bold]{escape(configuration_text(h))}[/]: {key}, {len(series)} runs "
                      f"{clock_text(series[0]['started_at'])[:10]} to {clock_text(series[-1]['started_at'])[:10]}, "
                      f"{ms_text(values[0])} -> {ms_text(values[-1])} ms")
        console.print(f"  {sparkline(values[-HISTORY_WIDTH:])}")
        for c in h["change_points"]:
            console.print(f"  [yellow]changed[/] at run {c['run'][:8]} ({clock_text(c['started_at'])}): "
                          f"{ms_text(c['before_ms'])} -> {ms_text(c['after_ms'])} ms ({change_text(c['ratio'])})"
                          + (f"; environment: {escape('; '.join(c['environment_changed']))}"
                             if c["environment_changed"] else ""))
        if not h["change_points"]:
            console.print("  no change point")
        for left in h["left_out"]:
            console.print(f"  [dim]left out: {escape(left_out_text(left))}[/]")


HISTORY_WIDTH = 72  # points of a sparkline line; JSON has them all


# -- import, doctor, daemon ---------------------------------------------------------

def print_doctor(facts: dict) -> None:
    console = Console(highlight=False)
    for section, values in facts.items():
        console.print(f"[bold]{section}[/]")
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, dict):  # the store's peaks: one line each
                    console.print(f"  {key}:")
                    for name, text in value.items():
                        console.print(f"    {name}: {text}")
                else:
                    console.print(f"  {key}: {value}")
        else:
            console.print(f"  {values}")
