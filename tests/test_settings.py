"""Run settings, the daemon's config and the flags made from them: one declaration gives
defaults, allowed values, checks and help; the CLI in process on a synthetic store."""

import json

import pytest

import cli
from profiler.collect.settings import LIMITS, RunSettings
from profiler.daemon.config import DaemonConfig, config_keys, load_config
from profiler.daemon.control import as_arguments
from profiler.daemon.files import DaemonFiles
from profiler.errors import UserError
from profiler.store import Store
from synthetic import add_run


def test_requests_cover_every_workload_and_framework_unless_told():
    everything = RunSettings(suite="tiny").requests()
    assert len(everything) == 7 * 2 and {r.size for r in everything} == {"tiny"}
    assert [(r.workload, r.framework, r.execution) for r in everything[:2]] == [
        ("linear", "torch", "eager"), ("linear", "tensorflow", "graph")]
    aa = RunSettings(workloads=["mlp"], frameworks=["torch"], aa=True, repeats=3).requests()
    assert [(r.workload, r.framework, r.repeats) for r in aa] == [("mlp", "torch", 3)] * 2


@pytest.mark.parametrize("values, message", [
    ({"workloads": ["resnet"]}, "-w/--workload: 'resnet' is not one of linear, mlp"),
    ({"frameworks": ["jax"]}, "-f/--framework: 'jax' is not one of torch, tensorflow"),
    ({"steps": 0}, "--steps must be between 1 and 100000, not 0"),
    ({"warmup": -1}, "--warmup must be between 0 and 10000, not -1"),
    ({"steps": "10"}, "--steps must be a whole number, not '10'"),
    ({"repeats": True}, "--repeats must be a whole number, not True"),
    ({"execution": "jit"}, "--exec: 'jit' is not one of eager, graph, compiled"),
])
def test_settings_are_checked_as_strictly_as_flags(values, message):
    with pytest.raises(UserError, match=message):
        RunSettings(**values).check()


def test_config_file_values_and_flags(tmp_path):
    config = tmp_path / "xprof.toml"
    config.write_text('[daemon]\ncron = "0 2 * * *"\nsuite = "tiny"\nworkloads = ["mlp", "cnn"]\n'
                      'keep-raw = "3d"\n')
    loaded = load_config(config, {"repeats": 7})
    assert (loaded.cron, loaded.suite, loaded.workloads, loaded.keep_raw, loaded.repeats) == (
        "0 2 * * *", "tiny", ["mlp", "cnn"], "3d", 7)
    assert load_config(config, {"every": "6h"}).schedule.describe() == "every 6h"
    assert isinstance(loaded, RunSettings) and loaded.requests()[0].size == "tiny"


def test_a_config_file_takes_the_daemons_keys_only():
    # the TOML contract: what contrib/xprof.toml documents
    assert config_keys() == ["baseline", "batch_size", "cron", "device", "downsample_to", "dtype", "every", "execution", "frameworks",
                             "keep_events", "keep_last", "keep_raw", "min_effect", "mode", "on_regression",
                             "repeats", "steps", "suite", "summary", "telemetry_every", "warmup",
                             "worker_timeout", "workloads"]
    with pytest.raises(UserError, match="--min-effect must be between 0 and 10, not 11"):
        DaemonConfig(every="1h", min_effect=11).check()


def test_a_started_daemon_gets_the_flags_it_was_given(tmp_path):
    files = DaemonFiles.of(tmp_path / "x.db", tmp_path / "state")
    arguments = as_arguments({"every": "6h", "workloads": ("mlp", "cnn"), "steps": None, "frameworks": ()},
                             "rel/xprof.toml", files)
    assert arguments == ["--config", "rel/xprof.toml", "--every", "6h", "--workload", "mlp",
                         "--workload", "cnn", "--db", str(tmp_path / "x.db"),
                         "--state-dir", str(tmp_path / "state")]


def _xprof(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_flags_show_the_declared_defaults_and_ranges(capsys):
    code, out, _ = _xprof(capsys, "run", "--help")
    assert code == 0 and "[default: 10; 1<=x<=100000]" in " ".join(out.split())
    _, out, _ = _xprof(capsys, "daemon", "run", "--help")
    text = " ".join(out.split())
    assert "under it. [10] [1<=x<=100000]" in text and "summary. [state directory]" in text
    low, high = LIMITS["min_effect"]
    assert f"[0.05] [{low}<=x<={high}]" in text


def test_commands_on_a_synthetic_store(tmp_path, capsys):
    db = tmp_path / "x.db"
    store = Store.open(db)
    a = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 3)
    b = add_run(store, [{"matmul": 2.0, "elementwise": 0.5}] * 3, framework="tensorflow")
    store.close()
    code, out, _ = _xprof(capsys, "runs", "--json", "--db", db)
    runs = json.loads(out)["runs"]
    assert code == 0 and [r["id"] for r in runs] == [b["id"], a["id"]]
    assert runs[0]["kernels"] == 6 and runs[0]["framework"] == "tensorflow"  # every event stored
    code, out, _ = _xprof(capsys, "diff", a["id"][:6], b["id"][:6], "--json", "--db", db)
    result = json.loads(out)
    assert code == 0 and result["step"]["ratio"] == pytest.approx(5 / 3)
    assert [r["key"] for r in result["rows"]] == ["(between ops)", "matmul", "elementwise"]
    code, out, _ = _xprof(capsys, "report", "--db", db)
    assert code == 0 and "mlp train tiny fp32 on cpu: torch is 1.67x faster per step" in " ".join(out.split())
    code, _, err = _xprof(capsys, "diff", a["id"], "--db", db)
    assert code == 2 and err == "xprof: error: give two run ids, or --workload (not both)\n"
    code, _, err = _xprof(capsys, "regressions", "-w", "lstm", "--db", db)
    assert code == 1 and err.startswith("xprof: error: no ok runs of lstm")
