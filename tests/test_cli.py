"""The `xprof` command through its real entry point."""

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, run_xprof

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow


def test_help_lists_commands():
    done = run_xprof("--help", check=0)
    assert "workloads" in done.stdout


def test_workloads_json_without_parity():
    rows = json.loads(run_xprof("workloads", "--json", "--size", "small", "-w", "matmul", check=0).stdout)
    assert rows == [{
        "name": "matmul",
        "description": rows[0]["description"],
        "frameworks": {
            fw: {"params": 512 * 512, "flops_per_step": 2 * 2 * 512**3 + 2 * 512 * 512}
            for fw in ("torch", "tensorflow")
        },
        "parity": None,
    }]


def test_workloads_table():
    out = run_xprof("workloads", check=0).stdout
    for name in ("linear", "mlp", "cnn", "lstm", "transformer", "matmul", "conv2d"):
        assert name in out
    assert "26,122" in out  # mlp parameters at tiny


@pytest.mark.parametrize(
    "args, names",
    [
        (["workloads", "-w", "resnet"], "'linear', 'mlp', 'cnn'"),
        (["workloads", "--size", "huge"], "'tiny', 'small', 'large'"),
        (["workloads", "--mode", "serve"], "'train', 'infer'"),
    ],
)
def test_unknown_choice_is_one_line_with_valid_choices(args, names):
    done = run_xprof(*args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("xprof: error:") and names in lines[0]
    assert "Traceback" not in done.stderr


STARTUP_CODE = """
import sys, cli
for argv in (["--help"], ["workloads"], ["workloads", "--json"]):
    cli.main(argv)
heavy = sorted(m for m in ("torch", "tensorflow", "keras", "pynvml") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def test_help_and_workloads_do_not_import_frameworks():
    done = subprocess.run([sys.executable, "-c", STARTUP_CODE], capture_output=True,
                          text=True, cwd=REPO_ROOT, check=True)
    assert done.stdout.strip().splitlines()[-1] == "HEAVY="


def test_bare_xprof_prints_help():
    done = run_xprof()
    assert done.returncode == 0 and "Commands:" in done.stdout and done.stderr == ""


def test_a_workloads_folder_in_the_working_directory_does_not_shadow_ours(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "__init__.py").write_text('raise SystemExit("the user\'s own package")')
    (tmp_path / "profiler").mkdir()
    (tmp_path / "profiler" / "__init__.py").write_text('raise SystemExit("the user\'s own package")')
    done = run_xprof("workloads", "--parity", "-w", "linear", "--json", cwd=tmp_path, check=0)
    assert json.loads(done.stdout)[0]["parity"]["ok"]
