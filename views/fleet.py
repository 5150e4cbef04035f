"""The commands a fleet of hosts sharing one store uses: `xprof runs` (every host's, or
one's) and `xprof push` (a host's SQLite store into the server); cli.py adds them."""

from __future__ import annotations

import sys

import click

from views.invoke import show, store as open_store
from views.options import store_options


@click.command("runs")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@store_options(host=True)
def runs_command(limit, host, as_json, db_path):
    """Stored runs, newest first (every host's, or --host's).

    \b
    Examples:
      xprof runs --limit 10
      xprof runs --db postgresql://xprof@db.example/xprof --host gpu-a100-1
    """
    from views.lines import run_row

    store = open_store(db_path, host=host)
    rows = [run_row(r) for r in store.runs(limit)]
    where = f"{store.path}" + (f", host {host}" if host else "")
    show({"runs": rows} if as_json else rows, as_json, "terminal:print_runs", f"latest {len(rows)} runs in {where}")


@click.command("push")
@click.option("--to", "url", required=True, metavar="URL", help="The server store: a postgresql:// URL.")
@click.option("--host", default=None, metavar="NAME", help="Only this host's runs (default: every run in --db).")
@store_options()
def push_command(url, host, as_json, db_path):
    """Copy a local store's finished runs, their events, figures, telemetry and raw traces
    into a server store; runs already there (by id) are left as they are, so pushing
    again is safe. For hosts that profile offline.

    \b
    Examples:
      xprof push --to postgresql://xprof@db.example/xprof
      xprof push --to "$FLEET_DB" --db /scratch/xprof.db --host gpu-node-7
    """
    from profiler.store.dialect import is_url
    from profiler.store.push import push

    if not is_url(url):
        raise click.ClickException(f"--to {url!r}: expected a postgresql:// URL of the server store")
    source = open_store(db_path, host=host)  # an unknown --host is one line, as elsewhere
    target = open_store(url, create=True)
    tell = (lambda text: click.echo(text, err=True)) if not as_json and sys.stderr.isatty() else (lambda text: None)
    result = push(source, target, host, tell)
    result = {"from": str(source.path), "to": str(target.path), **result}
    show(result, as_json, "lines:print_pushed")
