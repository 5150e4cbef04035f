"""Plain lines and JSON, without rich: what commands print that must start fast (import,
export, daemon status) and every command's --json."""

from __future__ import annotations

import json
import sys
import time

import click

from views.numbers import bytes_text, clock_text, duration_text


def emit_json(payload) -> None:
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


def run_row(run: dict) -> dict:
    """A stored run as `xprof runs` shows it (and `xprof run --json` for a new one)."""
    return {
        "id": run["id"], "status": run["status"], "framework": run["framework"],
        "framework_version": run["framework_version"], "workload": run["workload"],
        "mode": run["mode"], "execution": run["execution"], "size": run["size"],
        "dtype": run["dtype"], "device": run["device"], "batch_size": run["batch_size"],
        "source": run["source"], "started_at": run["started_at"],
        "step_ms_median": run["step_ms_median"], "kernels": run["event_count"],
        "memory_events": run["memory_event_count"], "error": run["error"],
        "events_pruned_at": run["events_pruned_at"], "host": run["host"],
    }


def print_pushed(result: dict) -> None:
    running = f"; {result['running']} still running (push again once they end)" if result["running"] else ""
    click.echo(f"pushed {len(result['pushed'])} runs from {result['from']} to {result['to']}; "
               f"{result['already']} were there already{running}; {result['calibrations']} calibrations")


def announce_parity(names, size, dtype) -> None:
    plural = "s" if len(names) > 1 else ""
    click.echo(f"checking parity of {len(names)} workload{plural} at size {size} and {dtype} "
               "(torch, then tensorflow, each in its own process)...", err=True)


def import_progress(quiet: bool):
    """A line per file as an import starts it, on a terminal; None otherwise."""
    if quiet or not sys.stderr.isatty():
        return None
    return lambda path: click.echo(f"importing {path}", err=True)


def print_imported(runs) -> None:
    for r in runs:
        if r.duplicate_of:
            pruned = (" (its raw events were pruned: diff, report and regressions use its kept "
                      "figures; exports that need events cannot be made again)") if r.events_pruned else ""
            click.echo(f"{r.path}: already imported as run {r.id}{pruned}")
        else:
            click.echo(f"{r.path}: run {r.id}, {r.events:,} events, {r.kernels:,} kernels "
                       f"({r.kernel_time_ms:.3f} ms), {r.memcpy:,} memcpy, {r.memset:,} memset, "
                       f"device {r.device}")


def print_exported(exported) -> None:
    if exported.format == "perfetto":
        click.echo(f"wrote {exported.output}: {exported.events:,} events from {exported.runs} "
                   f"run{'s' * (exported.runs != 1)} (open in ui.perfetto.dev)")
        return
    for path in exported.paths:
        click.echo(f"wrote {path}")
    if exported.format == "tensorboard":
        click.echo(f"open with: tensorboard --logdir {exported.output}")


def print_pruned(result: dict) -> None:
    """`xprof prune` in one line: what went (or would go) and the store's size."""
    verb = "would prune" if result["dry_run"] else "pruned"
    size = ""
    if result["store_bytes_before"] is not None and not result["dry_run"]:
        size = (f"; store {bytes_text(result['store_bytes_before'])} -> "
                f"{bytes_text(result['store_bytes_after'])}")
        if result["wal_bytes"]:
            size += (f", {bytes_text(result['wal_bytes'])} of it write-ahead log that goes "
                     "when the store's readers close")
    click.echo(f"{verb} the raw events of {result['runs']} run{'s' * (result['runs'] != 1)}: "
               f"{result['events']:,} events, {result['memory_events']:,} memory events, "
               f"{bytes_text(result['artifact_bytes'])} of raw traces{size}")
    for left in result.get("files_left", []):
        click.echo(f"could not remove {left}; its row is gone, remove the file by hand", err=True)


def log_line(message: str) -> None:
    """A line of the daemon's log, on stderr, after the local date and time."""
    click.echo(f"{clock_text(time.time())} {message}", err=True)


def print_daemon_status(status: dict) -> None:
    """`xprof daemon status`, as describe_daemon says it."""
    click.echo(describe_daemon(status))


def describe_daemon(status: dict) -> str:
    """`xprof daemon status` in lines: whether it runs, since when, its last and next cycle."""
    now = time.time()
    if not status["running"]:
        stale = (f"; stale pid file for pid {status['stale_pid']}, which is gone"
                 if status["stale_pid"] else "")
        lines = [f"no xprof daemon runs on store {status['store']}{stale}"]
        if status.get("stopped_at"):
            lines.append(f"last stopped: {clock_text(status['stopped_at'])} "
                         f"({duration_text(now - status['stopped_at'])} ago)")
    else:
        lines = [f"xprof daemon runs on store {status['store']}: pid {status['pid']}"]
    if status["running"] and status.get("started_at"):
        lines[0] += (f", since {clock_text(status['started_at'])} "
                     f"({duration_text(now - status['started_at'])} ago)")
        lines.append(f"schedule: {status['schedule']}; now {status['phase']}"
                     + (f" ({status['activity']})" if status.get("activity") else ""))
    last = status.get("last_cycle")
    if last:
        lines.append(f"last cycle: {last['number']} at {clock_text(last['started_at'])}, "
                     f"{last['runs_ok']} runs ok, {last['runs_failed']} failed, "
                     f"{last['regressions']} regression(s); summary {last['summary'] or '-'}")
        if last.get("error"):
            lines.append(f"last cycle error: {last['error']}")
        if last.get("hook"):
            lines.append(f"--on-regression: {last['hook']}")
    elif status["running"]:
        lines.append("last cycle: none yet")
    if status["running"] and status.get("next_cycle_at") and status.get("phase") == "waiting":
        lines.append(f"next cycle: {clock_text(status['next_cycle_at'])} "
                     f"(in {duration_text(status['next_cycle_at'] - now)})")
    if status["running"] and status.get("consecutive_failures"):
        lines.append(f"{status['consecutive_failures']} failed cycle(s) in a row: backing off")
    if status["running"] or status.get("log"):
        lines.append(f"log: {status.get('log') or 'stderr of the foreground `xprof daemon run`'}")
    return "\n".join(lines)
