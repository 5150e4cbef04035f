"""xprof daemon: real cycles of tiny torch runs into a real store, real signals."""

import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import FAKE_NVML, XPROF, default_device, one_line_error, run_xprof, torch_gpus

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow

TINY = ("--suite", "tiny", "-f", "torch", "--steps", "3", "--warmup", "1", "--repeats", "1",
        "--telemetry-every", "0.3s")


def wait_for(predicate, timeout=90, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows(db, sql, args=()):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def ready_rows(db, sql):
    """rows(), or none while the store file exists but its schema is still being written."""
    try:
        return rows(db, sql)
    except sqlite3.OperationalError:
        return []


def status(db, state):
    done = run_xprof("daemon", "status", "--json", "--db", db, "--state-dir", state)
    return json.loads(done.stdout), done.returncode


def worker_dirs_of(pid):
    found = []
    for directory in Path(tempfile.gettempdir()).glob("xprof-worker-*"):
        try:
            if json.loads((directory / "request.json").read_text())["parent_pid"] == pid:
                found.append(directory)
        except (OSError, ValueError):
            continue
    return found


def foreground(db, state, *args, env=None):
    return subprocess.Popen([str(XPROF), "daemon", "run", *args, "--db", str(db), "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_a_short_schedule_makes_runs_and_keeps_telemetry_between_them(tmp_path):
    db, state = tmp_path / "x.db", tmp_path / "state"
    # raw events of all but the newest run go after each cycle: the figures stay
    daemon = foreground(db, state, "--every", "4s", "-w", "linear", *TINY, "--keep-events", "1s",
                        "--keep-last", "1")
    readings = []

    def ok_runs():
        # a real reader, allowed to wait 1 ms for a lock: WAL means it never has to
        done = run_xprof("runs", "--json", "--db", db, env={"XPROF_BUSY_TIMEOUT_MS": "1"})
        readings.append(done)
        return db.exists() and done.returncode == 0 and sum(
            r["status"] == "ok" for r in json.loads(done.stdout)["runs"]) >= 2

    try:
        wait_for(lambda: db.exists() and status(db, state)[1] == 0, what="the daemon to start")
        wait_for(ok_runs, what="two cycles")
        assert all(r.returncode == 0 and "locked" not in r.stderr for r in readings)
        current, code = status(db, state)
        assert code == 0 and current["running"] and current["pid"] == daemon.pid
        assert current["schedule"] == "every 4s" and current["last_cycle"]["runs_ok"] == 1
        assert current["log"] is None  # in the foreground its output is our stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, log
    assert "cycle 1 done" in log and "cycle 2: profiling 1 run(s)" in log and "stopping" in log
    assert "pruned the raw events of 1 run(s) older than 1s" in log
    assert rows(db, "SELECT count(*) FROM runs WHERE events_pruned_at IS NOT NULL")[0][0] >= 1
    assert run_xprof("regressions", "--json", "--db", db).returncode == 0  # figures of pruned runs
    # telemetry between cycles: host readings that belong to no run
    assert rows(db, "SELECT count(*) FROM samples WHERE run_id IS NULL AND source = 'host'")[0][0] >= 3
    summary = next(state.glob("*.summary.md")).read_text()
    assert summary.startswith("# xprof nightly: no regressions") and "| linear train | torch eager | ok" in summary
    after, code = status(db, state)
    assert code == 3 and not after["running"] and after["stale_pid"] is None
    assert not list(state.glob("*.pid"))  # a clean stop removes its pid file


def test_a_daemon_with_a_driver_keeps_gpu_samples_and_runs_at_its_dtype(tmp_path):
    """NVML through the fake library (as with a driver and two GPUs): the daemon samples
    both GPUs between cycles and during its runs, and its runs take the config's dtype
    and the device --device's default gives (the frameworks are asked: a driver is there)."""
    db, state = tmp_path / "x.db", tmp_path / "state"
    with_driver = {"PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_NVML), os.environ.get("PYTHONPATH")]))}
    daemon = foreground(db, state, "--every", "1h", "-w", "linear", *TINY, "--dtype", "bf16", env=with_driver)
    try:
        wait_for(lambda: db.exists() and rows(db, "SELECT count(*) FROM runs WHERE status = 'ok'")[0][0] == 1,
                 what="one ok run")
        wait_for(lambda: rows(db, "SELECT count(*) FROM samples WHERE source = 'nvml' AND run_id IS NULL")[0][0] >= 4,
                 what="NVML samples between cycles")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, log
    [(run_id, dtype, device)] = rows(db, "SELECT id, dtype, device FROM runs")
    assert (dtype, device) == ("bf16", "gpu:0" if torch_gpus() else "cpu")
    during = {device for (device,) in rows(db, "SELECT device FROM samples WHERE source = 'nvml' AND run_id = ?",
                                            (run_id,))}
    between = {device for (device,) in rows(db, "SELECT device FROM samples WHERE source = 'nvml' AND run_id IS NULL")}
    assert during == between == {"gpu:0", "gpu:1"}


def test_sigkill_mid_run_then_a_restart_marks_the_cut_run_and_keeps_the_rest(tmp_path):
    db, state = tmp_path / "x.db", tmp_path / "state"
    run_xprof("run", "--suite", "tiny", "-w", "linear", "-f", "torch", "--repeats", "1", "--steps", "3",
              "--db", db, check=0)
    kept = rows(db, "SELECT r.id, count(*), sum(k.dur_ns) FROM runs r JOIN event_rows k "
                    "ON k.run_id = r.id GROUP BY r.id")
    started = run_xprof("daemon", "start", "--every", "1h", "-w", "mlp", *TINY, "--db", db,
                        "--state-dir", state, env={"XPROF_INJECT_FAULT": "mlp:hang"}, check=0)
    assert "xprof daemon started" in started.stdout
    pid = status(db, state)[0]["pid"]
    assert status(db, state)[0]["log"] == str(next(state.glob("*.log")))
    wait_for(lambda: rows(db, "SELECT id FROM runs WHERE status = 'running'"), what="a run in progress")
    # a second daemon on the same store is refused, naming the holder, in either form
    assert f"another xprof daemon (pid {pid}) already runs on store" in one_line_error(
        run_xprof("daemon", "run", "--every", "1h", "--db", db, "--state-dir", state))
    assert f"daemon (pid {pid}) already runs" in one_line_error(
        run_xprof("daemon", "start", "--every", "1h", "--db", db, "--state-dir", state))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(db, state)[1] == 3, what="the lock to be dropped")
    abandoned = worker_dirs_of(pid)
    assert abandoned  # a killed daemon cannot clean up after its worker
    stale, code = status(db, state)
    assert code == 3 and stale["stale_pid"] == pid
    text = run_xprof("daemon", "status", "--db", db, "--state-dir", state)
    assert text.returncode == 3 and f"stale pid file for pid {pid}" in text.stdout
    assert rows(db, "SELECT status FROM runs WHERE workload = 'mlp'") == [("running",)]

    restarted = run_xprof("daemon", "start", "--every", "1h", "-w", "linear", *TINY,
                          "--db", db, "--state-dir", state, check=0)
    assert "xprof daemon started" in restarted.stdout
    try:
        wait_for(lambda: rows(db, "SELECT status, error FROM runs WHERE workload = 'mlp'")[0][0] != "running",
                 what="the cut run to be marked")
        assert rows(db, "SELECT status, error FROM runs WHERE workload = 'mlp'") == [
            ("interrupted", "interrupted: its xprof process is gone")]
        # removed by the next start's first cycle, which comes just after the marking
        wait_for(lambda: not any(d.exists() for d in abandoned), what="the abandoned worker dirs to go")
    finally:
        stopped = run_xprof("daemon", "stop", "--db", db, "--state-dir", state, check=0)
        assert "stopped" in stopped.stdout
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    for run_id, count, total in kept:  # finished runs untouched
        assert rows(db, "SELECT count(*), sum(dur_ns) FROM event_rows WHERE run_id = ?", (run_id,)) == [(count, total)]
        assert rows(db, "SELECT status FROM runs WHERE id = ?", (run_id,)) == [("ok",)]
    log = next(state.glob("*.log")).read_text()
    assert f"replacing a stale pid file (pid {pid} is gone)" in log
    assert "marked 1 run(s) of a process that died as interrupted" in log


def test_sigterm_cuts_the_current_run_as_interrupted(tmp_path):
    db, state = tmp_path / "x.db", tmp_path / "state"
    daemon = foreground(db, state, "--every", "1h", "-w", "mlp", *TINY,
                        env={"XPROF_INJECT_FAULT": "mlp:hang"})
    wait_for(lambda: db.exists() and ready_rows(db, "SELECT id FROM runs WHERE status = 'running'"),
             what="a run in progress")
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, log
    assert rows(db, "SELECT status, error FROM runs") == [("interrupted", "interrupted")]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_failed_cycles_back_off_and_the_daemon_goes_on(tmp_path):
    db, state = tmp_path / "x.db", tmp_path / "state"
    hook = tmp_path / "notify.sh"
    hook.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/received.md\n')
    hook.chmod(0o755)
    daemon = foreground(db, state, "--every", "1s", "-w", "linear", *TINY, "--on-regression", hook,
                        env={"XPROF_INJECT_FAULT": "linear:raise"})
    try:
        # the status says "waiting" with 3 failures only after the log said when the next is
        def waiting_after_three():
            current = db.exists() and status(db, state)[0]
            return bool(current) and (current.get("consecutive_failures") or 0) >= 3 \
                and current.get("phase") == "waiting"
        wait_for(waiting_after_three, what="three failed cycles")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    waits = [line.split("next cycle in ")[1] for line in log.splitlines() if "next cycle in" in line]
    assert waits[:3] == ["2s", "4s", "8s"], log  # 2**failures slots of the 1 s schedule
    assert "1 failed cycle(s) in a row" in log and "linear torch failed: worker" in log
    # a nightly that fails is not silent: the hook hears of it
    received = (tmp_path / "received.md").read_text()
    assert received.startswith("# xprof nightly: no regressions, **1 of 1 runs failed**")
    assert "RuntimeError: injected failure in linear" in received


def test_an_error_in_the_analysis_fails_the_cycle_not_the_daemon(tmp_path):
    from profiler.daemon.config import load_config
    from profiler.daemon.files import DaemonFiles
    from profiler.daemon.loop import Daemon
    from profiler.store.store import Store
    from views.markdown import render_cycle_summary

    def broken_check(conn):
        raise ZeroDivisionError("a bug in one night's analysis")

    store = Store.open(tmp_path / "x.db")
    config = load_config(None, {"every": "1h", "suite": "tiny", "workloads": ("linear",),
                                "frameworks": ("torch",), "repeats": 1, "steps": 3})
    lines = []
    daemon = Daemon(store, DaemonFiles.of(store.path, tmp_path / "state"), config,
                    check_regressions=broken_check, render_summary=render_cycle_summary,
                    log=lines.append)
    result = daemon.run_cycle()
    assert result.failed and result.error == "ZeroDivisionError: a bug in one night's analysis"
    assert any("cycle 1 failed: ZeroDivisionError" in line and "Traceback" in line for line in lines)
    # the runs themselves finished and are kept
    assert store.connection.execute("SELECT status FROM runs").fetchall() == [("ok",)]
    store.close()


def test_a_regression_runs_the_hook_with_the_summary(tmp_path):
    db, state = tmp_path / "x.db", tmp_path / "state"
    # a steady baseline of the tiny mlp far faster than any real run (written, not profiled:
    # three real runs on a busy machine spread too much to judge anything), then a real
    # run, which the daemon's first cycle confirms: the hook's wiring is what is tested
    from profiler.store import Store
    from synthetic import add_run

    store = Store.open(db)
    device = default_device()  # where the real run below goes
    for i in range(4):
        add_run(store, [{"matmul": 0.001 * (1 + 0.01 * i)}] * 3, step_ms=[0.002 * (1 + 0.01 * i)] * 3,
                started_at=1000.0 + i, device=device)
    store.close()
    # one repeat a run: a run whose repeats disagree (a busy machine) could not confirm it
    run_xprof("run", "--suite", "tiny", "-w", "mlp", "-f", "torch", "--repeats", "1", "--db", db, check=0)
    hook = tmp_path / "notify.sh"
    hook.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/received.md\necho "$XPROF_SUMMARY" > {tmp_path}/env.txt\n')
    hook.chmod(0o755)
    config = tmp_path / "xprof.toml"
    config.write_text(f'[daemon]\nevery = "1h"\nsuite = "tiny"\nworkloads = ["mlp"]\n'
                      f'frameworks = ["torch"]\nrepeats = 1\non_regression = "{hook}"\n')
    daemon = foreground(db, state, "--config", config)
    received = tmp_path / "received.md"
    try:
        wait_for(lambda: daemon.poll() is not None or status(db, state)[0].get("last_cycle"),
                 timeout=300, what="the first cycle")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=60)
    assert received.exists(), log
    summary = received.read_text()
    # which categories come out significant at 3 repeats varies; that one does is the point
    assert summary.startswith("# xprof nightly: **") and "| mlp | torch eager | " in summary, summary
    assert f"| regression | mlp train tiny fp32, torch eager on {device} | 6 |" in summary
    assert (tmp_path / "env.txt").read_text().strip().endswith(".summary.md")
    assert "--on-regression: exit 0" in log


@pytest.mark.parametrize("args, message", [
    (("--cron", "0 2 * *"), "--cron '0 2 * *' is not a cron expression: five fields"),
    (("--cron", "61 * * * *"), "--cron '61 * * * *' is not a cron expression"),
    (("--every", "soon"), "--every 'soon' is not a duration: write a number and a unit"),
    (("--every", "0m"), "--every '0m' must be longer than zero"),
    (("--every", "1h", "--cron", "0 2 * * *"), "give --every or --cron, not both"),
    ((), "the daemon needs a schedule: --every 6h or --cron"),
    (("--every", "1h", "--keep-raw", "7 days"), "--keep-raw '7 days' is not a duration"),
    (("--cron", "0 2 30 2 *"), "--cron '0 2 30 2 *' never fires: no date matches it"),
    (("--every", "1h", "--telemetry-every", "0.01s"), "is faster than 0.2 s"),
    (("--every", "0.1s"), "--every '0.1s' is shorter than 1 s"),
])
def test_bad_schedules_get_one_line(tmp_path, args, message):
    for command in ("run", "start"):
        line = one_line_error(run_xprof("daemon", command, *args, "--db", tmp_path / "x.db",
                                        "--state-dir", tmp_path / "state"))
        assert message in line
    assert not (tmp_path / "x.db").exists()


def test_a_gpu_that_is_not_there_is_refused_when_the_daemon_starts(tmp_path):
    for command in ("run", "start"):
        line = one_line_error(run_xprof("daemon", command, "--every", "1h", "--device", "cuda:99", "-f", "torch",
                                        "--db", tmp_path / "x.db", "--state-dir", tmp_path / "state"))
        assert line.startswith(f"xprof: error: --device cuda:99: no such GPU here (torch sees {torch_gpus()} GPU")
    assert not (tmp_path / "x.db").exists()


def test_bad_files_get_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(run_xprof("daemon", "run", "--every", "1h", "--db", tmp_path / "x.db",
                                    "--state-dir", blocker / "state"))
    assert f"state directory {blocker / 'state'} is not writable" in line
    config = tmp_path / "bad.toml"
    config.write_text("every = \n")
    assert "is not valid TOML" in one_line_error(run_xprof("daemon", "run", "--config", config))
    config.write_text('every = "1h"\nsuit = "tiny"\n')
    assert "unknown key suit" in one_line_error(run_xprof("daemon", "run", "--config", config))
    # a value of the wrong kind is refused at start, not at the first cycle
    for line, message in [('on_regression = ["notify", "x"]', "--on-regression must be a string"),
                          ("summary = 5", "--summary must be a string, not 5"),
                          ('min_effect = "big"', "--min-effect must be a number, not 'big'"),
                          ("warmup = -1", "--warmup must be between 0 and 10000, not -1"),
                          ("workloads = 5", "--workloads must be a list of strings, not 5")]:
        config.write_text(f'every = "1h"\n{line}\n')
        assert message in one_line_error(run_xprof("daemon", "run", "--config", config,
                                                   "--db", tmp_path / "x.db", "--state-dir", tmp_path / "s"))
    assert "cannot read config" in one_line_error(
        run_xprof("daemon", "run", "--config", tmp_path / "absent.toml"))
    # status and stop on a store that is not there, and with a stale pid file
    state = tmp_path / "state"
    assert "no store at" in one_line_error(
        run_xprof("daemon", "status", "--db", tmp_path / "none.db", "--state-dir", state))
    db = tmp_path / "x.db"
    from profiler.daemon.files import DaemonFiles
    from profiler.store.store import Store

    Store.open(db).close()
    files = DaemonFiles.of(db, state)
    files.prepare()
    dead = subprocess.Popen(["true"])
    dead.wait()
    files.pid.write_text(f"{dead.pid}\n")
    stopped = run_xprof("daemon", "stop", "--db", db, "--state-dir", state)
    assert f"removed a stale pid file for pid {dead.pid}" in one_line_error(stopped)
    assert not files.pid.exists()
    assert "no xprof daemon runs on store" in one_line_error(
        run_xprof("daemon", "stop", "--db", db, "--state-dir", state))
