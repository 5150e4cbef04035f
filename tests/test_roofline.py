"""The arithmetic of why-the-gap: the layer catalog against the workloads' FLOPs, op costs
from shapes, datasheet matching, roofline rates, layer attribution in the trace reader."""

import gzip
import json
from collections import defaultdict

import pytest

from analysis.attribution import FRAMEWORK, tf_layer
from analysis.costs import op_cost
from analysis.peaks import Peak
from analysis.roofline import rates
from conftest import fixture_path
from profiler.telemetry.datasheets import DATASHEETS, match_datasheet
from profiler.traces.kineto import read_kineto
from workloads import MODES, SIZES, WORKLOADS, get_workload
from workloads.layers import LAYER_SCOPE, OPTIMIZER, layer_costs, layers_of


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_layer_flops_sum_to_the_workloads_flops_per_step(name):
    spec = get_workload(name)
    for size in SIZES:
        for mode in MODES:
            for batch_size in (None, 3):
                costs = layer_costs(name, size, mode, batch_size=batch_size)
                total = sum(cost["flops"] or 0 for cost in costs.values())
                assert total == spec.flops_per_step(size, mode, batch_size), (size, mode, batch_size)
                assert (OPTIMIZER in costs) == (mode == "train")
        config = spec.config(size)
        assert sum(layer.params(config) for layer in layers_of(name, size)) == spec.count_params(config)


def test_a_layers_flops_split_forward_and_backward():
    conv = next(layer for layer in layers_of("conv2d", "tiny") if layer.name == "conv")
    config = get_workload("conv2d").config("tiny")
    macs = 4 * 16 * 16 * 9 * 8 * 8
    # the data layer: no input gradient, so backward is the weight gradient alone
    assert conv.phase_flops(config, "train") == (2 * macs, 2 * macs)
    assert conv.phase_flops(config, "infer") == (2 * macs, 0)


def _shapes(dims, types, values=None):
    return json.dumps([dims, types, values or []])


def test_gemm_costs_from_shapes():
    assert op_cost("aten::mm", _shapes([[4, 8], [8, 10]], ["float", "float"])).flops == 2 * 4 * 8 * 10
    addmm = op_cost("aten::addmm", _shapes([[10], [4, 8], [8, 10], [], []], ["float"] * 3 + ["Scalar"] * 2))
    assert addmm.flops == 2 * 4 * 8 * 10 and addmm.bytes == 4 * (32 + 80 + 40 + 10)
    assert op_cost("aten::bmm", _shapes([[3, 4, 8], [3, 8, 5]], ["float", "float"])).flops == 2 * 3 * 4 * 8 * 5
    # linear: weight is (out, in), leading input dims are rows
    linear = op_cost("aten::linear", _shapes([[16, 4, 32], [96, 32], [96]], ["float"] * 3))
    assert linear.flops == 2 * 64 * 32 * 96
    assert op_cost("aten::matmul", _shapes([[2, 5, 4, 8], [8, 3]], ["c10::BFloat16"] * 2)).flops == 2 * 40 * 8 * 3
    assert op_cost("aten::matmul", _shapes([[2, 5, 4, 8], [8, 3]], ["c10::BFloat16"] * 2)).bytes == 2 * (
        40 * 8 + 8 * 3 + 40 * 3)


def test_convolution_costs_use_stride_padding_and_the_gradient_mask():
    types = ["float", "float", "", "ScalarList", "ScalarList", "ScalarList", "Scalar"]
    same = op_cost("aten::conv2d", _shapes([[4, 3, 16, 16], [8, 3, 3, 3], [], [], [], [], []], types,
                                           ["", "", "", "[1, 1]", "[1, 1]", "[1, 1]", "1"]))
    assert same.flops == 2 * 4 * 8 * 16 * 16 * 3 * 9
    strided = op_cost("aten::conv2d", _shapes([[4, 3, 16, 16], [8, 3, 3, 3], [], [], [], [], []], types,
                                              ["", "", "", "[2, 2]", "[0, 0]", "[1, 1]", "1"]))
    assert strided.flops == 2 * 4 * 8 * 7 * 7 * 3 * 9
    # without the scalars' values (an older trace) the output size is unknown: no cost
    assert op_cost("aten::conv2d", _shapes([[4, 3, 16, 16], [8, 3, 3, 3], [], [], [], [], []], types)) is None
    backward = ["float", "float", "float"] + ["ScalarList"] * 8
    dims = [[4, 8, 16, 16], [4, 3, 16, 16], [8, 3, 3, 3]] + [[]] * 8
    both = op_cost("aten::convolution_backward", _shapes(dims, backward, [""] * 10 + ["[True, True, False]"]))
    weight_only = op_cost("aten::convolution_backward", _shapes(dims, backward, [""] * 10 + ["[False, True, True]"]))
    assert both.flops == 2 * weight_only.flops == 2 * (2 * 4 * 8 * 256 * 3 * 9)


def test_attention_lstm_and_views():
    sdpa = op_cost("aten::scaled_dot_product_attention", _shapes([[4, 4, 16, 8]] * 3, ["float"] * 3))
    assert sdpa.flops == 2 * 16 * 16 * 16 * (8 + 8)
    backward = op_cost("aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                       _shapes([[4, 4, 16, 8]] * 3, ["float"] * 3))
    assert backward.flops == 2 * sdpa.flops
    lstm = op_cost("aten::lstm", json.dumps([[[8, 8, 16], [[1, 8, 32], [1, 8, 32]],
                                               [[128, 16], [128, 32], [128], [128]]],
                                              ["float", "TensorList", "TensorList"], []]))
    assert lstm.flops == 2 * 8 * 8 * 4 * 32 * (16 + 32)
    assert op_cost("aten::view", None).flops == 0  # a view does no arithmetic, shapes or not
    assert op_cost("aten::addmm", None) is None  # no shapes recorded: unmodelled, never zero
    assert op_cost("aten::nonexistent_op", _shapes([[2]], ["float"])) is None


def test_datasheets_are_matched_from_names_and_properties():
    assert match_datasheet("NVIDIA A100-PG509-200", {"total_memory_bytes": 42297524224}) is DATASHEETS["A100-40GB"]
    assert match_datasheet("NVIDIA A100-SXM4-80GB", {}) is DATASHEETS["A100-80GB"]
    # NVML's facts (doctor): the name and memory_total_bytes
    assert match_datasheet("NVIDIA A100-PCIE-40GB", {"memory_total_bytes": 40 << 30}) is DATASHEETS["A100-40GB"]
    assert match_datasheet("NVIDIA H100 80GB HBM3", {}) is DATASHEETS["H100"]
    assert match_datasheet("NVIDIA H100 PCIe", {}) is DATASHEETS["H100-PCIE"]
    for name, key in (("NVIDIA H200", "H200"), ("NVIDIA B200", "B200"), ("Tesla V100-SXM2-16GB", "V100"),
                      ("NVIDIA L4", "L4"), ("AMD Instinct MI300X", "MI300X"), ("AMD Instinct MI250X", "MI250")):
        assert match_datasheet(name, {}) is DATASHEETS[key], name
    # ROCm calls them all "AMD Radeon Graphics": the compute units tell them apart
    assert match_datasheet("AMD Radeon Graphics", {"numSms": 104, "computeMajor": 9}) is DATASHEETS["MI250"]
    assert match_datasheet(None, {"device_vendor": "AMD", "core_count": 304}) is DATASHEETS["MI300X"]
    assert match_datasheet(None, {"device_vendor": "Nvidia", "core_count": 108,
                                  "memory_size": 42_505_273_344}) is DATASHEETS["A100-40GB"]
    assert match_datasheet(None, {"device_vendor": "Nvidia", "core_count": 132, "memory_size": 85 << 30}) \
        is DATASHEETS["H100"]
    assert match_datasheet(None, {"device_vendor": "Nvidia", "core_count": 132, "memory_size": 141 << 30}) \
        is DATASHEETS["H200"]
    assert match_datasheet("Intel(R) Xeon(R) CPU", {}) is None


def test_rates_bound_and_efficiency_against_the_roof():
    peak = Peak("machine", 100e9, 10e9, 0.05, "test")  # ridge: 10 FLOP/B
    compute = rates(10.0, 0.5e9, 0.01e9, peak)  # 50 GFLOP/s at 50 FLOP/B
    assert compute["bound"] == "compute" and compute["efficiency"] == pytest.approx(0.5)
    memory = rates(10.0, 0.02e9, 0.02e9, peak)  # 1 FLOP/B: the roof there is 10 GFLOP/s
    assert memory["bound"] == "memory" and memory["efficiency"] == pytest.approx(0.2)
    assert rates(10.0, 1e6, None, None) == {"flops_per_s": 1e8, "bytes_per_s": None, "intensity": None,
                                            "bound": None, "efficiency": None}


def test_tensorflow_layers_from_node_paths():
    layers = {"stem_conv", "block_bn1", "lstm", "head"}
    assert tf_layer("cnn_1/stem_conv_1/convolution:_MklNativeConv2D", layers, "cnn") == "stem_conv"
    assert tf_layer("gradient_tape/cnn_1/block_bn1_1/batchnorm/mul:Mul", layers, "cnn") == "block_bn1:backward"
    # the LSTM model's own scope is named like its layer; its head is still the head
    assert tf_layer("lstm_1/head_1/MatMul:MatMul", layers, "lstm") == "head"
    assert tf_layer("lstm_1/lstm_1/while/MatMul:MatMul", layers, "lstm") == "lstm"
    assert tf_layer("sgd/AssignSubVariableOp:AssignSubVariableOp", layers, "cnn") == OPTIMIZER
    assert tf_layer("sparse_categorical_crossentropy/Sum:Sum", layers, "cnn") == "loss"
    assert tf_layer("AddN_3:AddN", layers, "cnn") == FRAMEWORK


def _trace(path, gpu: bool):
    """A Kineto trace with xprof's layer scopes: forward ops on the main thread, their
    backward functions (by sequence number) on another, a kernel launched from one."""
    events = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 1000,
               "pid": 1, "tid": 1, "args": {}}]
    for index, layer in enumerate(("stem_conv", "head")):
        start = 10 + 100 * index
        events += [
            {"ph": "X", "cat": "user_annotation", "name": LAYER_SCOPE + layer, "ts": start, "dur": 50, "pid": 1,
             "tid": 1, "args": {}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": start + 5, "dur": 30, "pid": 1, "tid": 1,
             "args": {"External id": 10 + index, "Sequence number": 40 + index, "Input Dims": [[4, 8], [8, 10]],
                      "Input type": ["float", "float"]}},
            {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: MmBackward0",
             "ts": 600 - 100 * index, "dur": 60, "pid": 1, "tid": 2, "args": {"External id": 20 + index,
                                                                             "Sequence number": 40 + index}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 610 - 100 * index, "dur": 20, "pid": 1,
             "tid": 2, "args": {"External id": 30 + index}},
        ]
        if gpu:
            events += [
                {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": start + 10, "dur": 5,
                 "pid": 1, "tid": 1, "args": {"correlation": 100 + index, "External id": 10 + index}},
                {"ph": "X", "cat": "kernel", "name": "gemm_kernel", "ts": start + 20, "dur": 8, "pid": 0,
                 "tid": 7, "args": {"correlation": 100 + index, "device": 0, "stream": 7, "External id": 10 + index}},
            ]
    document = {"traceEvents": events}
    if gpu:
        document["deviceProperties"] = [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "totalGlobalMem": 85_000_000_000}]
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("gpu", [False, True])
def test_the_reader_gives_each_event_its_layer_whole_in_segments_or_spilled(tmp_path, gpu):
    path = _trace(tmp_path / "trace.json", gpu)
    whole = read_kineto(path)
    layers = defaultdict(set)
    for event in whole.events:
        layers[event.layer].add((event.name, event.kind))
    assert ("aten::mm", "cpu_op") in layers["stem_conv"] and ("aten::mm", "cpu_op") in layers["head:backward"]
    assert ("autograd::engine::evaluate_function: MmBackward0", "cpu_op") in layers["stem_conv:backward"]
    if gpu:
        assert ("gemm_kernel", "kernel") in layers["head"]  # the kernel takes its launcher's layer
    shapes = {event.shapes for event in whole.events if event.name == "aten::mm" and event.layer == "head"}
    assert shapes == {'[[[4, 8], [8, 10]],["float", "float"],[]]'}
    # stored as it is read: in segments (a CPU trace), or spilled to disk (a GPU's)
    parts = []
    rest = read_kineto(path, on_segment=parts.append, segment_events=2, spill_bytes=1)
    pieces = [event for part in parts + [rest] for event in part.events]
    assert sorted((e.name, e.start_ns, e.layer, e.shapes) for e in pieces) == sorted(
        (e.name, e.start_ns, e.layer, e.shapes) for e in whole.events)


def test_the_a100_fixture_has_a_datasheet_but_no_shapes():
    trace = read_kineto(fixture_path("kineto", "a100_alexnet_train.json.gz"))
    facts = trace.devices["cuda:0"]
    assert match_datasheet(facts["name"], facts) is DATASHEETS["A100-40GB"]
    assert not any(trace.events.shapes)  # recorded without record_shapes: its GEMMs stay unmodelled


def test_mi250_gemm_flops_equal_an_independent_count_of_its_input_dims():
    path = fixture_path("kineto", "mi250_minitoy_train.json.gz")
    document = json.loads(gzip.decompress(path.read_bytes()))
    expected = 0  # 2 M K N per GEMM, read straight from the JSON
    for event in document["traceEvents"]:
        dims = event.get("args", {}).get("Input Dims")
        if event.get("cat") == "cpu_op" and event["name"] == "aten::mm":
            expected += 2 * dims[0][0] * dims[0][1] * dims[1][1]
        elif event.get("cat") == "cpu_op" and event["name"] == "aten::addmm":
            expected += 2 * dims[1][0] * dims[1][1] * dims[2][1]
    trace = read_kineto(path)
    counted = 0
    for event in trace.events:
        if event.kind == "cpu_op" and event.name in ("aten::mm", "aten::addmm"):
            counted += op_cost(event.name, event.shapes).flops
    assert expected > 0 and counted == expected
