"""The `xprof` command: parse options, call the library, format the output.

Start-up stays light: torch and tensorflow are only ever imported in the
subprocesses that run workloads, and rich/numpy load inside the commands that use them.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import click

from profiler.errors import UserError
from views.numbers import delta_text, interval_text, ms_text, ratio_text, ratio_word
from workloads import EXECUTIONS, FRAMEWORKS, MODES, SIZES, WORKLOADS, WorkloadError, get_workload


def _emit_json(payload) -> None:
    click.echo(json.dumps(_finite(payload), indent=2, allow_nan=False))


def _finite(value):
    """JSON has no infinity or NaN: an unbounded or undefined figure is null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def db_option(command):
    """--db PATH, shared by every command that touches the store."""
    return click.option(
        "--db", "db_path", type=click.Path(dir_okay=False, path_type=str), default=None,
        help="SQLite store (default: $XPROF_DB, else xprof.db in the user data directory).",
    )(command)


def state_dir_option(command):
    """--state-dir PATH: where the daemon of a store keeps its pid, log and status."""
    return click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                        help="Pid, log and status files (default: $XPROF_STATE_DIR, else the "
                             "user state directory).")(command)


def _open_store(db_path, create=True):
    from profiler.store.paths import default_db_path
    from profiler.store.store import Store, StoreError

    try:
        return Store.open(db_path or default_db_path(), create=create)
    except StoreError as error:
        raise click.ClickException(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """xprof: profile the same models in PyTorch and TensorFlow and rank the differences."""


@cli.command("workloads")
@click.option("--workload", "-w", "names", multiple=True, type=click.Choice(list(WORKLOADS)),
              help="Only these workloads (repeatable).")
@click.option("--size", type=click.Choice(SIZES), default="tiny", show_default=True,
              help="Size whose parameter and FLOP counts are shown and checked.")
@click.option("--mode", type=click.Choice(MODES), default="train", show_default=True,
              help="Mode whose FLOPs per step are shown.")
@click.option("--parity", is_flag=True,
              help="Build every model in both frameworks (one subprocess each) and check "
                   "parameter counts and forward outputs on shared weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def workloads_command(names, size, mode, parity, as_json):
    """List the canonical workloads, optionally proving their parity.

    \b
    Example:
      xprof workloads --parity --size small
    """
    names = list(dict.fromkeys(names)) or list(WORKLOADS)
    parity_results = {}
    if parity:
        from workloads.parity import ParityError, check_parity

        if not as_json:
            plural = "s" if len(names) > 1 else ""
            click.echo(f"checking parity of {len(names)} workload{plural} at size {size} "
                       "(torch, then tensorflow, each in its own process)...", err=True)
        try:
            parity_results = check_parity(names, size)
        except ParityError as error:
            raise click.ClickException(str(error)) from None
    rows = []
    for name in names:
        spec = get_workload(name)
        row = {"name": name, "description": spec.description, "frameworks": {}, "parity": None}
        for framework in ("torch", "tensorflow"):
            result = parity_results.get(name)
            params = result.params[framework] if result else spec.params(size)
            row["frameworks"][framework] = {
                "params": params,
                "flops_per_step": spec.flops_per_step(size, mode),
            }
        if name in parity_results:
            result = parity_results[name]
            row["parity"] = {"ok": result.ok, "max_abs_diff": result.max_abs_diff,
                             "atol": result.atol, "error": result.error}
        rows.append(row)
    if as_json:
        _emit_json(rows)
    else:
        _print_workloads(rows, size, mode)
    if any(row["parity"] and not row["parity"]["ok"] for row in rows):
        failed = [row["name"] for row in rows if row["parity"] and not row["parity"]["ok"]]
        raise click.ClickException(f"parity failed for: {', '.join(failed)}")


@cli.command("run")
@click.option("--suite", type=click.Choice(SIZES), default="small", show_default=True,
              help="Size of every workload: tiny (tests), small, large (GPU).")
@click.option("--workload", "-w", "names", multiple=True, type=click.Choice(list(WORKLOADS)),
              help="Only these workloads (repeatable; default: all).")
@click.option("--framework", "-f", "frameworks", multiple=True, type=click.Choice(FRAMEWORKS),
              help="Only these frameworks (repeatable; default: both).")
@click.option("--mode", type=click.Choice(MODES), default="train", show_default=True)
@click.option("--exec", "execution", type=click.Choice(EXECUTIONS), default=None,
              help="Execution style (default: torch eager, TensorFlow graph).")
@click.option("--steps", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="Timed steps without the profiler, then as many under it.")
@click.option("--warmup", type=click.IntRange(0, 10_000), default=3, show_default=True,
              help="Unmeasured steps first (tracing, compilation, caches).")
@click.option("--repeats", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Worker processes per run; frameworks interleaved, order alternated.")
@click.option("--python-profile", is_flag=True,
              help="Also record one pyinstrument profile of the Python side per repeat.")
@click.option("--aa", is_flag=True,
              help="Two identical runs per framework, their repeats interleaved: an A/A "
                   "check (`xprof diff` of the pair should find nothing significant).")
@click.option("--telemetry-interval", type=click.FloatRange(0.05, 60), default=1.0,
              show_default=True, help="Seconds between host/NVML samples during a run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts; no progress display.")
@db_option
def run_command(suite, names, frameworks, mode, execution, steps, warmup, repeats,
                python_profile, aa, telemetry_interval, as_json, db_path):
    """Profile workloads in both frameworks, each in its own process, into the store.

    \b
    Examples:
      xprof run                                   # the small suite, both frameworks
      xprof run --suite tiny -w mlp -w cnn --repeats 1 --json
      xprof run -w transformer -f torch --exec compiled --steps 50
      xprof run --suite tiny -w mlp -f torch --aa   # A/A: two interleaved runs to diff
    """
    from analysis.taxonomy import classify
    from profiler.collect.orchestrate import Orchestrator, plan, sigterm_as_interrupt, telemetry_sampler

    store = _open_store(db_path)
    requests = plan(list(dict.fromkeys(names)) or list(WORKLOADS),
                    list(dict.fromkeys(frameworks)) or list(FRAMEWORKS),
                    [mode], suite, steps, repeats, execution, warmup, python_profile,
                    copies=2 if aa else 1)
    progress = _RunProgress(len(requests), repeats, quiet=as_json)
    orchestrator = Orchestrator(store, progress=progress.update,
                                classify=lambda event: classify(event.name, event.kind, event.op),
                                sampler_factory=telemetry_sampler(telemetry_interval))
    try:
        with sigterm_as_interrupt(), progress:
            outcomes = orchestrator.execute(requests)
    except KeyboardInterrupt:
        error = click.ClickException("interrupted: the cut run is stored as interrupted")
        error.exit_code = 130
        raise error from None
    if as_json:
        _emit_json({"runs": [o.as_json() for o in outcomes]})
    else:
        _print_runs([o.as_json() for o in outcomes], title=f"runs stored in {store.path}")
    failed = [o for o in outcomes if o.status != "ok"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(outcomes)} runs failed (errors above)")


class _RunProgress:
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
        what = f"{r.workload}/{r.mode} {r.framework} ({r.execution}) repeat {repeat + 1}/{r.repeats}"
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


@cli.command("runs")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def runs_command(limit, as_json, db_path):
    """Stored runs, newest first.

    \b
    Example:
      xprof runs --limit 10
    """
    store = _open_store(db_path, create=False)
    rows = [_run_row(r) for r in store.runs(limit)]
    if as_json:
        _emit_json({"runs": rows})
    else:
        _print_runs(rows, title=f"latest {len(rows)} runs in {store.path}")


def _run_row(run: dict) -> dict:
    return {
        "id": run["id"], "status": run["status"], "framework": run["framework"],
        "framework_version": run["framework_version"], "workload": run["workload"],
        "mode": run["mode"], "execution": run["execution"], "size": run["size"],
        "device": run["device"], "source": run["source"], "started_at": run["started_at"],
        "step_ms_median": run["step_ms_median"], "kernels": run["kernel_count"],
        "memory_events": run["memory_event_count"], "error": run["error"],
    }


def _print_runs(rows, title) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, box=None, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold underline")
    colours = {"ok": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
    cells = [
        ((row["id"] or "-")[:8], f"[{colours.get(row['status'], 'white')}]{row['status']}[/]",
         row["workload"] or "-", row["mode"] or "-", row["size"] or "-",
         "tf" if row["framework"] == "tensorflow" else row["framework"], row["execution"] or "-",
         _ms(row["step_ms_median"]), f"{row['kernels']:,}", f"{row['memory_events']:,}")
        for row in rows
    ]
    numeric = ("step ms", "events", "mem ev")  # events: ops, runtime calls and device events stored
    for i, column in enumerate(("id", "status", "workload", "mode", "size", "fw", "exec") + numeric):
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
    for row in rows:
        if row["error"]:
            console.print(f"[red]{row['id']}[/] {row['workload']} {row['framework']}: "
                          f"{escape(row['error'])}", highlight=False)


@cli.command("diff")
@click.argument("run_ids", nargs=-1)
@click.option("--workload", "-w", default=None,
              help="Compare the latest ok runs of two frameworks on this workload (a catalog "
                   "name, or one given to `xprof import`).")
@click.option("--a", "framework_a", type=click.Choice(FRAMEWORKS), default="torch", show_default=True)
@click.option("--b", "framework_b", type=click.Choice(FRAMEWORKS), default="tensorflow", show_default=True)
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="With --workload: runs of this mode (default: train, else any).")
@click.option("--size", type=click.Choice(SIZES), default=None,
              help="With --workload: runs of this size (default: the size of A's latest run).")
@click.option("--a-exec", type=click.Choice(EXECUTIONS), default=None,
              help="With --workload: A's execution style (default: its latest run's).")
@click.option("--b-exec", type=click.Choice(EXECUTIONS), default=None)
@click.option("--by", type=click.Choice(["category", "op", "kernel"]), default="category",
              show_default=True)
@click.option("--min-effect", type=click.FloatRange(0, 10), default=0.05, show_default=True,
              help="Smallest relative difference that can be significant.")
@click.option("--top", type=click.IntRange(1), default=15, show_default=True,
              help="Rows shown in the table (JSON has them all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def diff_command(run_ids, workload, framework_a, framework_b, mode, size, a_exec, b_exec, by,
                 min_effect, top, as_json, db_path):
    """Ranked differences between two runs, per step, with confidence intervals.

    \b
    Examples:
      xprof diff --workload cnn                     # latest torch vs tensorflow run
      xprof diff --workload mlp --by op --json
      xprof diff 3f2a9c1b 8e77d0aa --by kernel      # two runs by id (or unique prefix)
    """
    from analysis.diff import compare
    from analysis.samples import latest_run, resolve_run

    store = _open_store(db_path, create=False)
    conn = store.connection
    if run_ids:
        if len(run_ids) != 2 or workload:
            raise click.UsageError("give two run ids, or --workload (not both)")
        run_a, run_b = (resolve_run(conn, ref) for ref in run_ids)
    elif workload:
        if mode is None:  # train for the catalog's workloads, and where runs are of train
            mode = "train" if workload in WORKLOADS or conn.execute(
                "SELECT 1 FROM runs WHERE workload = ? AND mode = 'train' LIMIT 1", (workload,)).fetchone() else None
        run_a = latest_run(conn, workload, framework_a, mode, a_exec, size)
        run_b = latest_run(conn, workload, framework_b, mode, b_exec, size or run_a["size"])
    else:
        raise click.UsageError("give two run ids or --workload W")
    result = compare(conn, run_a, run_b, by, min_effect)
    if as_json:
        _emit_json(result)
    else:
        _print_diff(result, top)


def _ms(value) -> str:
    return ms_text(value)


def _ratio_cell(row) -> str:
    ratio, low, high = row["ratio"], row["ci_low"], row["ci_high"]
    text = ratio_word(ratio) + interval_text(low, high)
    if row["significant"]:
        colour = "red" if row["delta_ms"] > 0 else "green"
        return f"[{colour}]{text}[/]"
    return f"[dim]{text}[/]"


def _side_label(side) -> str:
    execution = f" {side['execution']}" if side["execution"] else ""
    return f"{side['framework']}{execution} ({side['id'][:8]}, {side['repeats']} repeats)"


def _print_diff(result, top) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    a, b, step = result["a"], result["b"], result["step"]
    from analysis.samples import workload_label

    console.print(f"[bold]{escape(workload_label(a['workload'], a['mode'], a['size']))}[/]: "
                  f"A = {_side_label(a)}, B = {_side_label(b)}")
    steps = ("profiled steps: an imported run has no others" if step.get("steps") == "profiled"
             else "unprofiled steps")
    console.print(f"step time ({steps}): A {_ms(step['a_ms'])} ms, "
                  f"B {_ms(step['b_ms'])} ms, "
                  f"B/A {_ratio_cell(step)}")
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold underline",
                  title=f"per step, by {result['by']} ({a['basis']} time), |delta| first")
    shown = result["rows"][:top]
    cells = [(escape(row["key"]), _ms(row["a_ms"]), _ms(row["b_ms"]),
              delta_text(row["delta_ms"]), _ratio_cell(row))
             for row in shown]
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
    console.print(f"peak memory: A {_bytes(a['peak_bytes'])}, B {_bytes(b['peak_bytes'])}; "
                  f"allocations per step: A {_num(a['allocations_per_step'])}, "
                  f"B {_num(b['allocations_per_step'])}")
    console.print(f"[dim]significant = {int(result['confidence'] * 100)}% interval excludes 1, effect > "
                  f"{result['min_effect']:.0%}, |delta| > timer resolution; {result['method']}[/]")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    for difference in result["environment_differences"]:
        console.print(f"[yellow]environment differs:[/] {difference}")


def _bytes(value) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def _num(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


@cli.command("report")
@click.option("--workload", "-w", "names", multiple=True, type=click.Choice(list(WORKLOADS)),
              help="Only these workloads (repeatable; default: every workload with runs).")
@click.option("--min-effect", type=click.FloatRange(0, 10), default=0.05, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def report_command(names, min_effect, as_json, db_path):
    """The verdict per workload and mode: which framework is faster, by how much, and why.

    \b
    Examples:
      xprof report
      xprof report -w cnn -w transformer --json
    """
    from analysis.report import build_report

    store = _open_store(db_path, create=False)
    report = build_report(store.connection, list(dict.fromkeys(names)), min_effect)
    if as_json:
        _emit_json(report)
    else:
        _print_report(report)


def _interval(entry) -> str:
    return interval_text(entry.get("ci_low"), entry.get("ci_high"))


def _print_report(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from analysis.samples import workload_label

    console = Console(highlight=False)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold underline",
                  title="verdict per workload (TF/torch: TensorFlow / torch step time)")
    for column in ("workload", "mode", "size", "torch ms", "tf ms", "TF/torch \\[interval]",
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
        table.add_row(entry["workload"], entry["mode"] or "-", entry["size"] or "-",
                      _ms(torch_side.get("step_ms")), _ms(tf_side.get("step_ms")), cell,
                      f"{_bytes(torch_side.get('peak_bytes'))}/{_bytes(tf_side.get('peak_bytes'))}")
        categories = entry.get("top_categories", [])
        why = ", ".join(f"{c['category']} {delta_text(c['delta_ms'])} ms"
                        f"{'' if c['significant'] else ' (n.s.)'}" for c in categories)
        effects = []
        for framework, side in fws.items():
            for execution, effect in side["execution_effects"].items():
                if effect["ratio"] is not None:
                    effects.append(f"{framework} {execution} {ratio_text(effect['ratio'])}x{_interval(effect)}")
        line = f"[bold]{escape(workload_label(entry['workload'], entry['mode'], entry['size']))}[/]: {entry['verdict']}"
        if why:
            line += f"; gap (tf - torch) from {why}"
        if effects:
            line += f"; vs usual style: {', '.join(effects)}"
        details.append(line)
    console.print(table)
    for line in details:
        console.print(line)
    notes = [note for entry in report["workloads"] for note in entry.get("notes", [])]
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print("[dim]n.s. = not significant; intervals and significance as in `xprof diff`[/]")


@cli.command("regressions")
@click.option("--workload", "-w", default=None,
              help="Only this workload (a catalog name, or one given to `xprof import`).")
@click.option("--baseline", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Ok runs before the latest that form its baseline.")
@click.option("--min-effect", type=click.FloatRange(0, 10), default=0.05, show_default=True)
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any regression is found.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def regressions_command(workload, baseline, min_effect, fail_on_regression, as_json, db_path):
    """The latest run of each configuration against the runs before it.

    \b
    Examples:
      xprof regressions
      xprof regressions --baseline 7 --fail-on-regression --json   # for nightly jobs and CI
    """
    from analysis.regressions import find_regressions

    store = _open_store(db_path, create=False)
    result = find_regressions(store.connection, workload, baseline, min_effect)
    if as_json:
        _emit_json(result)
    else:
        _print_regressions(result)
    if fail_on_regression and result["regressions"]:
        sys.exit(1)


def _print_regressions(result) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    console = Console(highlight=False)
    found = result["regressions"]
    console.print(f"checked {result['configurations_checked']} configurations against up to "
                  f"{result['baseline']} runs each ({result['comparisons']} comparisons): "
                  f"{len(found)} regression{'s' if len(found) != 1 else ''}")
    if not found:
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("workload", "framework", "key", "baseline ms", "latest ms", "ratio \\[interval]"):
        table.add_column(column, no_wrap=True, justify="right" if "ms" in column else "left")
    for r in found:
        ratio = "new" if r["ratio"] is None else f"{ratio_text(r['ratio'])}x"
        table.add_row(r["workload"], f"{r['framework']} {r['execution']}", escape(r["key"]),
                      _ms(r["baseline_ms"]), _ms(r["latest_ms"]), f"[red]{ratio}{_interval(r)}[/]")
    console.print(table)
    for r in found:
        for change in r["environment_changed"]:
            console.print(f"[yellow]{r['workload']} {r['framework']}: environment changed, "
                          f"a likely cause:[/] {escape(change)}")


@cli.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--workload", "-w", default=None,
              help="Workload the traces are of (any name), so diff and regressions place them.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="train or infer, to sit beside profiled runs of that mode.")
@click.option("--size", type=click.Choice(SIZES), default=None,
              help="The size, to sit beside profiled runs of that size.")
@click.option("--label", default=None, help="A free-form label stored with the runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def import_command(paths, workload, mode, size, label, as_json, db_path):
    """Ingest traces made elsewhere: Kineto JSON (.json, .json.gz), .xplane.pb, or
    TensorBoard log directories. One run per trace file; all or nothing.

    \b
    Examples:
      xprof import trace.pt.trace.json.gz --workload cnn --mode train --label a100-nightly
      xprof import logs/ --json          # every trace under a TensorBoard log dir
    """
    from profiler.interchange.ingest import import_traces

    show = None
    if not as_json and sys.stderr.isatty():
        show = lambda path: click.echo(f"importing {path}", err=True)  # noqa: E731
    # the store opens, and the taxonomy loads, once the first file's reader has started,
    # so that they go on at once
    runs = import_traces(lambda: _open_store(db_path), paths, workload, label, _classify_event,
                         progress=show, mode=mode, size=size)
    if as_json:
        _emit_json({"runs": [r.as_json() for r in runs]})
        return
    for r in runs:
        if r.duplicate_of:
            click.echo(f"{r.path}: already imported as run {r.id}")
        else:
            click.echo(f"{r.path}: run {r.id}, {r.events:,} events, {r.kernels:,} kernels "
                       f"({r.kernel_time_ms:.3f} ms), {r.memcpy:,} memcpy, {r.memset:,} memset, "
                       f"device {r.device}")


def _classify_event(event) -> str:
    """analysis.taxonomy.classify_event, loaded at its first call."""
    from analysis.taxonomy import classify_event

    return classify_event(event)


@cli.command("export")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["perfetto", "tensorboard", "html", "csv", "md"]),
              required=True)
@click.option("-o", "--output", type=click.Path(path_type=str), required=True,
              help="File (perfetto, html, md) or directory (tensorboard, csv) to write.")
@click.option("--steps", "step_range", default=None,
              help="Only profiled steps N, FIRST:LAST, FIRST: or :LAST (perfetto, csv), "
                   "so viewers stay light.")
@click.option("--repeat", type=click.IntRange(0), default=0, show_default=True,
              help="Which repeat's trace to export (perfetto, tensorboard).")
@db_option
def export_command(run_ids, fmt, output, step_range, repeat, db_path):
    """Export runs for review: a Perfetto/Chrome trace, a TensorBoard log dir, an offline
    HTML review, CSV tables or a Markdown summary.

    \b
    Examples:
      xprof export 3f2a9c1b 8e77d0aa --format perfetto -o cnn.json     # ui.perfetto.dev
      xprof export 3f2a9c1b --format tensorboard -o logs/             # tensorboard --logdir logs
      xprof export 3f2a9c1b 8e77d0aa --format html -o review.html
      xprof export 3f2a9c1b 8e77d0aa --format md -o summary.md        # for a PR or CI log
    """
    from pathlib import Path

    from analysis.samples import resolve_run
    from profiler.interchange import export

    store = _open_store(db_path, create=False)
    conn = store.connection
    runs = [resolve_run(conn, ref) for ref in dict.fromkeys(run_ids)]
    out = Path(output)
    steps = export.parse_step_range(step_range)
    if steps and fmt not in ("perfetto", "csv"):
        raise export.ExportError(f"--steps slices perfetto and csv exports; {fmt} takes whole runs")
    if fmt == "perfetto":
        count = export.write_perfetto(conn, runs, out, repeat, steps)
        click.echo(f"wrote {out}: {count:,} events from {len(runs)} run{'s' * (len(runs) != 1)} "
                   "(open in ui.perfetto.dev)")
    elif fmt == "tensorboard":
        for path in export.write_tensorboard(conn, runs, out, repeat):
            click.echo(f"wrote {path}")
        click.echo(f"open with: tensorboard --logdir {out}")
    elif fmt == "csv":
        for path in export.write_csv(conn, runs, out, steps):
            click.echo(f"wrote {path}")
    else:
        from analysis.summary import review_summary

        summary = review_summary(conn, runs)
        if fmt == "html":
            from views.html import render_html as render
        else:
            from views.markdown import render_markdown as render
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(summary))
        except OSError as error:
            raise click.ClickException(f"cannot write {out}: {error.strerror}") from None
        click.echo(f"wrote {out}")


@cli.command("watch")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True,
              help="Seconds between snapshots of the store.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@state_dir_option
@db_option
def watch_command(interval, once, state_dir, db_path):
    """A live terminal view: telemetry, the run in progress, the latest ranked
    differences per workload, recent runs and regressions. Reads the store only.

    \b
    Examples:
      xprof watch
      xprof watch --once          # one frame, e.g. for a CI log
    """
    import threading

    from rich.console import Console
    from rich.live import Live

    from analysis.snapshot import SnapshotReader
    from views.watch import render_frame

    from profiler.daemon.loop import DaemonFiles, read_status

    store = _open_store(db_path, create=False)
    reader = SnapshotReader(store.connection)
    files = DaemonFiles.of(store.path, state_dir)

    def take():
        return {**reader.take(), "daemon": read_status(files)}

    import sqlite3

    try:
        first = take()
    except sqlite3.Error as error:  # later snapshots retry; a first one has nothing to show
        raise click.ClickException(f"cannot read store {store.path}: {error}") from None
    console = Console()
    if once:
        console.print(render_frame(first, str(store.path), console.height))
        return
    # Snapshots are taken on their own thread; a frame draws the latest one and never
    # waits on a query.
    latest = {"snapshot": first}
    stop = threading.Event()

    def refresh():
        # an error in one snapshot (a store being migrated, an analysis bug) is shown in
        # the frame and the next snapshot is tried; the view never freezes silently
        while not stop.wait(interval):
            try:
                latest["snapshot"] = take()
            except Exception as error:  # noqa: BLE001 - shown in the frame, retried
                latest["snapshot"] = {**latest["snapshot"],
                                      "error": f"{type(error).__name__}: {error}"}

    worker = threading.Thread(target=refresh, daemon=True)
    worker.start()
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(render_frame(latest["snapshot"], str(store.path), console.height),
                            refresh=True)
                time.sleep(min(interval, 1.0))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()


def daemon_options(command):
    """The options `daemon run` and `daemon start` share; unset ones come from --config,
    then the defaults."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="TOML file of the options below ([daemon] table; flags win)."),
        click.option("--every", default=None, help="Run a cycle at start, then every 30m|6h|1d."),
        click.option("--cron", default=None, help="Run cycles at a five-field cron time, e.g. '0 2 * * *'."),
        click.option("--suite", type=click.Choice(SIZES), default=None, help="Size of the workloads [small]."),
        click.option("--workload", "-w", "workloads", multiple=True, type=click.Choice(list(WORKLOADS)),
                     help="Only these workloads (repeatable; default: all)."),
        click.option("--framework", "-f", "frameworks", multiple=True, type=click.Choice(FRAMEWORKS),
                     help="Only these frameworks (repeatable; default: both)."),
        click.option("--mode", type=click.Choice(MODES), default=None, help="[train]"),
        click.option("--exec", "execution", type=click.Choice(EXECUTIONS), default=None),
        click.option("--steps", type=click.IntRange(1, 100_000), default=None, help="[10]"),
        click.option("--warmup", type=click.IntRange(0, 10_000), default=None, help="[3]"),
        click.option("--repeats", type=click.IntRange(1, 1000), default=None, help="[5]"),
        click.option("--baseline", type=click.IntRange(1, 1000), default=None,
                     help="Runs before the latest that regressions compare it with [5]."),
        click.option("--min-effect", type=click.FloatRange(0, 10), default=None,
                     help="Smallest relative change regressions report [0.05]."),
        click.option("--on-regression", default=None,
                     help="Command run with the Markdown summary's path when a cycle finds "
                          "regressions or failed runs."),
        click.option("--worker-timeout", default=None,
                     help="A worker running longer is killed and its run failed [1h]."),
        click.option("--summary", default=None,
                     help="Where each cycle writes its Markdown summary [state directory]."),
        click.option("--telemetry-every", default=None,
                     help="Host/NVML sampling between cycles [30s]."),
        click.option("--keep-raw", default=None,
                     help="How long telemetry is kept raw before 10-minute means replace it [7d]."),
        state_dir_option,
        db_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.group("daemon")
def daemon_group():
    """Profile on a schedule, keep telemetry between runs: run|start|stop|status.

    \b
    Examples:
      xprof daemon run --every 6h                         # foreground (systemd, containers)
      xprof daemon start --cron "0 2 * * *" --on-regression ./notify.sh
      xprof daemon status
      xprof daemon stop
    """


def _daemon_setup(params: dict):
    from profiler.daemon.loop import DaemonFiles, load_config
    from profiler.store.paths import default_db_path

    overrides = {k: v for k, v in params.items() if k not in ("config_path", "state_dir", "db_path")}
    config = load_config(params["config_path"], overrides)
    files = DaemonFiles.of(params["db_path"] or default_db_path(), params["state_dir"])
    files.prepare()
    return config, files


@daemon_group.command("run")
@daemon_options
def daemon_run_command(**params):
    """Run the daemon in the foreground; logs go to stderr. SIGTERM stops it cleanly."""
    from analysis.regressions import find_regressions
    from analysis.taxonomy import classify
    from profiler.daemon.loop import Daemon
    from views.markdown import render_cycle_summary

    config, files = _daemon_setup(params)
    store = _open_store(files.store)

    def log(message):
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", err=True)

    daemon = Daemon(store, files, config, log=log,
                    classify=lambda event: classify(event.name, event.kind, event.op),
                    check_regressions=lambda conn: find_regressions(conn, None, config.baseline,
                                                                    config.min_effect),
                    render_summary=render_cycle_summary)
    daemon.run()


@daemon_group.command("start")
@click.option("--wait", type=click.FloatRange(1, 600), default=30, show_default=True,
              help="Seconds to wait for the daemon to take the store's lock.")
@daemon_options
@click.pass_context
def daemon_start_command(ctx, wait, **params):
    """Start the daemon in the background, with a pid file and a log file."""
    import os
    import subprocess

    from profiler.daemon.loop import LOG_ENV, lock_holder

    config, files = _daemon_setup(params)
    holder = lock_holder(files)
    if holder is not None:
        raise click.ClickException(f"an xprof daemon (pid {holder}) already runs on store "
                                   f"{files.store}; `xprof daemon stop` stops it")
    _open_store(files.store).close()  # a store that cannot be opened fails here, in one line
    argv = [sys.executable, "-P", "-m", "cli", "daemon", "run",
            *_forwarded(ctx, {**params, "db_path": str(files.store),
                              "state_dir": str(files.directory)})]
    with open(files.log, "ab") as log:
        # the daemon keeps this directory, so relative paths (a hook `./notify.sh`, a
        # summary path in the config) mean what they meant to the user who started it
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True,
                                 env={**os.environ, LOG_ENV: str(files.log)})
    deadline = time.time() + wait
    while time.time() < deadline:
        if lock_holder(files) == child.pid:
            click.echo(f"xprof daemon started (pid {child.pid}), {config.schedule.describe()}; "
                       f"log: {files.log}")
            return
        if child.poll() is not None:
            tail = files.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise click.ClickException(f"the daemon exited at once ({' '.join(tail) or 'no output'}); "
                                       f"log: {files.log}")
        time.sleep(0.1)
    raise click.ClickException(f"the daemon (pid {child.pid}) did not take the store's lock within "
                               f"{wait:g} s; see {files.log}")


def _forwarded(ctx, params: dict) -> list[str]:
    """The given options as command-line arguments again."""
    args = []
    for param in ctx.command.params:
        value = params.get(param.name)
        if param.name == "wait" or value in (None, ()):
            continue
        for item in value if param.multiple else [value]:
            args += [param.opts[0], str(item)]
    return args


@daemon_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@state_dir_option
@db_option
def daemon_status_command(as_json, state_dir, db_path):
    """Whether a daemon runs on the store, since when, its last and next cycle.
    Exits 0 when it runs, 3 when it does not."""
    from profiler.daemon.loop import DaemonFiles, read_status
    from profiler.store.paths import default_db_path

    files = DaemonFiles.of(db_path or default_db_path(), state_dir)
    if not files.store.exists():
        raise click.ClickException(f"no store at {files.store} (run `xprof run` or start the daemon first)")
    status = read_status(files)
    if as_json:
        _emit_json(status)
    else:
        click.echo(_describe_daemon(status))
    if not status["running"]:
        raise click.exceptions.Exit(3)


def _describe_daemon(status: dict) -> str:
    now = time.time()
    if not status["running"]:
        stale = (f"; stale pid file for pid {status['stale_pid']}, which is gone"
                 if status["stale_pid"] else "")
        lines = [f"no xprof daemon runs on store {status['store']}{stale}"]
        if status.get("stopped_at"):
            lines.append(f"last stopped: {_clock(status['stopped_at'])} ({_ago(now - status['stopped_at'])} ago)")
    else:
        lines = [f"xprof daemon runs on store {status['store']}: pid {status['pid']}"]
    if status["running"] and status.get("started_at"):
        lines[0] += f", since {_clock(status['started_at'])} ({_ago(now - status['started_at'])} ago)"
        lines.append(f"schedule: {status['schedule']}; now {status['phase']}"
                     + (f" ({status['activity']})" if status.get("activity") else ""))
    last = status.get("last_cycle")
    if last:
        lines.append(f"last cycle: {last['number']} at {_clock(last['started_at'])}, "
                     f"{last['runs_ok']} runs ok, {last['runs_failed']} failed, "
                     f"{last['regressions']} regression(s); summary {last['summary'] or '-'}")
        if last.get("error"):
            lines.append(f"last cycle error: {last['error']}")
        if last.get("hook"):
            lines.append(f"--on-regression: {last['hook']}")
    elif status["running"]:
        lines.append("last cycle: none yet")
    if status["running"] and status.get("next_cycle_at") and status.get("phase") == "waiting":
        lines.append(f"next cycle: {_clock(status['next_cycle_at'])} "
                     f"(in {_ago(status['next_cycle_at'] - now)})")
    if status["running"] and status.get("consecutive_failures"):
        lines.append(f"{status['consecutive_failures']} failed cycle(s) in a row: backing off")
    if status["running"] or status.get("log"):
        lines.append(f"log: {status.get('log') or 'stderr of the foreground `xprof daemon run`'}")
    return "\n".join(lines)


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _ago(seconds: float) -> str:
    from profiler.daemon.schedule import format_duration

    return format_duration(max(seconds, 0))


@daemon_group.command("stop")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="Seconds to wait for the current run to be cut and stored.")
@state_dir_option
@db_option
def daemon_stop_command(timeout, state_dir, db_path):
    """Stop the daemon gracefully: SIGTERM; its cut run is stored as interrupted."""
    import os

    from profiler.daemon.loop import DaemonFiles, lock_holder, read_status
    from profiler.store.paths import default_db_path

    files = DaemonFiles.of(db_path or default_db_path(), state_dir)
    status = read_status(files)
    if not status["running"]:
        if status["stale_pid"]:
            files.pid.unlink(missing_ok=True)
            raise click.ClickException(f"no xprof daemon runs on store {files.store} (removed a "
                                       f"stale pid file for pid {status['stale_pid']}, which is gone)")
        raise click.ClickException(f"no xprof daemon runs on store {files.store}")
    pid = status["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout
    while lock_holder(files) == pid and time.time() < deadline:
        time.sleep(0.1)
    if lock_holder(files) == pid:
        raise click.ClickException(f"the daemon (pid {pid}) did not stop within {timeout:g} s; "
                                   f"`kill -9 {pid}` ends it (its cut run is marked interrupted "
                                   "at the next start)")
    click.echo(f"xprof daemon (pid {pid}) stopped")


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
def doctor_command(as_json, db_path):
    """Environment report: versions, devices, NVML status and why it is absent.

    \b
    Example:
      xprof doctor --json
    """
    from profiler.doctor import report

    facts = report(db_path)
    if as_json:
        _emit_json(facts)
        return
    from rich.console import Console

    console = Console(highlight=False)
    for section, values in facts.items():
        console.print(f"[bold]{section}[/]")
        if isinstance(values, dict):
            for key, value in values.items():
                console.print(f"  {key}: {value}")
        else:
            console.print(f"  {values}")


def _print_workloads(rows, size, mode) -> None:
    from rich.console import Console
    from rich.table import Table

    from rich import box

    table = Table(title=f"workloads at size {size} (FLOPs per {mode} step)", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("workload", no_wrap=True, min_width=11)
    table.add_column("params", justify="right", no_wrap=True, min_width=10)
    table.add_column("FLOPs/step", justify="right", no_wrap=True, min_width=10)
    has_parity = any(row["parity"] for row in rows)
    if has_parity:
        table.add_column("parity: max |diff| <= tolerance", no_wrap=True)
    else:
        table.add_column("what it is", no_wrap=True, overflow="ellipsis")
    for row in rows:
        torch_side = row["frameworks"]["torch"]
        tf_side = row["frameworks"]["tensorflow"]
        params = f"{torch_side['params']:,}"
        if torch_side["params"] != tf_side["params"]:
            params = f"{torch_side['params']:,} / {tf_side['params']:,}"
        cells = [row["name"], params, _si(torch_side["flops_per_step"])]
        if has_parity:
            parity = row["parity"]
            if parity["ok"]:
                cells.append(f"[green]ok[/] {parity['max_abs_diff']:.1e} <= {parity['atol']:.0e}")
            else:
                cells.append(f"[red]FAIL[/] {parity['error']}")
        else:
            cells.append(row["description"])
        table.add_row(*cells)
    Console().print(table)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def main(argv=None) -> int:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        argv = ["--help"]
    try:
        # without standalone mode, click returns an Exit's code rather than raising it
        code = cli.main(args=argv, prog_name="xprof", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        click.echo("xprof: aborted", err=True)
        return 130
    except click.ClickException as error:
        click.echo(f"xprof: error: {error.format_message()}", err=True)
        return error.exit_code
    except WorkloadError as error:
        click.echo(f"xprof: error: {error}", err=True)
        return 2
    except UserError as error:
        click.echo(f"xprof: error: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("xprof: interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
