import functools
import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
# The console script pip installed next to this interpreter: the real entry point.
XPROF = Path(sys.executable).parent / "xprof"


def fixture_path(*parts) -> Path:
    """A file under ../shared/fixtures, or a skip that says why it is missing."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent (this clone has no ../shared/fixtures)")
    return path


def run_xprof(*args, env=None, check=None, timeout=600, cwd=REPO_ROOT):
    """Run the installed `xprof` command in a subprocess and return the result."""
    done = subprocess.run(
        [str(XPROF), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def run_python(code: str, timeout=600) -> str:
    """Run code in a fresh interpreter (one framework per process, as xprof does)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# -- what this machine has: assertions that depend on it follow it --------------------
# Run the suite with tests/fake_nvml first on PYTHONPATH to take the with-a-driver paths
# on a machine without one (every process then imports the fake as pynvml).
FAKE_NVML = REPO_ROOT / "tests" / "fake_nvml"


@functools.cache
def machine_nvml() -> dict:
    """NVML as this machine has it: a driver's facts, or why there is none."""
    from profiler.telemetry.nvml import Nvml

    return Nvml().environment()


@functools.cache
def tensorflow_gpus() -> int:
    return int(run_python("import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))")
               .split()[-1])


def tensorflow_sees_a_gpu() -> bool:
    return tensorflow_gpus() > 0


@functools.cache
def torch_gpus() -> int:
    return int(run_python("import torch; print(torch.cuda.device_count())").split()[-1])


def default_device() -> str:
    """The device `xprof run` takes here without --device: the first GPU where both
    frameworks see one, else the CPU."""
    return "gpu:0" if torch_gpus() and tensorflow_gpus() else "cpu"


def last_json_line(text: str):
    return json.loads(text.strip().splitlines()[-1])


def one_line_error(done) -> str:
    """The contract for user errors: non-zero exit, one `xprof: error:` line, no traceback."""
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xprof: error:"), done.stderr
    return lines[0]


def repeated_trace(document: dict, copies: int, path: Path) -> Path:
    """Write a Kineto trace holding `document`'s events `copies` times, each copy after
    the one before in time and its ProfilerStep numbers after the last copy's."""
    events = document["traceEvents"]
    times = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    span = max(times) - min(times) + 1
    steps = [int(e["name"].split("#")[1]) for e in events if str(e.get("name", "")).startswith("ProfilerStep#")]
    step_span = max(steps) - min(steps) + 1 if steps else 0

    def shifted(event, copy):
        event = dict(event)
        if isinstance(event.get("ts"), (int, float)):
            event["ts"] += copy * span
        if str(event.get("name", "")).startswith("ProfilerStep#"):
            event["name"] = f"ProfilerStep#{int(event['name'].split('#')[1]) + copy * step_span}"
        return event

    repeated = [shifted(e, copy) for copy in range(copies) for e in events]
    path.write_text(json.dumps({**document, "traceEvents": repeated}, indent=1))
    return path


@pytest.fixture(scope="session")
def long_cpu_trace(tmp_path_factory):
    """The CPU fixture's events 300 times over: 9,000 events, 300 steps, in time order."""
    document = json.loads(gzip.decompress(fixture_path("kineto", "cpu_only.json.gz").read_bytes()))
    return repeated_trace(document, 300, tmp_path_factory.mktemp("long") / "long_cpu.pt.trace.json")


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session, or a skip saying why there is none."""
    import pg_server as pg

    bin_dir = pg.binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) on this machine: the server store is untested here")
    server = pg.Server(bin_dir).init()
    yield server
    server.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a test's store is, on each backend: a SQLite file, then a new database on the
    session's PostgreSQL server. The same test runs on both."""
    if request.param == "sqlite":
        return str(tmp_path / "xprof.db")
    return request.getfixturevalue("pg_server").database()
