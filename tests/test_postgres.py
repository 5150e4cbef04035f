"""The store on a real PostgreSQL server the tests start themselves: the same commands on
both backends, outputs equal; push; many writers at once; a server restart mid-import."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import XPROF, fixture_path, one_line_error, repeated_trace, run_xprof
from profiler.store import Store
from profiler.store.schema import SCHEMA_VERSION
from synthetic import add_run

pytestmark = pytest.mark.slow
TRACES = [("kineto", "cpu_only.json.gz"), ("kineto", "a100_alexnet_train.json.gz"),
          ("kineto", "mi250_minitoy_train.json.gz"), ("xplane", "mi300x_jax_conv.xplane.pb")]


def _json(*args, db, check=0, env=None):
    done = run_xprof(*args, "--json", "--db", db, env=env)
    assert done.returncode == check, done.stderr
    return json.loads(done.stdout)


def _same(text: str, *stores) -> str:
    """An output with the stores' names (and ids of the server's spool folder) made alike,
    and the padding and wrapping a longer name took."""
    for store in stores:
        text = text.replace(str(store), "STORE")
    text = re.sub(r"server-[0-9a-f]{10}", "SPOOL", text)
    return " ".join(text.split())


def test_the_schema_is_the_same_on_both_backends(pg_server, tmp_path):
    url = pg_server.database()
    server, local = Store.open(url), Store.open(tmp_path / "x.db")
    assert server.schema_version() == local.schema_version() == SCHEMA_VERSION
    on_server = {(t, c) for t, c in server._rows(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name != 'xprof_schema'")}
    tables = [t for t, in local._rows("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    on_file = {(t, c[1]) for t in tables for c in local._rows(f"PRAGMA table_info({t})")}
    assert on_server == on_file and ("events", "layer_id") in on_file and ("artifact_blobs", "data") in on_file


def test_import_diff_export_on_each_backend(store_target, tmp_path):
    paths = [fixture_path(*parts) for parts in TRACES]
    imported = _json("import", *paths, db=store_target)
    assert len(imported["runs"]) == 4 and all(r["events"] > 0 for r in imported["runs"])
    again = run_xprof("import", paths[0], "--db", store_target, check=0).stdout
    assert "already imported as run" in again
    runs = _json("runs", db=store_target)["runs"]
    assert len(runs) == 4 and {r["status"] for r in runs} == {"ok"}
    cpu, a100, mi250 = (next(r["id"] for r in imported["runs"] if name in r["path"])
                        for name in ("cpu_only", "a100", "mi250"))
    assert _json("roofline", mi250, db=store_target)["rows"]  # its trace records shapes
    assert _json("diff", cpu, a100, db=store_target, check=0)["rows"]
    shutil.rmtree(tmp_path / "home" / ".cache", ignore_errors=True)
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache")}
    for fmt, out in (("tensorboard", tmp_path / "tb"), ("perfetto", tmp_path / "t.json"), ("html", tmp_path / "r.html")):
        # the raw trace comes back from the server: this "host" has no copy of it
        run_xprof("export", a100, "--format", fmt, "-o", out, "--db", store_target, env=env, check=0)
        assert out.exists() and (out.is_dir() or out.stat().st_size > 0), fmt
    # a truncated trace: one line, and nothing stored goes
    broken = tmp_path / "broken.pt.trace.json"
    broken.write_bytes(gzip.decompress(paths[0].read_bytes())[:5000])
    assert "broken.pt.trace.json" in one_line_error(run_xprof("import", broken, "--db", store_target))
    assert len(_json("runs", db=store_target)["runs"]) == 4


def test_missing_foreign_and_unreachable_stores_get_one_line(pg_server):
    import psycopg

    url = pg_server.database()
    assert "no xprof store in" in one_line_error(run_xprof("runs", "--db", url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    assert "another program's PostgreSQL database (tables: invoices)" in one_line_error(
        run_xprof("runs", "--db", url))
    dead = url.replace(f"port={pg_server.port}", f"port={pg_server.port + 1}")
    assert "cannot reach store" in one_line_error(run_xprof("runs", "--db", dead))
    assert "--to 'x.db': expected a postgresql:// URL" in one_line_error(run_xprof("push", "--to", "x.db"))


@pytest.fixture(scope="module")
def fleet_stores(tmp_path_factory, pg_server):
    """A SQLite store with imports and synthetic nights of two hosts, and the server it
    was pushed to."""
    db = tmp_path_factory.mktemp("fleet") / "host.db"
    run_xprof("import", *(fixture_path(*parts) for parts in TRACES[:3]), "--db", db, check=0)
    store = Store.open(db)
    for night in range(7):
        for host in ("gpu-a", "gpu-b"):
            slow = 1.5 if host == "gpu-b" and night >= 5 else 1.0  # gpu-b's last two nights regress
            add_run(store, [{"matmul": 2.0 * slow + 0.01 * (night % 3), "elementwise": 0.5}] * 3,
                    host=host, started_at=1_000 + night * 100 + (host == "gpu-b"))
    for host, matmul in (("gpu-a", 2.6), ("gpu-b", 1.0)):  # TensorFlow: slower on gpu-a, faster on gpu-b
        add_run(store, [{"matmul": matmul + 0.01 * r, "elementwise": 0.5} for r in range(3)], framework="tensorflow",
                host=host, started_at=2_000 + (host == "gpu-b"))
    store.close()
    url = pg_server.database()
    pushed = _json("push", "--to", url, db=db)
    assert len(pushed["pushed"]) == 19 and pushed["already"] == 0
    return db, url


def test_push_is_idempotent(fleet_stores):
    db, url = fleet_stores
    again = _json("push", "--to", url, db=db)
    assert again["pushed"] == [] and again["already"] == 19
    assert "pushed 0 runs" in run_xprof("push", "--to", url, "--db", db, check=0).stdout


@pytest.mark.parametrize("command", [
    ("runs",), ("runs", "--host", "gpu-b"), ("regressions",), ("regressions", "--host", "gpu-a"),
    ("history",), ("history", "--host", "gpu-b", "--key", "matmul"), ("report",), ("report", "--host", "gpu-b"),
    ("diff", "--workload", "mlp", "--host", "gpu-a"),
])
def test_outputs_are_equal_on_both_backends(fleet_stores, command):
    db, url = fleet_stores
    outputs = [run_xprof(*command, *flags, "--db", where, env={"COLUMNS": "200"})
               for where in (db, url) for flags in (("--json",), ())]
    for done in outputs:
        assert done.returncode == 0, done.stderr
    assert _same(outputs[0].stdout, db, url) == _same(outputs[2].stdout, db, url)
    assert _same(outputs[1].stdout, db, url) == _same(outputs[3].stdout, db, url)
    if command[:2] == ("regressions", "--host"):
        assert json.loads(outputs[0].stdout)["states"]["regression"] == 0
    elif command == ("report",):  # each host's device beside the other's, torch against TensorFlow on each
        entries = {e["host"]: e for e in json.loads(outputs[0].stdout)["workloads"]}
        assert set(entries) == {"gpu-a", "gpu-b"}
        assert entries["gpu-a"]["faster"] == "torch" and entries["gpu-b"]["faster"] == "tensorflow"
        assert "fp32@cpu of gpu-a" in outputs[1].stdout and "fp32@cpu of gpu-b" in outputs[1].stdout
    elif command[0] == "report":
        assert [e.get("host") for e in json.loads(outputs[0].stdout)["workloads"]] == ["gpu-b"]
    elif command == ("regressions",):
        found = json.loads(outputs[0].stdout)["regressions"]
        assert {r["host"] for r in found} == {"gpu-b"} and "torch eager of gpu-b: matmul" in " ".join(outputs[1].stdout.split())


def test_the_latest_pair_is_one_hosts(fleet_stores):
    db, url = fleet_stores
    # torch of one host against TensorFlow of another would be no comparison at all
    assert "holds runs of 2 hosts (gpu-a, gpu-b) and none of this one: name one with --host" in one_line_error(
        run_xprof("diff", "--workload", "mlp", "--db", url))
    pair = _json("diff", "--workload", "mlp", "--host", "gpu-b", db=url)
    assert pair["a"]["framework"] == "torch" and pair["b"]["framework"] == "tensorflow"
    assert {side["id"] for side in (pair["a"], pair["b"])} <= {r["id"] for r in _json(
        "runs", "--host", "gpu-b", db=url)["runs"]}
    assert "no runs of host 'gpu-z'" in one_line_error(run_xprof("runs", "--host", "gpu-z", "--db", url))


def test_exports_and_watch_are_equal_on_both_backends(fleet_stores, tmp_path):
    db, url = fleet_stores
    runs = _json("runs", db=db)["runs"]
    imported = next(r["id"] for r in runs if r["source"] == "import" and r["device"] != "cpu")
    nights = [r["id"] for r in runs if r["host"] == "gpu-b"][:2]
    for fmt, ids in (("csv", nights), ("md", nights), ("perfetto", [imported]), ("html", nights)):
        made = [tmp_path / f"{side}.{fmt}" for side in ("file", "server")]
        for where, out in zip((db, url), made):
            run_xprof("export", *ids, "--format", fmt, "-o", out, "--db", where, check=0)
        if fmt == "csv":
            for name in ("runs.csv", "steps.csv", "kernels.csv"):
                assert (made[0] / name).read_text() == (made[1] / name).read_text(), name
        else:
            assert _same(made[0].read_text(), db, url) == _same(made[1].read_text(), db, url), fmt
    frames = [run_xprof("watch", "--once", "--db", where, env={"COLUMNS": "160"}, check=0).stdout for where in (db, url)]
    frames = [re.sub(r"\b\d\d:\d\d:\d\d\b", "TIME", frame) for frame in frames]  # when each was taken
    assert _same(frames[0], db, url) == _same(frames[1], db, url) and "gpu-b" in frames[0]


def _variants(tmp_path, count: int) -> list:
    """`count` different Kineto traces (the CPU fixture 1..count times over)."""
    document = json.loads(gzip.decompress(fixture_path("kineto", "cpu_only.json.gz").read_bytes()))
    return [repeated_trace(document, copies, tmp_path / f"v{copies}.pt.trace.json") for copies in range(1, count + 1)]


def _daemon_running(url, state, host) -> bool:
    done = run_xprof("daemon", "status", "--json", "--db", url, "--state-dir", state, env={"XPROF_HOST": host})
    return done.returncode == 0 and json.loads(done.stdout)["running"]


def test_eight_importers_and_two_daemons_on_one_server(pg_server, tmp_path):
    url = pg_server.database()
    traces = _variants(tmp_path, 8)
    run_xprof("import", traces[0], "--db", url, check=0)  # the store made before the crowd comes
    daemon_args = ["--every", "3s", "-w", "linear", "--suite", "tiny", "--repeats", "1", "--steps", "2",
                   "--warmup", "1", "-f", "torch", "--telemetry-every", "0.5s"]
    daemons = {host: subprocess.Popen([str(XPROF), "daemon", "run", *daemon_args, "--db", url,
                                       "--state-dir", str(tmp_path / host)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env={**os.environ, "XPROF_HOST": host})
               for host in ("node-a", "node-b")}
    try:
        # a second daemon of one host is refused by the server's lock
        deadline = time.monotonic() + 60
        while not _daemon_running(url, tmp_path / "node-a", "node-a"):
            assert time.monotonic() < deadline, "node-a's daemon never took its lock"
            time.sleep(0.5)
        twin = run_xprof("daemon", "run", *daemon_args, "--db", url, "--state-dir", str(tmp_path / "twin"),
                         env={"XPROF_HOST": "node-a"}, timeout=60)
        assert "another xprof daemon of this host" in twin.stderr and twin.returncode != 0
        importers = [subprocess.Popen([str(XPROF), "import", trace, str(traces[(i + 1) % 8]), "--json", "--db", url],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i, trace in enumerate(traces)]
        frames = 0
        while any(p.poll() is None for p in importers):
            frame = run_xprof("watch", "--once", "--db", url, timeout=60)  # readers never wait on writers
            assert frame.returncode == 0, frame.stderr
            frames += 1
        results = [p.communicate(timeout=300) for p in importers]
        assert all(p.returncode == 0 for p in importers), [err for _, err in results]
        assert frames >= 1
        deadline = time.monotonic() + 120
        while not set(daemons) <= {r["host"] for r in _json("runs", db=url)["runs"] if r["status"] == "ok"}:
            assert time.monotonic() < deadline, "a daemon made no ok run in 2 minutes"
            time.sleep(1)
    finally:
        for daemon in daemons.values():
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons.values():
            daemon.communicate(timeout=120)
    store = Store.open(url)
    imports = store._rows("SELECT content_sha256, count(*) FROM runs WHERE source = 'import' GROUP BY 1")
    assert len(imports) == 8 and all(n == 1 for _, n in imports)  # every file stored once
    for run in store.runs():  # no lost rows: every run holds the events it counted
        stored = store._rows("SELECT count(*) FROM events e JOIN repeats r ON r.id = e.repeat_id"
                             " WHERE r.run_id = ?", (run["id"],))[0][0]
        assert run["status"] != "running" and (run["status"] != "ok" or stored == run["event_count"]), run
    assert {r["host"] for r in store.runs() if r["source"] == "profile"} == {"node-a", "node-b"}


def test_a_server_restart_mid_import_stores_nothing_and_the_retry_stores_it_once(pg_server, tmp_path):
    import psycopg

    url = pg_server.database()
    run_xprof("runs", "--db", url, check=1)  # no store yet
    document = json.loads(gzip.decompress(fixture_path("kineto", "cpu_only.json.gz").read_bytes()))
    trace = repeated_trace(document, 4000, tmp_path / "long.pt.trace.json")
    Store.open(url).close()
    importer = subprocess.Popen([str(XPROF), "import", str(trace), "--db", url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline and importer.poll() is None:
            # a transaction that has written rows (it has a transaction id): mid-import
            busy = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'xprof'"
                                   " AND backend_xid IS NOT NULL AND datname = current_database()").fetchone()[0]
            if busy:
                break
            time.sleep(0.02)
    assert importer.poll() is None, "the import ended before the server could be restarted"
    pg_server.restart()
    _, err = importer.communicate(timeout=120)
    assert importer.returncode != 0 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("xprof: error: lost the connection to store postgresql://") and "rolled back" in err, err
    store = Store.open(url)
    for table in ("runs", "steps", "repeats", "events", "memory_events", "artifacts", "artifact_blobs", "figures"):
        assert store._rows(f"SELECT count(*) FROM {table}")[0][0] == 0, table
    store.close()
    first = _json("import", trace, db=url)["runs"]
    assert len(first) == 1 and first[0]["events"] > 0
    assert "already imported" in run_xprof("import", trace, "--db", url, check=0).stdout
    assert len(_json("runs", db=url)["runs"]) == 1


def test_a_killed_daemon_drops_the_server_lock_and_its_next_one_marks_the_cut_run(pg_server, tmp_path):
    url, state, host = pg_server.database(), tmp_path / "state", {"XPROF_HOST": "node-k"}
    flags = ["--every", "1h", "--suite", "tiny", "-f", "torch", "--repeats", "1", "--steps", "2", "--db", url,
             "--state-dir", state]
    started = run_xprof("daemon", "start", "-w", "mlp", *flags, env={**host, "XPROF_INJECT_FAULT": "mlp:hang"})
    assert "xprof daemon started" in started.stdout, started.stderr
    pid = int(re.search(r"pid (\d+)", started.stdout).group(1))
    deadline = time.monotonic() + 120
    while not any(r["status"] == "running" for r in _json("runs", db=url)["runs"]):
        assert time.monotonic() < deadline, "no run in progress"
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)  # no goodbye: the server drops the lock with the connection
    while run_xprof("daemon", "status", "--db", url, "--state-dir", state, env=host).returncode != 3:
        assert time.monotonic() < deadline, "the server kept a dead daemon's lock"
        time.sleep(0.5)
    # another host's daemon was never kept out; the same host's next one marks the cut run
    restarted = run_xprof("daemon", "start", "-w", "linear", *flags, env=host)
    try:
        assert "xprof daemon started" in restarted.stdout, restarted.stderr
        while [r["status"] for r in _json("runs", db=url)["runs"] if r["workload"] == "mlp"] == ["running"]:
            assert time.monotonic() < deadline, "the cut run was not marked"
            time.sleep(0.5)
        mlp = [r for r in _json("runs", db=url)["runs"] if r["workload"] == "mlp"]
        assert [(r["status"], r["error"], r["host"]) for r in mlp] == [
            ("interrupted", "interrupted: its xprof process is gone", "node-k")]
    finally:
        run_xprof("daemon", "stop", "--db", url, "--state-dir", state, env=host)
        for leftover in tmp_path.glob("xprof-worker-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def test_a_server_restart_between_statements_is_survived(pg_server):
    from profiler.store.server_lock import LockLost, ServerLock

    url = pg_server.database()
    store = Store.open(url)
    add_run(store, [{"matmul": 1.0}])
    lock = ServerLock(url, "node-r")
    assert lock.acquire() is None
    pg_server.restart()
    # readers (watch's next frame) and the next transaction (a daemon's next cycle) go on
    assert len(store.runs()) == 1
    add_run(store, [{"matmul": 1.0}])
    assert len(store.runs()) == 2
    # the daemon's lock went with its connection: kept again, unless another daemon took it
    lock.keep()
    assert ServerLock(url, "node-r").acquire() not in (None, -1)
    pg_server.restart()
    rival = ServerLock(url, "node-r")
    assert rival.acquire() is None
    with pytest.raises(LockLost, match="another daemon of host node-r"):
        lock.keep()
    rival.release()
    store.close()


def test_roles_hosts_and_duplicate_imports(pg_server, fleet_stores):
    import psycopg

    db, _ = fleet_stores
    url = pg_server.database()
    cpu = fixture_path("kineto", "cpu_only.json.gz")
    # named by `import --host`; a push does not store again a trace the server has
    assert _json("import", cpu, "--host", "gpu-c", db=url)["runs"]
    assert [r["host"] for r in _json("runs", "--host", "gpu-c", db=url)["runs"]] == ["gpu-c"]
    pushed = _json("push", "--to", url, db=db)
    assert len(pushed["pushed"]) == 18 and pushed["already"] == 1
    assert "no runs of host 'zz'" in one_line_error(run_xprof("push", "--to", url, "--host", "zz", "--db", db))
    # a role without grants is told what it lacks, in one line
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN")
    reader = url.replace("postgres@", "reader@")
    assert "permission denied for table xprof_schema (the role needs SELECT" in one_line_error(
        run_xprof("runs", "--db", reader))


def test_the_lock_names_its_pid_however_long_the_host_and_stop_signals_only_a_local_daemon(pg_server, tmp_path):
    from profiler.store.server_lock import ServerLock

    url = pg_server.database()
    Store.open(url).close()
    host = "gke-fleet-a100-pool-7f3c9a2b-node-0123456789abcdef"  # past application_name's 63 bytes with the rest
    lock = ServerLock(url, host)
    assert lock.acquire() is None and ServerLock(url, host).holder() == os.getpid()
    # this test's process holds the lock, and is no `xprof daemon run`: stop refuses to signal it
    assert "is not a process of this machine" in one_line_error(
        run_xprof("daemon", "stop", "--db", url, "--state-dir", tmp_path, env={"XPROF_HOST": host}))
    lock.release()
    assert ServerLock(url, host).holder() is None
