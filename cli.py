"""The `xprof` command: parse options, call the library, format the output.

Start-up stays light: torch and tensorflow are only ever imported in the
subprocesses that run workloads, and rich/numpy load inside the commands that use them.
"""

from __future__ import annotations

import json
import sys

import click

from workloads import MODES, SIZES, WORKLOADS, WorkloadError, get_workload


def _emit_json(payload) -> None:
    click.echo(json.dumps(payload, indent=2))


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
    names = list(names) or list(WORKLOADS)
    parity_results = {}
    if parity:
        from workloads.parity import ParityError, check_parity

        if not as_json:
            click.echo(f"checking parity of {len(names)} workloads at size {size} "
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


def _print_workloads(rows, size, mode) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"workloads at size {size} (FLOPs per {mode} step)")
    table.add_column("workload")
    table.add_column("params", justify="right")
    table.add_column("FLOPs/step", justify="right")
    has_parity = any(row["parity"] for row in rows)
    if has_parity:
        table.add_column("parity (max |diff|)")
    table.add_column("what it is")
    for row in rows:
        torch_side = row["frameworks"]["torch"]
        tf_side = row["frameworks"]["tensorflow"]
        params = f"{torch_side['params']:,}"
        if torch_side["params"] != tf_side["params"]:
            params = f"{torch_side['params']:,} / {tf_side['params']:,}"
        cells = [row["name"], params, _si(torch_side["flops_per_step"])]
        if has_parity:
            parity = row["parity"]
            mark = "[green]ok[/]" if parity["ok"] else f"[red]FAIL[/] {parity['error']}"
            cells.append(f"{mark} ({parity['max_abs_diff']:.1e} <= {parity['atol']:.0e})")
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
    try:
        cli.main(args=argv, prog_name="xprof", standalone_mode=False)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
