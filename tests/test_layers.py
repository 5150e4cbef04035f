"""Why the gap on real runs: torch and TensorFlow steps under their profilers, FLOPs per op
and per layer against the catalog, `diff --by layer`, `calibrate` and `roofline`."""

import gzip
import json

import pytest

from analysis.attribution import FRAMEWORK, TF_COMPUTE_TYPE, attribute
from analysis.figures import BETWEEN_OPS
from conftest import fixture_path, run_xprof
from profiler.store import Store
from workloads import get_workload
from workloads.layers import OPTIMIZER, layer_names

pytestmark = pytest.mark.slow

WORKLOADS = ("matmul", "mlp", "conv2d", "cnn", "lstm", "transformer")
TORCH_GEMMS = {"aten::linear", "aten::mm", "aten::addmm", "aten::matmul", "aten::bmm", "aten::conv2d",
               "aten::convolution", "aten::convolution_backward"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "xprof.db"
    args = ["run", "--suite", "tiny", "--repeats", "2", "--steps", "2", "--warmup", "1", "--db", path]
    for name in WORKLOADS:
        args += ["-w", name]
    run_xprof(*args, check=0, timeout=900)
    return path


def _runs(path):
    store = Store.open(path, create=False)
    return store, {(run["workload"], run["framework"]): run for run in store.runs()}


@pytest.mark.parametrize("name", ["matmul", "mlp", "conv2d"])
def test_per_op_flops_equal_the_analytic_formula_in_both_frameworks(store_path, name):
    store, runs = _runs(store_path)
    spec = get_workload(name)
    # the model's GEMMs and convolutions: the step's FLOPs but the optimizer's update
    expected = spec.flops_per_step("tiny", "train") - 2 * spec.params("tiny")
    for framework in ("torch", "tensorflow"):
        done = run_xprof("roofline", runs[name, framework]["id"], "--by", "op", "--json", "--db", store_path, check=0)
        rows = json.loads(done.stdout)["rows"]
        gemms = [row for row in rows if (row["key"] in TORCH_GEMMS if framework == "torch"
                                         else TF_COMPUTE_TYPE.search(row["key"]))]
        assert gemms, (framework, [row["key"] for row in rows])
        assert sum(row["flops"] for row in gemms) == pytest.approx(expected, rel=0.01), framework


@pytest.mark.parametrize("name", WORKLOADS)
def test_per_layer_flops_sum_to_the_workloads_flops_per_step(store_path, name):
    store, runs = _runs(store_path)
    for framework in ("torch", "tensorflow"):
        done = run_xprof("roofline", runs[name, framework]["id"], "--by", "layer", "--json", "--db", store_path,
                         check=0)
        result = json.loads(done.stdout)
        total = sum(row["flops"] for row in result["rows"])
        assert total == get_workload(name).flops_per_step("tiny", "train"), framework
        assert {row["key"] for row in result["rows"]} | {u["key"] for u in result["unmodelled"]} >= set(
            layer_names(name)), framework


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
def test_diff_by_layer_lists_every_catalog_layer_on_both_sides(store_path, name):
    done = run_xprof("diff", "-w", name, "--by", "layer", "--json", "--db", store_path, check=0)
    result = json.loads(done.stdout)
    rows = {row["key"]: row for row in result["rows"]}
    catalog = layer_names(name)
    assert list(rows)[:len(catalog)] == catalog  # the model's order
    for layer in catalog:
        for side in ("a", "b"):
            figures = rows[layer][side]
            assert figures["ops"] > 0, (layer, side)  # fusion differences show as counts
            assert figures["time_ms_low"] is not None and figures["time_ms_high"] is not None, (layer, side)
        assert rows[layer]["ci_low"] is not None
    # nothing else but what the output names as outside the layers
    assert set(rows) <= set(catalog) | {OPTIMIZER, FRAMEWORK, BETWEEN_OPS}
    shown = run_xprof("diff", "-w", name, "--by", "layer", "--db", store_path, check=0).stdout
    assert all(layer in shown for layer in catalog)


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
def test_every_nanosecond_of_a_step_is_attributed(store_path, name):
    store, runs = _runs(store_path)
    for framework in ("torch", "tensorflow"):
        attribution = attribute(store, runs[name, framework], "layer")
        catalog = set(layer_names(name))
        for where, cells in attribution.steps.items():
            assert set(cells) <= catalog | {OPTIMIZER, FRAMEWORK, BETWEEN_OPS}
            in_layers = sum(cells[key].time_ns for key in cells if key in catalog)
            assert in_layers > 0.5 * sum(cell.time_ns for key, cell in cells.items() if key != BETWEEN_OPS)
            # op time and the time between ops make up the step, to the nanosecond
            assert sum(cell.time_ns for cell in cells.values()) >= attribution.walls_ns[where]


def test_calibrated_peak_bounds_what_runs_achieve(store_path):
    done = run_xprof("calibrate", "-f", "torch", "--scale", "0.25", "--repeats", "3", "--json", "--db", store_path,
                     check=0)
    measured = json.loads(done.stdout)["calibrations"]
    assert {row["dtype"] for row in measured} >= {"fp32"}
    fp32 = next(row for row in measured if row["dtype"] == "fp32")
    assert fp32["flops_per_s"] > 1e8 and fp32["bytes_per_s"] > 1e8 and 0 <= fp32["flops_spread"] < 1
    doctor = json.loads(run_xprof("doctor", "--json", "--db", store_path, check=0).stdout)
    assert any(key.startswith("cpu torch fp32") for key in doctor["store"]["peaks"])
    store, runs = _runs(store_path)
    for name in ("matmul", "conv2d", "mlp"):
        result = json.loads(run_xprof("roofline", runs[name, "torch"]["id"], "--json", "--db", store_path,
                                      check=0).stdout)
        device = result["device"]
        assert device["source"].startswith("calibrated on") and device["peak_flops_per_s"] >= fp32["flops_per_s"]
        for row in result["rows"]:
            assert row["flops_per_s"] <= device["peak_flops_per_s"] * (1 + device["spread"]), row
            assert row["bound"] in ("compute", "memory") and row["efficiency"] is not None


def test_bad_input_gets_one_line(store_path, tmp_path):
    done = run_xprof("roofline", "nosuchrun", "--db", store_path)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    done = run_xprof("calibrate", "--device", "tpu:0", "--db", tmp_path / "x.db")
    assert done.returncode != 0 and "tpu:0" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = run_xprof("calibrate", "--device", "gpu:99", "-f", "torch", "--db", tmp_path / "x.db")
    assert done.returncode != 0 and "GPUs, not gpu:99" in done.stderr.strip().splitlines()[-1]


def test_exports_and_report_name_the_layers(store_path, tmp_path):
    store, runs = _runs(store_path)
    ids = [runs["cnn", "torch"]["id"], runs["cnn", "tensorflow"]["id"]]
    run_xprof("export", *ids, "--format", "html", "-o", tmp_path / "review.html", "--db", store_path, check=0)
    run_xprof("export", *ids, "--format", "md", "-o", tmp_path / "summary.md", "--db", store_path, check=0)
    html = (tmp_path / "review.html").read_text()
    chart = html[html.index("<h2>Roofline"):]
    assert chart.count("<circle") >= 8 and "calibrated on" in chart  # both sides' GEMM layers, under the roof
    markdown = (tmp_path / "summary.md").read_text()
    table = markdown[markdown.index("## Layer by layer"):]
    assert all(f"| {layer} |" in table for layer in layer_names("cnn"))
    report = json.loads(run_xprof("report", "-w", "cnn", "-w", "transformer", "--json", "--db", store_path,
                                  check=0).stdout)
    for entry in report["workloads"]:
        gap = entry["layer_gap"]
        if gap is not None:  # the layer most behind the gap, in the gap's direction
            assert gap["layer"] in layer_names(entry["workload"])
            assert (gap["delta_ms"] > 0) == (entry["ratio"] > 1)
            assert gap["torch"]["time_ms"] > 0 and gap["tensorflow"]["time_ms"] > 0


def test_imported_gpu_traces_get_datasheet_peaks_idle_time_and_modelled_gemms(tmp_path):
    a100 = fixture_path("kineto", "a100_alexnet_train.json.gz")
    mi250 = fixture_path("kineto", "mi250_minitoy_train.json.gz")
    db = tmp_path / "gpu.db"
    run_xprof("import", a100, mi250, "--db", db, check=0)
    store = Store.open(db, create=False)
    by_file = {json.loads(run["env"])["imported_from"]: run for run in store.runs()}
    result = json.loads(run_xprof("roofline", by_file[str(a100)]["id"], "--json", "--db", db, check=0).stdout)
    assert result["device"]["name"] == "NVIDIA A100 SXM4 40GB" and result["device"]["source"].startswith("datasheet")
    idle = result["device_idle"]
    assert idle["busy_ms"] > 0 and idle["idle_ms"] == pytest.approx(idle["host_wait_ms"] + idle["other_idle_ms"])
    # the A100 trace was recorded without record_shapes: its GEMMs are named as unmodelled, with the reason
    unmodelled = {row["key"]: row["why"] for row in result["unmodelled"]}
    assert "shapes" in unmodelled["aten::linear"] and "shapes" in unmodelled["aten::conv2d"]
    result = json.loads(run_xprof("roofline", by_file[str(mi250)]["id"], "--json", "--db", db, check=0).stdout)
    assert result["device"]["name"].startswith("AMD Instinct MI250")
    document = json.loads(gzip.decompress(mi250.read_bytes()))
    expected = sum(2 * e["args"]["Input Dims"][0][0] * e["args"]["Input Dims"][0][1] * e["args"]["Input Dims"][1][1]
                   if e["name"] == "aten::mm" else
                   2 * e["args"]["Input Dims"][1][0] * e["args"]["Input Dims"][1][1] * e["args"]["Input Dims"][2][1]
                   for e in document["traceEvents"]
                   if e.get("cat") == "cpu_op" and e["name"] in ("aten::mm", "aten::addmm"))
    gemms = [row for row in result["rows"] if row["key"] in TORCH_GEMMS]
    assert sum(row["flops"] for row in gemms) == expected
    assert all(row["efficiency"] is not None for row in gemms)


def _tensorflow_gpu_space():
    """An NVIDIA-shaped XSpace of one TensorFlow training step of the mlp workload: graph
    ops on a tf_Compute thread, their kernels on a GPU stream (tf_op and correlation
    stats), launches on a host thread; built with TensorFlow's own xplane_pb2."""
    from test_xplane import PlaneBuilder, Ref, Unsigned

    from profiler.traces.xplane import load_xplane_pb2

    space = load_xplane_pb2().XSpace(hostnames=["gpu-box"])
    gpu = PlaneBuilder(space, "/device:GPU:0")
    gpu.add_stats(gpu.plane, {"device_vendor": "Nvidia", "core_count": 132, "memory_size": Unsigned(85 << 30)})
    host = PlaneBuilder(space, "/host:CPU")
    python = host.line(1, "python", timestamp_ns=0)
    host.event(python, "train", 0, 1_000_000_000, step_num=0, _r=1)  # a 1 ms step
    compute = host.line(2, "tf_Compute/2", timestamp_ns=0)
    launches = host.line(3, "Host Threads/3", timestamp_ns=0)
    kernels = gpu.line(7, "Stream #7(Kernel)", timestamp_ns=0)
    ops = [("mlp_1/dense0_1/MatMul", "MatMul"), ("mlp_1/dense1_1/MatMul", "MatMul"),
           ("mlp_1/head_1/MatMul", "MatMul"), ("gradient_tape/mlp_1/head_1/MatMul/MatMul", "MatMul"),
           ("gradient_tape/mlp_1/dense0_1/MatMul/MatMul_1", "MatMul"), ("sgd/Mul", "Mul")]
    for index, (node, op_type) in enumerate(ops):
        start_ps = 10_000_000 + index * 100_000_000  # every 100 µs
        host.event(compute, f"{node}:{op_type}", start_ps, 20_000_000)
        host.event(launches, "cuLaunchKernel", start_ps + 5_000_000, 10_000_000, correlation_id=Unsigned(index + 1))
        # each kernel starts as its launch returns, after the device sat idle since the last
        gpu.event(kernels, f"kernel_{index}", start_ps + 15_000_000, 50_000_000, kernel_details="regs:32",
                  correlation_id=Unsigned(index + 1), tf_op=Ref(f"{node}:{op_type}"))
    return space


def test_a_tensorflow_gpu_trace_gets_layers_kernel_counts_and_idle_time(tmp_path):
    path = tmp_path / "gpu-box.xplane.pb"
    path.write_bytes(_tensorflow_gpu_space().SerializeToString())
    db = tmp_path / "tf.db"
    run_xprof("import", path, "-w", "mlp", "--size", "tiny", "--mode", "train", "--db", db, check=0)
    run_id = Store.open(db, create=False).runs()[0]["id"]
    result = json.loads(run_xprof("roofline", run_id, "--by", "layer", "--json", "--db", db, check=0).stdout)
    rows = {row["key"]: row for row in result["rows"]}
    assert result["basis"] == "device" and result["device"]["source"].startswith("datasheet")
    assert rows["dense0"]["kernels"] == 2 and rows["head"]["kernels"] == 2 and rows["dense1"]["kernels"] == 1
    assert rows["dense0"]["time_ms"] == pytest.approx(0.1)  # two 50 µs kernels
    assert rows[OPTIMIZER]["kernels"] == 1
    idle = result["device_idle"]
    # 5 gaps of 50 µs between the kernels, each waiting for the next launch to return
    assert idle["busy_ms"] == pytest.approx(0.3) and idle["host_wait_ms"] == pytest.approx(0.25)
    assert idle["other_idle_ms"] == pytest.approx(0.0)
    by_op = json.loads(run_xprof("roofline", run_id, "--by", "op", "--json", "--db", db, check=0).stdout)
    matmul = next(row for row in by_op["rows"] if row["key"] == "MatMul")
    # the kernels' time and the layers' FLOPs meet in one row: the op type's
    assert matmul["time_ms"] == pytest.approx(0.25) and matmul["flops"] > 0
