"""--dtype and --device for real: mixed precision as each framework's users run it, runs
kept apart by precision in every comparison, and a GPU that is not there refused."""

import gzip
import json
import sqlite3

import pytest

from profiler.store import Store
from conftest import default_device, last_json_line, one_line_error, run_python, run_xprof, tensorflow_gpus, torch_gpus

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow

RUN = ("run", "--suite", "tiny", "--repeats", "2", "--steps", "3", "--warmup", "2", "--json")


@pytest.fixture(scope="module")
def two_precisions(tmp_path_factory):
    """mlp and cnn at bf16 in both frameworks, then mlp at fp32: one store."""
    db = tmp_path_factory.mktemp("precision") / "xprof.db"
    bf16 = run_xprof(*RUN, "-w", "mlp", "-w", "cnn", "--dtype", "bf16", "--db", db, check=0)
    fp32 = run_xprof(*RUN, "-w", "mlp", "--db", db, check=0)
    return db, json.loads(bf16.stdout)["runs"], json.loads(fp32.stdout)["runs"]


def _ops(db, run_id) -> set[str]:
    return {op for (op,) in sqlite3.connect(db).execute("SELECT DISTINCT op FROM event_rows WHERE run_id = ?",
                                                        (run_id,))}


def _names(db, run_id) -> set[str]:
    return {name for (name,) in sqlite3.connect(db).execute(
        "SELECT DISTINCT name FROM event_rows WHERE run_id = ? AND op = 'Cast'", (run_id,))}


def test_bf16_runs_in_both_frameworks_as_their_users_run_it(two_precisions):
    db, bf16, fp32 = two_precisions
    assert len(bf16) == 4 and all(r["status"] == "ok" and r["dtype"] == "bf16" for r in bf16), bf16
    assert all(r["device"] == default_device() for r in bf16 + fp32)
    rows = dict(sqlite3.connect(db).execute("SELECT id, dtype FROM runs"))
    assert {rows[r["id"]] for r in bf16} == {"bf16"} and {rows[r["id"]] for r in fp32} == {"fp32"}
    mlp = {(r["framework"], r["dtype"]): r["id"] for r in bf16 + fp32 if r["workload"] == "mlp"}
    # torch autocast casts to bf16 (and back, in backward); Keras's mixed policy casts too
    assert "ToCopyBackward0" in _ops(db, mlp["torch", "bf16"]) and "ToCopyBackward0" not in _ops(db, mlp["torch", "fp32"])
    # Keras casts each layer's fp32 variables to the compute dtype; fp32 casts only the loss's labels
    assert any("dense0" in name for name in _names(db, mlp["tensorflow", "bf16"]))
    assert not any("dense" in name and "Cast" in name for name in _names(db, mlp["tensorflow", "fp32"]))
    # the matmuls themselves took bf16 inputs: torch records each op's input types
    store = Store.open(db, create=False)
    trace = store.artifact_file(store.trace_artifact(mlp["torch", "bf16"], 0))
    assert "c10::BFloat16" in gzip.decompress(trace.read_bytes()).decode()


def test_diff_report_regressions_and_history_keep_precisions_apart(two_precisions):
    db, bf16, fp32 = two_precisions
    ids = {(r["workload"], r["framework"], r["dtype"]): r["id"] for r in bf16 + fp32}
    newest = json.loads(run_xprof("diff", "-w", "mlp", "--json", "--db", db, check=0).stdout)
    assert (newest["a"]["id"], newest["b"]["id"]) == (ids["mlp", "torch", "fp32"], ids["mlp", "tensorflow", "fp32"])
    chosen = json.loads(run_xprof("diff", "-w", "mlp", "--dtype", "bf16", "--json", "--db", db, check=0).stdout)
    assert (chosen["a"]["id"], chosen["b"]["id"]) == (ids["mlp", "torch", "bf16"], ids["mlp", "tensorflow", "bf16"])
    assert chosen["a"]["dtype"] == chosen["b"]["dtype"] == "bf16"
    # two runs given by id at different precisions are compared, and the note says so
    mixed = json.loads(run_xprof("diff", ids["mlp", "torch", "fp32"], ids["mlp", "tensorflow", "bf16"], "--json",
                                 "--db", db, check=0).stdout)
    assert "precisions differ: fp32 vs bf16" in mixed["notes"]

    report = json.loads(run_xprof("report", "--json", "--db", db, check=0).stdout)["workloads"]
    mlp = {e["dtype"]: e for e in report if e["workload"] == "mlp"}
    assert set(mlp) == {"fp32", "bf16"}
    for dtype, entry in mlp.items():
        assert {fw: side["run"] for fw, side in entry["frameworks"].items()} == {
            "torch": ids["mlp", "torch", dtype], "tensorflow": ids["mlp", "tensorflow", dtype]}
    text = run_xprof("report", "-w", "mlp", "--db", db, check=0).stdout
    assert "bf16@" in text and "fp32@" in text

    regressions = json.loads(run_xprof("regressions", "-w", "mlp", "--json", "--db", db, check=0).stdout)
    torch = [(c["dtype"], c["runs"]) for c in regressions["configurations"] if c["framework"] == "torch"]
    assert sorted(torch) == [("bf16", 1), ("fp32", 1)]
    history = json.loads(run_xprof("history", "-w", "mlp", "--json", "--db", db, check=0).stdout)
    assert sorted((h["framework"], h["dtype"], len(h["series"])) for h in history["configurations"]) == [
        ("tensorflow", "bf16", 1), ("tensorflow", "fp32", 1), ("torch", "bf16", 1), ("torch", "fp32", 1)]


MIXED_CODE = """
import json, numpy as np
from workloads.{module} import {cls}
out = {{}}
for dtype in ("fp32", "bf16", "fp16"):
    for mode in ("train", "infer"):
        w = {cls}("mlp", "tiny", mode, dtype=dtype)
        before = [np.array(v, copy=True) for v in w.weights_snapshot()]
        for _ in range(3):
            w.step()
        w.synchronize()
        out[f"{{dtype}}/{{mode}}"] = {{
            "changed": any(not np.array_equal(a, b) for a, b in zip(before, w.weights_snapshot())),
            "weights": sorted({{str(v.dtype) for v in w.weights_snapshot()}}),
            **facts(w),
        }}
print(json.dumps(out))
"""

TORCH_FACTS = """
def facts(w):
    with w._precision():
        computed = w.runnable(w.inputs).dtype
    return {"computes": str(computed).replace("torch.", ""), "scales_loss": w.scaler.is_enabled()}
"""

TF_FACTS = """
import keras
def facts(w):
    return {"computes": w.model.layers[-1].compute_dtype,
            "scales_loss": isinstance(w.optimizer, keras.optimizers.LossScaleOptimizer)}
"""


@pytest.mark.parametrize("module, cls, facts", [("torch_impl", "TorchWorkload", TORCH_FACTS),
                                                ("tf_impl", "TensorFlowWorkload", TF_FACTS)])
def test_mixed_precision_keeps_fp32_weights_and_fp16_training_scales_its_loss(module, cls, facts):
    result = last_json_line(run_python(facts + MIXED_CODE.format(module=module, cls=cls)))
    computes = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
    for dtype in ("fp32", "bf16", "fp16"):
        for mode in ("train", "infer"):
            got = result[f"{dtype}/{mode}"]
            assert got["weights"] == ["float32"], got  # master weights stay fp32
            assert got["computes"] == computes[dtype], got
            assert got["changed"] == (mode == "train"), got
            assert got["scales_loss"] == (dtype == "fp16" and mode == "train"), got


def test_a_gpu_that_is_not_there_is_refused_before_anything_runs(tmp_path):
    db = tmp_path / "x.db"
    line = one_line_error(run_xprof("run", "--suite", "tiny", "-w", "mlp", "--device", "cuda:99", "--db", db))
    # both frameworks were asked, and what they see is named
    assert line == (f"xprof: error: --device cuda:99: no such GPU here (torch sees {torch_gpus()} "
                    f"GPU{'s' * (torch_gpus() != 1)}; tensorflow sees {tensorflow_gpus()} "
                    f"GPU{'s' * (tensorflow_gpus() != 1)})")
    line = one_line_error(run_xprof("run", "--suite", "tiny", "--device", "tpu", "--db", db))
    assert line == "xprof: error: --device: 'tpu' is not cpu, cuda:N or gpu:N"
    assert not db.exists()  # refused before a store is made


def test_an_explicit_cpu_runs_there_whatever_the_machine_has(tmp_path):
    db = tmp_path / "x.db"
    done = run_xprof("run", "--suite", "tiny", "-w", "linear", "-f", "torch", "--device", "cpu", "--repeats", "1",
                     "--steps", "2", "--warmup", "1", "--dtype", "fp16", "--json", "--db", db, check=0)
    [run] = json.loads(done.stdout)["runs"]
    assert (run["device"], run["dtype"], run["status"]) == ("cpu", "fp16", "ok")
    env = json.loads(sqlite3.connect(db).execute("SELECT env FROM runs").fetchone()[0])
    assert (env["device"], env["device_name"]) == ("cpu", "cpu") and len(env["framework_gpus"]) == torch_gpus()
