"""`xprof run` end to end: real workloads, real profilers, real subprocesses, a real store."""

import json
import os
import sqlite3

import pytest

from conftest import default_device, machine_nvml, one_line_error, run_xprof, tensorflow_gpus, torch_gpus
from profiler.store.schema import SCHEMA_VERSION
from workloads import WORKLOADS

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    db = tmp_path_factory.mktemp("suite") / "xprof.db"
    done = run_xprof("run", "--suite", "tiny", "--repeats", "1", "--steps", "3", "--warmup", "2",
                     "--json", "--db", db)
    return db, done


def test_tiny_suite_profiles_every_workload_in_both_frameworks(tiny_suite):
    db, done = tiny_suite
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(done.stdout)["runs"]
    assert sorted((r["workload"], r["framework"]) for r in runs) == sorted(
        (w, fw) for w in WORKLOADS for fw in ("torch", "tensorflow"))
    for run in runs:
        assert run["status"] == "ok", run
        assert run["error"] is None
        assert run["step_ms_median"] > 0
        assert run["kernels"] > 0 and run["memory_events"] > 0, run
    conn = sqlite3.connect(db)
    for run in runs:
        rid = run["id"]
        timed, profiled = conn.execute(
            "SELECT sum(profiled = 0), sum(profiled = 1) FROM steps WHERE run_id = ?", (rid,)).fetchone()
        assert (timed, profiled) == (3, 3)
        # every profiled step was found in the trace, so its kernels can be placed in it
        assert conn.execute("SELECT count(*) FROM steps WHERE run_id = ? AND profiled AND start_ns IS NULL",
                            (rid,)).fetchone()[0] == 0
        kernels, positive, in_steps = conn.execute(
            "SELECT count(*), sum(dur_ns > 0), count(step) FROM event_rows WHERE run_id = ?", (rid,)).fetchone()
        assert kernels == run["kernels"] and positive > 0 and in_steps > 0
        assert conn.execute("SELECT count(*) FROM memory_rows WHERE run_id = ?",
                            (rid,)).fetchone()[0] == run["memory_events"]
        env = json.loads(conn.execute("SELECT env FROM runs WHERE id = ?", (rid,)).fetchone()[0])
        assert env["framework"] == run["framework"] and env["framework_version"]
        # the device the run used, chosen as --device's default is, and the precision
        stored = conn.execute("SELECT device, dtype FROM runs WHERE id = ?", (rid,)).fetchone()
        assert stored == (default_device(), "fp32") == (run["device"], run["dtype"]) and env["device"] == stored[0]
        assert env["cpu_model"] and env["logical_cores"] >= 1 and env["nvml"] == machine_nvml()["nvml"]
        [(path, size)] = conn.execute("SELECT path, bytes FROM artifacts WHERE run_id = ? AND kind = 'trace'",
                                      (rid,)).fetchall()
        assert path.endswith(".gz") and size > 0
    # the framework's own op names, so the two sides can be told apart
    torch_ops = {r[0] for r in conn.execute(
        "SELECT k.op FROM event_rows k JOIN runs r ON r.id = k.run_id WHERE r.framework = 'torch'")}
    tf_ops = {r[0] for r in conn.execute(
        "SELECT k.op FROM event_rows k JOIN runs r ON r.id = k.run_id WHERE r.framework = 'tensorflow'")}
    assert "aten::addmm" in torch_ops and "aten::convolution" in torch_ops
    # oneDNN builds name them _MklMatMul / _MklNativeFusedMatMul
    assert any(op.endswith("MatMul") for op in tf_ops), tf_ops
    assert any("Conv2D" in op for op in tf_ops), tf_ops
    # host telemetry was sampled while the workers ran
    assert conn.execute("SELECT count(*) FROM samples WHERE source = 'host' AND rss_bytes > 0").fetchone()[0] > 0


def test_runs_lists_newest_first(tiny_suite):
    db, _ = tiny_suite
    runs = json.loads(run_xprof("runs", "--json", "--db", db, check=0).stdout)["runs"]
    assert len(runs) == 2 * len(WORKLOADS)
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    table = run_xprof("runs", "--db", db, check=0).stdout
    assert "transformer" in table and " tf " in table and "graph" in table and "eager" in table


@pytest.mark.parametrize(
    "fault, expected",
    [("raise", "RuntimeError: injected failure in linear"),
     ("exit", "worker exited with status 3"),
     ("segfault", "worker killed by SIGSEGV")],
)
def test_a_crashing_workload_fails_alone(store_target, fault, expected):
    db = store_target  # a SQLite file, then a PostgreSQL database: the same test on both
    done = run_xprof("run", "--suite", "tiny", "-w", "linear", "-w", "matmul", "-f", "torch",
                     "--repeats", "2", "--steps", "2", "--json", "--db", db,
                     env={"XPROF_INJECT_FAULT": f"linear:{fault}"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "xprof: error: 1 of 2 runs failed (errors above)"
    runs = {r["workload"]: r for r in json.loads(done.stdout)["runs"]}
    assert runs["linear"]["status"] == "failed" and expected in runs["linear"]["error"]
    assert runs["matmul"]["status"] == "ok" and runs["matmul"]["kernels"] > 0
    from profiler.store import Store

    stored = {r["workload"]: r["status"] for r in Store.open(db, create=False).runs()}
    assert stored == {"linear": "failed", "matmul": "ok"}


def test_python_profile_is_kept_with_its_summary(tmp_path):
    db = tmp_path / "x.db"
    run_xprof("run", "--suite", "tiny", "-w", "mlp", "-f", "torch", "--repeats", "1", "--steps", "3",
              "--python-profile", "--json", "--db", db, check=0)
    [(path, summary)] = sqlite3.connect(db).execute(
        "SELECT path, summary FROM artifacts WHERE kind = 'python_profile'").fetchall()
    summary = json.loads(summary)
    assert path.endswith(".html") and "pyinstrument" in open(path).read().lower()
    assert summary["ms_per_step_under_pyinstrument"] > 0 and 0 <= summary["python_share"] <= 1
    assert summary["top_self"] and summary["top_self"][0]["share"] > 0



def test_bad_choices_and_paths_get_one_line(tmp_path):
    assert "'mlp'" in one_line_error(run_xprof("run", "-w", "resnet"))
    assert "'torch', 'tensorflow'" in one_line_error(run_xprof("run", "-f", "jax"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "cannot create store directory" in one_line_error(
        run_xprof("run", "--suite", "tiny", "-w", "linear", "--db", blocker / "x.db"))
    assert "is a directory" in one_line_error(run_xprof("runs", "--db", tmp_path))
    assert "no store at" in one_line_error(run_xprof("runs", "--db", tmp_path / "missing.db"))
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"this is not sqlite" * 100)
    assert "is not an xprof store" in one_line_error(run_xprof("runs", "--db", foreign))
    other = tmp_path / "bookmarks.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.commit()
    conn.close()
    assert "another program's SQLite database (tables: bookmarks)" in one_line_error(
        run_xprof("runs", "--db", other))
    check = sqlite3.connect(other)  # left exactly as it was
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in check.execute("SELECT name FROM sqlite_master")] == ["bookmarks"]
    assert "XPROF_BUSY_TIMEOUT_MS='abc'" in one_line_error(
        run_xprof("runs", "--db", other, env={"XPROF_BUSY_TIMEOUT_MS": "abc"}))


def test_locked_and_newer_stores_are_refused_and_left_intact(tiny_suite, tmp_path):
    db = tmp_path / "copy.db"
    source = sqlite3.connect(tiny_suite[0])
    source.backup(sqlite3.connect(db))
    before = sqlite3.connect(db).execute("SELECT count(*) FROM event_rows").fetchone()[0]
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    line = one_line_error(run_xprof("run", "--suite", "tiny", "-w", "linear", "--db", db,
                                     env={"XPROF_BUSY_TIMEOUT_MS": "300"}))
    assert "is locked by another process" in line
    holder.execute("ROLLBACK")
    holder.execute("PRAGMA user_version = 99")
    line = one_line_error(run_xprof("runs", "--db", db))
    assert f"schema version 99, newer than this xprof understands ({SCHEMA_VERSION})" in line
    holder.execute("PRAGMA user_version = 2")
    holder.close()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM event_rows").fetchone()[0] == before


def test_doctor_states_the_driver_or_why_nvml_is_absent(tmp_path):
    facts = json.loads(run_xprof("doctor", "--json", "--db", tmp_path / "x.db", check=0).stdout)
    assert facts["nvml"] == machine_nvml()  # a driver's facts, or the reason there is none
    if facts["nvml"]["nvml"] == "unavailable":
        assert facts["nvml"]["reason"].startswith("nvmlInit failed: ")
    assert facts["torch"]["framework_version"].startswith("2.13")  # the version setup.cfg pins
    assert len(facts["tensorflow"]["gpus"]) == tensorflow_gpus() and len(facts["torch"]["gpus"]) == torch_gpus()
    assert facts["store"]["state"].startswith("absent")


def _statuses(db) -> dict:
    """workload -> status of a store another process writes; none before its tables are."""
    try:
        return dict(sqlite3.connect(db).execute("SELECT workload, status FROM runs")) if db.exists() else {}
    except sqlite3.OperationalError:
        return {}


def test_sigterm_marks_the_cut_run_interrupted(tmp_path):
    import signal
    import subprocess
    import time

    from conftest import XPROF

    import psutil

    db = tmp_path / "x.db"
    # linear finishes quickly; mlp is slowed down so the signal lands inside its steps
    child = subprocess.Popen([str(XPROF), "run", "--suite", "tiny", "-w", "linear", "-w", "mlp",
                              "-w", "cnn", "-f", "torch", "--repeats", "1", "--steps", "50",
                              "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "XPROF_INJECT_SLOWDOWN": "mlp:300"})
    workers = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        workers |= {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
        if _statuses(db).get("linear") == "ok":
            break
    time.sleep(3)  # inside mlp's steps
    workers |= {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("xprof: error: interrupted")
    conn = sqlite3.connect(db)
    statuses = dict(conn.execute("SELECT workload, status FROM runs"))
    # the run that had finished stays ok, the cut one is marked, the one not begun was
    # never stored
    assert statuses == {"linear": "ok", "mlp": "interrupted"}
    errors = dict(conn.execute("SELECT workload, error FROM runs"))
    assert errors["mlp"] == "interrupted"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # none of this run's workers keeps running
    assert workers and not [pid for pid in workers if psutil.pid_exists(pid)
                            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:  # gone already
        return []


def test_runs_of_a_killed_xprof_are_marked_interrupted_by_the_next_run(tmp_path):
    import signal
    import subprocess
    import time

    import psutil

    from conftest import XPROF

    db = tmp_path / "x.db"
    child = subprocess.Popen([str(XPROF), "run", "--suite", "tiny", "-w", "mlp", "-f", "torch",
                              "--repeats", "1", "--steps", "50", "--db", str(db)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "XPROF_INJECT_SLOWDOWN": "mlp:300"})
    workers = set()
    deadline = time.time() + 120
    while time.time() < deadline and not workers:
        time.sleep(0.3)
        # a worker, not the frameworks' GPU probes xprof runs first where a driver is
        workers = {p.pid for p in psutil.Process(child.pid).children(recursive=True)
                   if "profiler.collect.worker" in " ".join(_cmdline(p))}
    assert workers, "no worker started within 120 s"
    child.send_signal(signal.SIGKILL)  # no chance to clean up
    child.wait()

    def alive():
        return [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

    # the worker dies with its parent instead of profiling on for nobody: at once once it
    # has asked the kernel to (PR_SET_PDEATHSIG), or as it reaches that call if the kill
    # came while it was still importing (seconds on a busy machine)
    deadline = time.time() + 60
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    assert not alive()
    assert dict(sqlite3.connect(db).execute("SELECT workload, status FROM runs")) == {"mlp": "running"}
    run_xprof("run", "--suite", "tiny", "-w", "linear", "-f", "torch", "--repeats", "1",
              "--steps", "2", "--db", db, check=0)
    rows = dict(sqlite3.connect(db).execute("SELECT workload, status FROM runs"))
    assert rows == {"mlp": "interrupted", "linear": "ok"}


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_each_collector_offers_the_collector_interface(framework):
    from conftest import run_python

    out = run_python(f"""
        from profiler.collect.collectors import Collector, collector_for
        collector = collector_for({framework!r})
        env = collector.environment()
        print(isinstance(collector, Collector), collector.framework, env["framework"], env["device"])
    """)
    is_collector, name, env_framework, device = out.split()
    assert (is_collector, name, env_framework) == ("True", framework, framework)
    assert device == "cpu" or device.startswith(("cuda:", "/device:GPU:"))  # whatever this machine has
