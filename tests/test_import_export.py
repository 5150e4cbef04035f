"""xprof import and export: real fixtures, built protos, real runs, bad input."""

import gzip
import json
import shutil
import sqlite3
import subprocess

import pytest

from conftest import fixture_path, one_line_error, repeated_trace, run_xprof
from test_xplane import nvidia_space


def _sql(db):
    """A connection to either backend's store that takes the store's SQL (`?` marks)."""
    from profiler.store import Store

    return Store.open(db, create=False).connection


def _artifact_dirs(db) -> list:
    """The run folders of a SQLite store's raw traces (a server store keeps them in a table)."""
    from profiler.store import Store

    store = Store.open(db, create=False)
    if store.url:
        return [run_id for run_id, in store._rows("SELECT DISTINCT run_id FROM artifacts")]
    directory = store.artifacts_dir()
    return [d.name for d in directory.iterdir()] if directory.exists() else []


def _import(db, *paths, check=0):
    return json.loads(run_xprof("import", *paths, "--json", "--db", db, check=check).stdout)["runs"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, kernels, kernel_ms, memcpy, memset, device",
    [
        ("kineto/a100_alexnet_train.json.gz", 79, 10.692, 16, 3, "NVIDIA A100-PG509-200"),
        ("kineto/mi250_minitoy_train.json.gz", 14, 0.110881, 2, 0, "AMD Radeon Graphics"),
        ("kineto/cpu_only.json.gz", 0, 0.0, 0, 0, "cpu"),
        # the counters trace carries its 77 kernels as cuda_profiler_range, not kernel
        ("kineto/a100_cupti_counters.json.gz", 0, 0.0, 0, 0, "NVIDIA A100-PG509-200"),
        ("xplane/mi300x_jax_conv.xplane.pb", 235, 28.137077, 0, 0,
         "AMD /device:GPU:0 (304 cores, 192 GiB)"),
        ("xplane/gpu_jax_fused_attention.xplane.pb", 150, 12.133585, 0, 0,
         "AMD /device:GPU:0 (256 cores, 288 GiB)"),
    ],
)
def test_fixtures_import_with_their_counts(store_target, name, kernels, kernel_ms, memcpy, memset, device):
    db = store_target  # a SQLite file, then a PostgreSQL database: the same test on both
    [run] = _import(db, fixture_path(*name.split("/")))
    assert (run["kernels"], run["memcpy"], run["memset"], run["device"]) == (kernels, memcpy, memset, device)
    assert run["kernel_time_ms"] == pytest.approx(kernel_ms)
    conn = _sql(db)
    stored = conn.execute("SELECT count(*), COALESCE(SUM(dur_ns), 0) FROM event_rows WHERE kind = 'kernel'").fetchone()
    assert stored[0] == kernels and stored[1] / 1e6 == pytest.approx(kernel_ms)
    assert conn.execute("SELECT source, status FROM runs").fetchall() == [("import", "ok")]


@pytest.mark.slow
def test_importing_twice_does_not_duplicate(store_target):
    db = store_target
    path = fixture_path("kineto", "mi250_minitoy_train.json.gz")
    first = _import(db, path)[0]
    again = _import(db, path, path)
    assert [r["id"] for r in again] == [first["id"]] * 2 and all(r["already_imported"] for r in again)
    figures = ("events", "kernels", "kernel_time_ms", "memcpy", "memset", "device")
    assert [{k: r[k] for k in figures} for r in again] == [{k: first[k] for k in figures}] * 2
    assert _sql(db).execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert _artifact_dirs(db) == [first["id"]]


def _repeated_a100(tmp_path, copies):
    """The A100 fixture's events `copies` times over: a trace of 1.5 MB for 5 copies,
    several pieces of the reader's 256 KiB."""
    document = json.loads(gzip.decompress(fixture_path("kineto", "a100_alexnet_train.json.gz").read_bytes()))
    return repeated_trace(document, copies, tmp_path / f"a100_x{copies}.pt.trace.json")


@pytest.mark.slow
def test_a_trace_of_many_pieces_imports_whole(tmp_path):
    path = _repeated_a100(tmp_path, 5)
    assert path.stat().st_size > 1.4 * 2**20
    [run] = _import(tmp_path / "x.db", path)
    assert (run["events"], run["kernels"], run["memcpy"], run["memset"]) == (5 * 1408, 5 * 79, 5 * 16, 5 * 3)
    assert run["kernel_time_ms"] == pytest.approx(5 * 10.692)
    conn = sqlite3.connect(tmp_path / "x.db")
    # every device event found the op that launched it, in every copy
    assert conn.execute("SELECT count(*) FROM event_rows WHERE kind IN ('kernel', 'memcpy', 'memset')"
                        " AND op IS NULL").fetchone()[0] == 0
    artifact = conn.execute("SELECT path FROM artifacts").fetchone()[0]
    assert gzip.decompress(open(artifact, "rb").read()) == path.read_bytes()


@pytest.mark.slow
def test_a_trace_cut_off_after_several_pieces_leaves_the_store_as_it_was(store_target, tmp_path):
    db = store_target
    _import(db, fixture_path("kineto", "cpu_only.json.gz"))
    before = _sql(db).execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM event_rows),"
                                         " (SELECT count(*) FROM artifacts)").fetchone()
    whole = _repeated_a100(tmp_path, 5)
    cut = tmp_path / "cut.pt.trace.json"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.9)])
    line = one_line_error(run_xprof("import", cut, "--db", db))
    assert str(cut) in line and "truncated: the input ends inside traceEvents" in line
    conn = _sql(db)
    assert conn.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM event_rows),"
                        " (SELECT count(*) FROM artifacts)").fetchone() == before
    assert len(_artifact_dirs(db)) == 1


@pytest.mark.slow
def test_nvidia_shaped_xspace_imports_with_kernels_and_copies(tmp_path):
    path = tmp_path / "gpu-box.xplane.pb"
    path.write_bytes(nvidia_space().SerializeToString())
    [run] = _import(tmp_path / "x.db", path)
    assert (run["kernels"], run["memcpy"], run["memset"]) == (3, 1, 1)
    assert run["kernel_time_ms"] == pytest.approx((5_500 + 1_250 + 0) / 1e6)
    assert run["device"] == "Nvidia /device:GPU:0 (108 cores, 40 GiB)"


@pytest.mark.slow
def test_imported_runs_sit_beside_profiled_ones(store_target):
    db = store_target
    run_xprof("import", fixture_path("kineto", "a100_alexnet_train.json.gz"), "--workload", "cnn",
              "--label", "a100", "--db", db, check=0)
    row = _sql(db).execute("SELECT workload, label, framework, device FROM runs").fetchone()
    assert tuple(row) == ("cnn", "a100", "torch", "NVIDIA A100-PG509-200")
    # categories were applied on the way in
    cats = dict(_sql(db).execute(
        "SELECT category, count(*) FROM event_rows WHERE kind = 'kernel' GROUP BY category"))
    assert cats.get("convolution", 0) > 0 and cats.get("matmul", 0) > 0


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    db = tmp_path_factory.mktemp("profiled") / "x.db"
    runs = json.loads(run_xprof("run", "--suite", "tiny", "-w", "conv2d", "--repeats", "2", "--steps", "4",
                                "--json", "--db", db, check=0).stdout)["runs"]
    return db, {r["framework"]: r["id"] for r in runs}


def _repeat0(db, run_id):
    return sqlite3.connect(db).execute(
        "SELECT count(*), SUM(dur_ns) FROM event_rows WHERE run_id = ? AND repeat = 0", (run_id,)).fetchone()


@pytest.mark.slow
def test_tensorboard_export_round_trips(profiled, tmp_path):
    db, ids = profiled
    logdir = tmp_path / "logs"
    run_xprof("export", ids["torch"], ids["tensorflow"], "--format", "tensorboard", "-o", logdir,
              "--db", db, check=0)
    files = sorted(p.name for p in logdir.glob("plugins/profile/*/*"))
    assert any(f.endswith(".pt.trace.json.gz") for f in files) and any(f.endswith(".xplane.pb") for f in files)
    fresh = tmp_path / "fresh.db"
    imported = _import(fresh, logdir)
    assert len(imported) == 2
    for run in imported:
        framework = "tensorflow" if run["path"].endswith(".xplane.pb") else "torch"
        assert _repeat0(fresh, run["id"]) == _repeat0(db, ids[framework])


@pytest.mark.slow
def test_perfetto_export_is_one_aligned_trace(profiled, tmp_path):
    db, ids = profiled
    out = tmp_path / "trace.json"
    run_xprof("export", ids["torch"], ids["tensorflow"], "--format", "perfetto", "-o", out, "--db", db, check=0)
    events = json.loads(out.read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert names == {f"torch eager conv2d ({ids['torch'][:8]})",
                     f"tensorflow graph conv2d ({ids['tensorflow'][:8]})"}
    for pid in (1, 2):
        steps = [e for e in events if e["pid"] == pid and e.get("cat") == "step"]
        assert len(steps) == 4 and min(e["ts"] for e in steps) == 0  # aligned at the first step
        assert any(e.get("cat") == "cpu_op" and e["pid"] == pid for e in events)
        assert any(e["ph"] == "C" and e["pid"] == pid for e in events)  # memory counter track
    sliced = tmp_path / "sliced.json"
    run_xprof("export", ids["torch"], "--format", "perfetto", "-o", sliced, "--steps", "2:3", "--db", db, check=0)
    sliced_events = json.loads(sliced.read_text())["traceEvents"]
    assert [e["name"] for e in sliced_events if e.get("cat") == "step"] == ["step 2", "step 3"]
    assert len(sliced_events) < len([e for e in events if e["pid"] == 1])


@pytest.mark.slow
def test_html_md_and_csv_exports(profiled, tmp_path):
    db, ids = profiled
    html = tmp_path / "review.html"
    run_xprof("export", ids["torch"], ids["tensorflow"], "--format", "html", "-o", html, "--db", db, check=0)
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    # three charts, and the history of each of the two runs' configurations
    # three drawings, two histories and the roofline; the layer table beside them
    assert page.count("<svg") == 3 + 2 + 1 and "convolution" in page and "Ranked differences" in page
    assert "<h2>Roofline" in page and "<h2>Layer by layer" in page
    assert page.count("<h3>conv2d train tiny fp32, ") == 2 and "History: step time run after run" in page
    md = tmp_path / "summary.md"
    run_xprof("export", ids["torch"], ids["tensorflow"], "--format", "md", "-o", md, "--db", db, check=0)
    text = md.read_text()
    assert "| convolution |" in text and "B/A step time" in text and ids["torch"] in text
    assert "## Layer by layer" in text and "| conv |" in text
    csvdir = tmp_path / "csv"
    run_xprof("export", ids["torch"], "--format", "csv", "-o", csvdir, "--steps", "1", "--db", db, check=0)
    kernels = (csvdir / "kernels.csv").read_text().splitlines()
    assert kernels[0].startswith("run_id,repeat,step,kind,category")
    assert len(kernels) > 1 and all(line.split(",")[2] == "1" for line in kernels[1:])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium package (apt-get install chromium)")
def test_html_renders_offline_in_headless_chromium(profiled, tmp_path):
    """The page as a browser builds it, with the network off: three drawings and the
    ranked table; and a screenshot of it, which is not blank."""
    db, ids = profiled
    html = tmp_path / "review.html"
    run_xprof("export", ids["torch"], ids["tensorflow"], "--format", "html", "-o", html, "--db", db, check=0)
    chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*chromium, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert dom.count("<svg") == 3 + 2 + 1 and "Ranked differences" in dom and "convolution" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*chromium, f"--screenshot={shot}", "--window-size=1280,1600", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


BAD_TRACES = {
    "truncated.json.gz": lambda good: gzip.compress(good)[:200],
    "truncated.json": lambda good: good[:len(good) // 2],
    "notjson.json": lambda good: b"this is not json at all",
    "no_events.json": lambda good: b'{"schemaVersion": 1}',
    "wrong_types.json": lambda good: b'{"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "ts": "soon", "dur": 1}]}',
    "random.xplane.pb": lambda good: bytes(range(256)) * 8,
    "empty.json": lambda good: b"",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_TRACES))
def test_bad_input_leaves_the_store_as_it_was(store_target, tmp_path, name):
    db = store_target
    good = fixture_path("kineto", "cpu_only.json.gz")
    _import(db, good)
    before = _sql(db).execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM event_rows)").fetchone()
    bad = tmp_path / name
    bad.write_bytes(BAD_TRACES[name](gzip.decompress(good.read_bytes())))
    other = fixture_path("kineto", "mi250_minitoy_train.json.gz")
    line = one_line_error(run_xprof("import", other, bad, "--db", db))  # good file first: all or nothing
    assert str(bad) in line
    conn = _sql(db)
    assert conn.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM event_rows)").fetchone() == before
    if isinstance(conn, sqlite3.Connection):
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(_artifact_dirs(db)) == 1  # the good import's only


@pytest.mark.slow
def test_paths_with_nothing_to_import(tmp_path):
    db = tmp_path / "x.db"
    metadata = tmp_path / "metadata_only.json"
    metadata.write_text(json.dumps({"traceEvents": [{"ph": "M", "name": "process_name", "pid": 1,
                                                     "args": {"name": "x"}}]}))
    assert "metadata_only.json: holds no ops, kernels, steps or memory events" in one_line_error(
        run_xprof("import", metadata, "--db", db))
    assert "no such file or directory" in one_line_error(run_xprof("import", tmp_path / "missing.json", "--db", db))
    (tmp_path / "empty_dir").mkdir()
    assert "a directory with no traces" in one_line_error(run_xprof("import", tmp_path / "empty_dir", "--db", db))
    (tmp_path / "notes.txt").write_text("hi")
    assert "not a trace xprof reads" in one_line_error(run_xprof("import", tmp_path / "notes.txt", "--db", db))


@pytest.mark.slow
def test_export_errors(profiled, tmp_path):
    db, ids = profiled
    assert "--steps 'x': expected N, FIRST:LAST" in one_line_error(
        run_xprof("export", ids["torch"], "--format", "perfetto", "-o", tmp_path / "t.json", "--steps", "x", "--db", db))
    assert "no profiled steps in repeat 0 within steps 50:60" in one_line_error(
        run_xprof("export", ids["torch"], "--format", "perfetto", "-o", tmp_path / "t.json", "--steps", "50:60", "--db", db))
    assert list(tmp_path.glob("t.json*")) == []  # no half-written trace left behind
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write" in one_line_error(
        run_xprof("export", ids["torch"], "--format", "md", "-o", blocker / "x.md", "--db", db))
    assert "no run with id 'ffffff'" in one_line_error(
        run_xprof("export", "ffffff", "--format", "md", "-o", tmp_path / "x.md", "--db", db))


def _stored(db):
    conn = sqlite3.connect(db)
    return (
        conn.execute("SELECT step, name, op, category, kind, device, stream, start_ns, dur_ns, self_ns,"
                     " correlation FROM event_rows ORDER BY repeat, seq").fetchall(),
        conn.execute("SELECT ts_ns, bytes, total_allocated, total_reserved, device FROM memory_rows"
                     " ORDER BY repeat, seq").fetchall(),
        conn.execute("SELECT step, wall_ns, start_ns FROM steps ORDER BY rowid").fetchall(),
        conn.execute("SELECT framework, device, fingerprint, env, content_sha256, event_count,"
                     " memory_event_count, step_ms_median FROM runs").fetchall(),
    )


def _import_in_process(db, path, segment_events):
    from analysis.taxonomy import classify_event
    from profiler.interchange.ingest import import_traces
    from profiler.store.store import Store

    store = Store.open(db)
    try:
        return import_traces(store, [path], classify=classify_event, segment_events=segment_events)
    finally:
        store.close()


def test_a_cpu_trace_stored_in_segments_is_stored_as_whole(long_cpu_trace, tmp_path):
    [whole] = _import_in_process(tmp_path / "whole.db", long_cpu_trace, segment_events=10**9)
    [cut] = _import_in_process(tmp_path / "cut.db", long_cpu_trace, segment_events=8)
    assert cut.as_json() | {"id": None} == whole.as_json() | {"id": None}
    assert _stored(tmp_path / "cut.db") == _stored(tmp_path / "whole.db")
    assert len(_stored(tmp_path / "cut.db")[2]) == 300


def test_a_trace_that_breaks_time_order_after_a_cut_is_read_again_whole(long_cpu_trace, tmp_path):
    document = json.loads(long_cpu_trace.read_text())
    first_op = next(e for e in document["traceEvents"] if e.get("cat") == "cpu_op")
    document["traceEvents"].append(dict(first_op, name="aten::late", ts=first_op["ts"] + 0.5, dur=0.1))
    late = tmp_path / "late.pt.trace.json"
    late.write_text(json.dumps(document))
    [whole] = _import_in_process(tmp_path / "whole.db", late, segment_events=10**9)
    [cut] = _import_in_process(tmp_path / "cut.db", late, segment_events=8)
    assert cut.as_json() | {"id": None} == whole.as_json() | {"id": None}
    assert _stored(tmp_path / "cut.db") == _stored(tmp_path / "whole.db")
    assert sqlite3.connect(tmp_path / "cut.db").execute(
        "SELECT count(*) FROM runs").fetchone() == (1,)  # the segments stored first were dropped


def _processes_naming(text: str) -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline", "status"])
            if text in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_a_store_that_cannot_be_used_stops_the_early_reader(tmp_path):
    """The first file's reader starts before the store opens: a store that turns out
    to be foreign or locked is one line, and no reader is left behind."""
    trace = fixture_path("kineto", "cpu_only.json.gz")
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database, just text\n" * 100)
    line = one_line_error(run_xprof("import", trace, "--db", foreign))
    assert "is not an xprof store" in line and foreign.read_text().startswith("not a database")
    assert _processes_naming(str(foreign)) == []

    db = tmp_path / "busy.db"
    _import(db, fixture_path("kineto", "mi250_minitoy_train.json.gz"))
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store
    try:
        line = one_line_error(run_xprof("import", trace, "--db", db, env={"XPROF_BUSY_TIMEOUT_MS": "200"}))
    finally:
        holder.rollback()
    assert "locked" in line
    assert _processes_naming(str(db)) == []
    assert sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone() == (1,)


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "mi250_minitoy_train.json.gz"])
def test_a_gpu_trace_held_on_disk_is_stored_as_read_whole(name, tmp_path, monkeypatch):
    """Past SPILL_BYTES held, a GPU trace's events wait on disk and are stored in
    segments at the end (profiler/traces/kineto_spill.py): the same rows, in time order."""
    from profiler.traces import kineto_spill

    path = fixture_path("kineto", name)
    [whole] = _import_in_process(tmp_path / "whole.db", path, segment_events=10**9)
    monkeypatch.setattr(kineto_spill, "SPILL_BYTES", 2000)
    [spilled] = _import_in_process(tmp_path / "spilled.db", path, segment_events=16)
    assert spilled.as_json() | {"id": None} == whole.as_json() | {"id": None}
    assert [sorted(rows, key=repr) for rows in _stored(tmp_path / "spilled.db")] == [
        sorted(rows, key=repr) for rows in _stored(tmp_path / "whole.db")]


def test_step_ranges():
    from profiler.interchange.export import ExportError, describe_steps, parse_step_range

    assert parse_step_range("3", "csv") == (3, 3) and parse_step_range("2:5", "perfetto") == (2, 5)
    assert parse_step_range("2:", "csv")[0] == 2 and parse_step_range("2:", "csv")[1] > 10**18
    assert parse_step_range(":5", "csv")[1] == 5 and parse_step_range(":5", "csv")[0] < -10**18
    assert [describe_steps(parse_step_range(t, "csv")) for t in ("2:", ":5", "2:5")] == ["2:", ":5", "2:5"]
    assert parse_step_range(None, "html") is None
    with pytest.raises(ExportError, match="--steps slices perfetto and csv exports; md takes whole runs"):
        parse_step_range("2", "md")
    with pytest.raises(ExportError, match="FIRST is after LAST"):
        parse_step_range("5:2", "csv")


@pytest.mark.slow
def test_steps_are_refused_where_they_cannot_slice(profiled, tmp_path):
    db, ids = profiled
    assert "--steps slices perfetto and csv exports; html takes whole runs" in one_line_error(
        run_xprof("export", ids["torch"], "--format", "html", "-o", tmp_path / "r.html", "--steps", "2", "--db", db))
    run_xprof("export", ids["torch"], "--format", "csv", "-o", tmp_path / "csv", "--steps", "2:", "--db", db)
    rows = (tmp_path / "csv" / "steps.csv").read_text().splitlines()[1:]
    assert rows and all(row.split(",")[3] == "1" and int(row.split(",")[2]) >= 2 for row in rows)  # profiled


@pytest.mark.slow
def test_imports_of_one_workload_meet_in_diff(tmp_path):
    """Any workload name given to import is one diff --workload takes, and the lines
    name what an import lacks by leaving it out, never as 'None'."""
    db = tmp_path / "x.db"
    run_xprof("import", fixture_path("kineto", "mi250_minitoy_train.json.gz"), "--workload", "minitoy",
              "--mode", "train", "--dtype", "bf16", "--db", db, check=0)
    run_xprof("import", fixture_path("xplane", "mi300x_jax_conv.xplane.pb"), "--workload", "minitoy",
              "--mode", "train", "--dtype", "bf16", "--db", db, check=0)
    runs = {r["framework"]: r for r in json.loads(run_xprof("runs", "--json", "--db", db, check=0).stdout)["runs"]}
    assert {(r["workload"], r["mode"], r["size"], r["dtype"]) for r in runs.values()} == {
        ("minitoy", "train", None, "bf16")}
    assert sqlite3.connect(db).execute("SELECT DISTINCT host FROM runs").fetchall() == [(None,)]
    out = " ".join(run_xprof("diff", "--workload", "minitoy", "--db", db, check=0).stdout.split())
    # imports name their devices as their traces do: they are paired whatever those are
    assert out.startswith(f"minitoy train bf16 on AMD Radeon Graphics: A = torch ({runs['torch']['id'][:8]}, "
                          f"1 repeats), B = tensorflow ({runs['tensorflow']['id'][:8]}, 1 repeats)")
    assert "None" not in out
    review = tmp_path / "r.html"
    run_xprof("export", runs["torch"]["id"], runs["tensorflow"]["id"], "--format", "html", "-o", review,
              "--db", db, check=0)
    assert "<title>xprof review: minitoy train bf16</title>" in review.read_text()
    assert "None" not in review.read_text() and "nan" not in review.read_text()
    assert "no ok run of 'other' in torch (run `xprof import TRACE --workload other`)" in one_line_error(
        run_xprof("diff", "--workload", "other", "--db", db))
