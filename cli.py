"""The `xprof` command: each command parses its options, makes one library call and
hands the result to one renderer in views/. Each imports what it uses when it runs, so
`xprof --help` and `xprof import` start fast; torch and TensorFlow load only in workers."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import click

from profiler.collect.settings import RunSettings
from profiler.errors import UserError
from views.invoke import classify_event as _classify_event
from views.invoke import profile_with_progress as _profile
from views.invoke import show as _show
from views.invoke import store as _store
from views.options import daemon_options, setting_options, store_options
from views.fleet import push_command, runs_command
from views.why import calibrate_command, roofline_command
from workloads import DTYPES, EXECUTIONS, FRAMEWORKS, MODES, SIZES, WORKLOADS, WorkloadError
from workloads.spec import ParityError

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
@click.option("--dtype", type=click.Choice(DTYPES), default="fp32", show_default=True,
              help="With --parity: the precision both frameworks run at (bf16, fp16: mixed precision).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def workloads_command(names, size, mode, parity, dtype, as_json):
    """List the canonical workloads, optionally proving their parity.

    \b
    Examples:
      xprof workloads --parity --size small
      xprof workloads --parity --dtype bf16
    """
    from views.lines import announce_parity
    from workloads.catalog import catalog_rows

    names = list(dict.fromkeys(names)) or list(WORKLOADS)
    if parity and not as_json:
        announce_parity(names, size, dtype)
    rows = catalog_rows(names, size, mode, parity, dtype)
    _show(rows, as_json, "terminal:print_workloads", size, mode)
    failed = [row["name"] for row in rows if row["parity"] and not row["parity"]["ok"]]
    if failed:
        raise click.ClickException(f"parity failed for: {', '.join(failed)}")


@cli.command("run")
@setting_options(*(f.name for f in fields(RunSettings)))
@store_options()
def run_command(as_json, db_path, **settings):
    """Profile workloads in both frameworks, each in its own process, into the store.

    \b
    Examples:
      xprof run                                   # the small suite, both frameworks
      xprof run --suite tiny -w mlp -w cnn --repeats 1 --json
      xprof run -w transformer -f torch --exec compiled --steps 50
      xprof run --suite tiny -w mlp -f torch --aa   # A/A: two interleaved runs to diff
    """
    from profiler.collect.devices import resolve_device

    settings = RunSettings.from_flags(settings)
    # the device first: one that is not there is refused before a store is made
    requests = settings.requests(resolve_device(settings.device, settings.frameworks or list(FRAMEWORKS)))
    store = _store(db_path, create=True)
    outcomes = _profile(store, settings, requests, as_json)
    rows = [o.as_json() for o in outcomes]
    _show({"runs": rows} if as_json else rows, as_json, "terminal:print_runs", f"runs stored in {store.path}")
    failed = [o for o in outcomes if o.status != "ok"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(outcomes)} runs failed (errors above)")


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
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="With --workload: runs at this precision (default: A's latest run's; B at A's).")
@click.option("--device", default=None,
              help="With --workload: runs on this device, cpu or gpu:N (default: A's latest run's; B on A's).")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="With --workload: runs that took this batch (`run --batch-size`; default: the size's own).")
@click.option("--by", type=click.Choice(["category", "op", "kernel", "layer"]), default="category",
              show_default=True)
@setting_options("min_effect")
@click.option("--top", type=click.IntRange(1), default=15, show_default=True,
              help="Rows shown in the table (JSON has them all).")
@store_options(host=True)
def diff_command(run_ids, workload, framework_a, framework_b, mode, size, a_exec, b_exec, dtype, device,
                 batch_size, by, min_effect, top, host, as_json, db_path):
    """Ranked differences between two runs, per step, with confidence intervals.

    \b
    Examples:
      xprof diff --workload cnn                     # latest torch vs tensorflow run
      xprof diff --workload mlp --by op --json
      xprof diff --workload cnn --dtype bf16 --device gpu:0
      xprof diff 3f2a9c1b 8e77d0aa --by kernel      # two runs by id (or unique prefix)
      xprof diff --workload cnn --by layer          # layer by layer, with FLOP/s
    """
    from analysis.diff import compare
    from analysis.runs import latest_pair
    from profiler.collect.devices import parse_device

    store = _store(db_path, host=host, one_host="latest" if workload else None)
    if run_ids:
        if len(run_ids) != 2 or workload:
            raise click.UsageError("give two run ids, or --workload (not both)")
        run_a, run_b = (store.run(ref) for ref in run_ids)
    elif workload:
        device = parse_device(device) if device else None
        run_a, run_b = latest_pair(store, workload, framework_a, framework_b, mode, size, a_exec, b_exec,
                                   dtype, device, batch_size)
    else:
        raise click.UsageError("give two run ids or --workload W")
    result = compare(store, run_a, run_b, by, min_effect)
    _show(result, as_json, "terminal:print_diff", top)


@cli.command("report")
@click.option("--workload", "-w", "names", multiple=True, type=click.Choice(list(WORKLOADS)),
              help="Only these workloads (repeatable; default: every workload with runs).")
@setting_options("min_effect")
@store_options(host=True)
def report_command(names, min_effect, host, as_json, db_path):
    """The verdict per workload and mode: which framework is faster, by how much, and why.

    \b
    Examples:
      xprof report
      xprof report -w cnn -w transformer --json
    """
    from analysis.report import build_report

    report = build_report(_store(db_path, host=host), list(dict.fromkeys(names)), min_effect)
    _show(report, as_json, "terminal:print_report")


ONE_WORKLOAD = click.option("--workload", "-w", default=None,
                            help="Only this workload (a catalog name, or one given to `xprof import`).")


@cli.command("claims")
@click.option("--workload", "-w", "names", multiple=True, type=click.Choice(list(WORKLOADS)),
              help="Only these workloads (repeatable; default: all).")
@click.option("--size", type=click.Choice(SIZES), default="small", show_default=True,
              help="The runs' size (`xprof run --suite`).")
@click.option("--run", "run_missing", is_flag=True, help="First profile the runs the claims need and the store lacks.")
@click.option("--device", default=None, help="cpu or gpu:N (default: the first GPU both frameworks see, else cpu).")
@click.option("--markdown", is_flag=True, help="Print the verdicts as a Markdown table (the README's).")
@click.option("--repeats", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Worker processes per run that --run makes (3: the fewest whose interval is worth reading).")
@setting_options("steps", "warmup", "min_effect")
@store_options()
def claims_command(names, size, run_missing, device, markdown, repeats, steps, warmup, min_effect, as_json, db_path):
    """Which of the comparison articles' claims hold on this machine, per workload.

    \b
    Examples:
      xprof claims --run --size tiny        # profile what is missing, then answer
      xprof claims -w cnn -w mlp --json
    """
    from analysis.claims import check_claims, machine_here, needed_requests

    if markdown and as_json:
        raise click.UsageError("give --json or --markdown, not both")
    machine = machine_here(device)  # before the store: a device that is not there makes none
    store = _store(db_path, create=run_missing, one_host="here")
    workloads = list(dict.fromkeys(names)) or None
    failed = []
    if run_missing:
        requests = needed_requests(store, size, machine, workloads, repeats=repeats, steps=steps, warmup=warmup)
        settings = RunSettings(repeats=repeats)
        failed = [o for o in _profile(store, settings, requests, as_json) if o.status != "ok"]
    _show(check_claims(store, size, machine, workloads, min_effect=min_effect), as_json,
          "markdown:print_claims" if markdown else "claims:print_claims")
    if failed:
        raise click.ClickException(f"{len(failed)} runs the claims needed failed (errors above): not measured")


@cli.command("regressions")
@ONE_WORKLOAD
@setting_options("baseline", "min_effect")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any configuration's state is regression.")
@store_options(host=True)
def regressions_command(workload, baseline, min_effect, fail_on_regression, host, as_json, db_path):
    """The state of each configuration: its latest two runs against the spread of the runs
    before them (regression, suspicious, improvement, unstable, insufficient data, ok).

    \b
    Examples:
      xprof regressions
      xprof regressions --baseline 7 --fail-on-regression --json   # for nightly jobs and CI
    """
    from analysis.regressions import find_regressions

    result = find_regressions(_store(db_path, host=host), workload, baseline, min_effect)
    _show(result, as_json, "terminal:print_regressions")
    if fail_on_regression and result["regressions"]:
        raise click.exceptions.Exit(1)


@cli.command("history")
@ONE_WORKLOAD
@click.option("--key", default="step", show_default=True, help="step, or a category (an op or kernel with --by).")
@click.option("--by", type=click.Choice(["category", "op", "kernel"]), default="category", show_default=True)
@click.option("--last", type=click.IntRange(2), default=None, help="Only the newest N runs of each configuration.")
@setting_options("min_effect")
@store_options(host=True)
def history_command(workload, key, by, last, min_effect, host, as_json, db_path):
    """Each configuration's figure run after run, and where it changed.

    \b
    Examples:
      xprof history -w cnn
      xprof history --key matmul --last 60 --json
    """
    from analysis.history import build_history

    result = build_history(_store(db_path, host=host), workload, key, by, min_effect, last=last)
    _show(result, as_json, "terminal:print_history")


@cli.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--workload", "-w", default=None, help="Workload the traces are of (any name), to place them.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="train or infer, to sit beside profiled runs of that mode.")
@click.option("--size", type=click.Choice(SIZES), default=None,
              help="The size, to sit beside profiled runs of that size.")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="The precision the traced steps ran at, to sit beside profiled runs of it.")
@click.option("--label", default=None, help="A free-form label stored with the runs.")
@click.option("--host", default=None, metavar="NAME", help="The host the traces were made on (default: none said).")
@store_options()
def import_command(paths, workload, mode, size, dtype, label, host, as_json, db_path):
    """Ingest traces made elsewhere: Kineto JSON (.json, .json.gz), .xplane.pb, or
    TensorBoard log directories. One run per trace file; all or nothing.

    \b
    Examples:
      xprof import trace.pt.trace.json.gz --workload cnn --mode train --label a100-nightly
      xprof import logs/ --json          # every trace under a TensorBoard log dir
    """
    from profiler.interchange.ingest import import_traces

    from views.lines import import_progress

    # the store opens, and the taxonomy loads, once the first file's reader has started,
    # so that they go on at once
    runs = import_traces(lambda: _store(db_path, create=True), paths, workload, label,
                         _classify_event, progress=import_progress(as_json), mode=mode, size=size,
                         dtype=dtype, host=host)

    _show({"runs": [r.as_json() for r in runs]} if as_json else runs, as_json, "lines:print_imported")


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
@store_options(json=False)
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

    from views.lines import print_exported
    from views.review import export

    store = _store(db_path)
    runs = [store.run(ref) for ref in dict.fromkeys(run_ids)]
    print_exported(export(store, runs, fmt, Path(output), step_range, repeat))


@cli.command("prune")
@setting_options("keep_events", "keep_last")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@store_options()
def prune_command(keep_events, keep_last, dry_run, as_json, db_path):
    """Remove the raw events, memory events and raw traces of old runs and give the space
    back; runs, their steps and their figures stay, so diff, report and regressions work.

    \b
    Examples:
      xprof prune --dry-run
      xprof prune --older-than 14d --keep-last 3 --json
    """
    from profiler.collect.settings import RetentionSettings

    retention = RetentionSettings(keep_events, keep_last)
    _show(_store(db_path).prune(retention.keep_events_s, keep_last, dry_run), as_json, "lines:print_pruned")


@cli.command("watch")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True,
              help="Seconds between snapshots of the store.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@store_options(json=False, state_dir=True, host=True)
def watch_command(interval, once, state_dir, host, db_path):
    """A live terminal view: telemetry, the run in progress, the latest ranked
    differences per workload, recent runs and regressions. Reads the store only.

    \b
    Examples:
      xprof watch
      xprof watch --once          # one frame, e.g. for a CI log
    """
    from analysis.snapshot import SnapshotReader
    from profiler.daemon.files import DaemonFiles, read_status
    from views.watch import watch

    store = _store(db_path, host=host)
    files = DaemonFiles.of(db_path, state_dir)
    reader = SnapshotReader(store, daemon_status=lambda: read_status(files))
    watch(reader.take, str(store.path), interval, once)


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


@daemon_group.command("run")
@daemon_options
def daemon_run_command(config_path, state_dir, db_path, **flags):
    """Run the daemon in the foreground; logs go to stderr. SIGTERM stops it cleanly."""
    from analysis.history import nightly_check
    from profiler.daemon.config import load_config
    from profiler.daemon.files import DaemonFiles
    from profiler.daemon.loop import Daemon
    from views.lines import log_line
    from views.markdown import render_cycle_summary

    config = load_config(config_path, flags)
    config.check_device_here()
    files = DaemonFiles.of(db_path, state_dir).prepare()
    Daemon(_store(files.store, create=True), files, config, log=log_line, classify=_classify_event,
           check_regressions=lambda store: nightly_check(store, config.baseline, config.min_effect),
           render_summary=render_cycle_summary).run()


@daemon_group.command("start")
@click.option("--wait", type=click.FloatRange(1, 600), default=30, show_default=True,
              help="Seconds to wait for the daemon to take the store's lock.")
@daemon_options
def daemon_start_command(wait, config_path, state_dir, db_path, **flags):
    """Start the daemon in the background, with a pid file and a log file."""
    from profiler.daemon import control
    from profiler.daemon.config import load_config
    from profiler.daemon.files import DaemonFiles

    config = load_config(config_path, flags)
    config.check_device_here()
    files = DaemonFiles.of(db_path, state_dir).prepare()
    control.refuse_if_running(files)
    _store(files.store, create=True).close()  # a store that cannot be opened fails here, in one line
    pid = control.start_detached(files, control.as_arguments(flags, config_path, files), wait)
    click.echo(f"xprof daemon started (pid {pid}), {config.schedule.describe()}; log: {files.log}")


@daemon_group.command("status")
@store_options(state_dir=True)
def daemon_status_command(as_json, state_dir, db_path):
    """Whether a daemon runs on the store, since when, its last and next cycle.
    Exits 0 when it runs, 3 when it does not."""
    from profiler.daemon.files import DaemonFiles, read_status

    files = DaemonFiles.of(db_path, state_dir)
    if isinstance(files.store, Path) and not files.store.exists():
        raise click.ClickException(f"no store at {files.store} (run `xprof run` or start the daemon first)")
    status = read_status(files)
    _show(status, as_json, "lines:print_daemon_status")
    if not status["running"]:
        raise click.exceptions.Exit(3)


@daemon_group.command("stop")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="Seconds to wait for the current run to be cut and stored.")
@store_options(json=False, state_dir=True)
def daemon_stop_command(timeout, state_dir, db_path):
    """Stop the daemon gracefully: SIGTERM; its cut run is stored as interrupted."""
    from profiler.daemon import control
    from profiler.daemon.files import DaemonFiles

    pid = control.stop(DaemonFiles.of(db_path, state_dir), timeout)
    click.echo(f"xprof daemon (pid {pid}) stopped")


@cli.command("doctor")
@store_options()
def doctor_command(as_json, db_path):
    """Environment report: versions, devices, NVML status and why it is absent.

    \b
    Example:
      xprof doctor --json
    """
    from profiler.doctor import report

    facts = report(db_path)
    _show(facts, as_json, "terminal:print_doctor")


def main(argv=None) -> int:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    argv = (sys.argv[1:] if argv is None else list(argv)) or ["--help"]
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
    except (WorkloadError, ParityError, UserError) as error:  # a bad name (2), or else to fix (1)
        click.echo(f"xprof: error: {error}", err=True)
        return 2 if isinstance(error, WorkloadError) else 1
    except KeyboardInterrupt:
        click.echo("xprof: interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


cli.add_command(runs_command)
cli.add_command(calibrate_command)
cli.add_command(roofline_command)
cli.add_command(push_command)

if __name__ == "__main__":
    sys.exit(main())
