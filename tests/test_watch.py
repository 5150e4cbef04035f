"""xprof watch: frames drawn from snapshots of a real store."""

import json
import os
import sqlite3
import time

import pytest

from conftest import FAKE_NVML, machine_nvml, one_line_error, run_xprof

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("watch") / "xprof.db"
    run_xprof("run", "--suite", "tiny", "-w", "matmul", "--repeats", "2", "--steps", "3",
              "--telemetry-interval", "0.05", "--json", "--db", db, check=0)
    return db


def test_once_shows_both_frameworks_telemetry_and_the_gpus_or_why_none(store):
    out = run_xprof("watch", "--once", "--db", store, env={"COLUMNS": "80", "LINES": "24"},
                    check=0).stdout
    lines = out.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert "torch eager" in out and "tensorflow graph" in out
    assert "matmul tiny" in out  # the latest TF/torch difference of the workload
    nvml = machine_nvml()
    if nvml["nvml"] == "unavailable":
        assert f"NVML unavailable: {nvml['reason']}" in out
    else:  # a line per GPU, sampled during the run
        assert all(f"gpu:{gpu['index']}" in out for gpu in nvml["gpus"]) and "NVML unavailable" not in out
    assert "no run in progress" in out
    assert "states: 2 insufficient data" in out  # one run of each: regressions cannot judge yet


def test_telemetry_line_reads_recent_host_samples(store, tmp_path):
    db = tmp_path / "copy.db"
    sqlite3.connect(store).backup(sqlite3.connect(db))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO samples (ts_ns, source, device, utilization_pct, cpu_pct, rss_bytes)"
                 " VALUES (?, 'host', 'host', 42.0, 87.0, ?)", (time.time_ns(), 3 * 2**30))
    conn.commit()
    out = run_xprof("watch", "--once", "--db", db, env={"COLUMNS": "100"}, check=0).stdout
    assert "host   cpu  42%  worker cpu   87%  rss 3.0 GiB" in out


def test_snapshot_queries_are_memoized_and_read_only(store):
    from analysis.snapshot import SnapshotReader
    from profiler.store import Store

    # a connection that cannot write: taking a snapshot only reads
    reader = SnapshotReader(Store(sqlite3.connect(f"file:{store}?mode=ro", uri=True), store))
    first = reader.take()
    assert [d["workload"] for d in first["differences"]] == ["matmul"]
    assert {r["framework"] for r in first["recent"]} == {"torch", "tensorflow"}
    cached = dict(reader.comparisons)
    reader.take()
    # no new run: each comparison is the one made before, not made again
    assert cached and all(reader.comparisons[pair] is diff for pair, diff in cached.items())


def test_watch_without_a_store_is_one_line(tmp_path):
    assert "no store at" in one_line_error(run_xprof("watch", "--once", "--db", tmp_path / "no.db"))


def test_live_view_in_a_real_terminal_refreshes_while_the_daemon_writes(store, tmp_path):
    import shutil
    import signal
    import subprocess

    from conftest import XPROF

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed on this machine")
    db = tmp_path / "live.db"
    sqlite3.connect(store).backup(sqlite3.connect(db))
    state = tmp_path / "state"
    session = f"xprof-watch-{tmp_path.name}"
    socket = str(tmp_path / "tmux.sock")

    def tmux(*args):
        return subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True)

    def screen():
        return tmux("capture-pane", "-p", "-t", session).stdout

    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24",
         f"env XPROF_STATE_DIR={state} {XPROF} watch --interval 0.5 --db {db}")
    daemon = None
    try:
        deadline = time.time() + 30
        while "daemon: not running" not in screen() and time.time() < deadline:
            time.sleep(0.3)
        assert "no run in progress" in screen() and "daemon: not running" in screen()
        # the daemon's first cycle starts at once; later ones are an hour away
        daemon = subprocess.Popen([str(XPROF), "daemon", "run", "--every", "1h", "--suite", "tiny",
                                   "-w", "linear", "-f", "torch", "--repeats", "2", "--steps", "200",
                                   "--telemetry-every", "0.5s", "--db", str(db)],
                                  env={**os.environ, "XPROF_STATE_DIR": str(state)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen_running = seen_daemon = False
        deadline = time.time() + 90
        while not seen_running and daemon.poll() is None and time.time() < deadline:
            frame = screen()
            seen_running |= "running: linear train tiny fp32 torch eager on " in frame
            seen_daemon |= f"daemon {daemon.pid} (every 1h): profiling" in frame
            time.sleep(0.3)
        assert seen_running and seen_daemon
        deadline = time.time() + 90
        while "last 1 ok" not in screen() and time.time() < deadline:
            time.sleep(0.3)
        frame = screen()
        assert "no run in progress" in frame and "linear train torch eager" in frame
        assert "(every 1h): waiting, next" in frame and "in 60 min; last 1 ok, 0 failed" in frame
        assert len(frame.rstrip("\n").splitlines()) <= 24
        tmux("send-keys", "-t", session, "C-c")
        deadline = time.time() + 10
        while tmux("has-session", "-t", session).returncode == 0 and time.time() < deadline:
            time.sleep(0.2)
        assert tmux("has-session", "-t", session).returncode != 0  # Ctrl-C ended it
    finally:
        tmux("kill-server")
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0


def test_a_store_watch_cannot_read_is_one_line(store, tmp_path):
    db = tmp_path / "damaged.db"
    sqlite3.connect(store).backup(sqlite3.connect(db))
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE samples RENAME TO samples_gone")
    conn.commit()
    conn.close()
    line = one_line_error(run_xprof("watch", "--once", "--db", db))
    assert f"cannot read store {db}: no such table: samples" in line


def test_gpu_samples_of_a_run_reach_the_store_and_the_frame(tmp_path):
    """NVML through the fake library at its seam (imported as pynvml, as with a driver):
    a run samples both GPUs, stores the samples with its id and the driver's facts, and
    `watch --once` draws a line per GPU instead of saying NVML is unavailable."""
    db = tmp_path / "gpu.db"
    with_driver = {"PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_NVML), os.environ.get("PYTHONPATH")]))}
    run = json.loads(run_xprof("run", "--suite", "tiny", "-w", "matmul", "-f", "torch", "--repeats", "1",
                               "--steps", "3", "--telemetry-interval", "0.05", "--json", "--db", db,
                               env=with_driver, check=0).stdout)
    [run_id] = [r["id"] for r in run["runs"]]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT device, utilization_pct, memory_total_bytes, power_w FROM samples"
                        " WHERE source = 'nvml' AND run_id = ?", (run_id,)).fetchall()
    assert {device for device, *_ in rows} == {"gpu:0", "gpu:1"}
    assert ("gpu:0", 37.0, 40960 * 2**20, 123.456) in rows and ("gpu:1", 81.0, 40960 * 2**20, None) in rows
    env = json.loads(conn.execute("SELECT env FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
    assert env["nvml"] == "available" and [g["name"] for g in env["gpus"]] == ["Fake GPU 0", "Fake GPU 1"]
    out = run_xprof("watch", "--once", "--db", db, env={"COLUMNS": "100", "LINES": "30"}, check=0).stdout
    assert "gpu:0  util  37%  mem 1.0 GiB/40.0 GiB  123 W  1410 MHz  64°C" in out
    assert "gpu:1  util  81%  mem 1.0 GiB/40.0 GiB  - W  1410 MHz" in out  # no power sensor: not 0 W
    assert "NVML unavailable" not in out
