"""The Kineto (PyTorch profiler) trace reader, on real traces from real GPUs and a real
torch.profiler run on CPU.

The literal figures below were counted from the fixtures with a separate throwaway
script (json + gzip, no code from profiler/), not with the reader under test.
"""

import gzip
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fixture_path, repeated_trace
from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, NotInTimeOrder, TraceData, TraceFormatError
from profiler.traces.kineto import read_kineto

A100 = "NVIDIA A100-PG509-200"
MI250 = "AMD Radeon Graphics"  # what ROCm 6.2 reports for an MI250 GCD


def kineto_fixture(name):
    return fixture_path("kineto", name)


@pytest.mark.parametrize(
    "name, facts",
    [
        (
            "a100_alexnet_train.json.gz",
            dict(total=1408, kernels=79, kernel_ns=10_692_000, memcpy=16, memset=3, cpu_ops=359,
                 runtime=361, steps=[], memory=0, devices=8, device_name=A100),
        ),
        (
            # CUPTI range-profiler mode: kernels appear as cat "cuda_profiler_range",
            # which is not a `kernel` event, so the trace holds no kernels at all
            "a100_cupti_counters.json.gz",
            dict(total=4222, kernels=0, kernel_ns=0, memcpy=0, memset=0, cpu_ops=375,
                 runtime=1862, steps=[], memory=0, devices=8, device_name=A100),
        ),
        (
            "cpu_only.json.gz",
            dict(total=30, kernels=0, kernel_ns=0, memcpy=0, memset=0, cpu_ops=4,
                 runtime=0, steps=[551], memory=0, devices=0, device_name=None),
        ),
        (
            # ProfilerStep#1 is there twice, once as gpu_user_annotation: one step
            "mi250_minitoy_train.json.gz",
            dict(total=220, kernels=14, kernel_ns=110_881, memcpy=2, memset=0, cpu_ops=70,
                 runtime=21, steps=[1, 2], memory=0, devices=4, device_name=MI250),
        ),
    ],
)
def test_fixture_figures(name, facts):
    trace = read_kineto(kineto_fixture(name))
    assert trace.source_format == "kineto"
    assert trace.total_events == facts["total"]
    assert trace.count(KERNEL) == facts["kernels"]
    assert trace.total_dur_ns(KERNEL) == facts["kernel_ns"]
    assert trace.count(MEMCPY) == facts["memcpy"]
    assert trace.count(MEMSET) == facts["memset"]
    assert trace.count(CPU_OP) == facts["cpu_ops"]
    assert trace.count(RUNTIME) == facts["runtime"]
    assert [s.step for s in trace.steps] == facts["steps"]
    assert len(trace.memory) == facts["memory"]
    assert len(trace.devices) == facts["devices"]
    if facts["device_name"]:
        assert trace.devices["cuda:0"]["name"] == facts["device_name"]


def test_a100_device_facts_and_tracks():
    trace = read_kineto(kineto_fixture("a100_alexnet_train.json.gz"))
    assert trace.devices["cuda:7"]["total_memory_bytes"] == 42_297_524_224
    assert trace.devices["cuda:7"]["numSms"] == 108
    kernels = [e for e in trace.events if e.kind == KERNEL]
    assert {(e.device, e.stream) for e in kernels} == {("cuda:0", "7"), ("cuda:0", "20")}
    assert {e.device for e in trace.events if e.kind in (CPU_OP, RUNTIME)} == {"cpu"}
    assert {e.stream for e in trace.events if e.kind == CPU_OP} == {"2869224"}


def test_a100_kernels_link_to_the_op_that_launched_them():
    """In this trace a kernel's External id is its correlation id, not its op's: linking
    by External id would name aten::detach for the first memcpy (an id collision)."""
    trace = read_kineto(kineto_fixture("a100_alexnet_train.json.gz"))
    by_start = {(e.name, e.start_ns): e for e in trace.events}
    conv = by_start["cudnn_ampere_scudnn_128x64_relu_xregs_large_nn_v1", 1_695_835_583_881_608_000]
    assert (conv.op, conv.correlation, conv.dur_ns) == ("aten::cudnn_convolution", 5112, 1_035_000)
    first_copy = by_start["Memcpy HtoD (Pageable -> Device)", 1_695_835_572_943_613_000]
    assert first_copy.op == "aten::copy_"
    device_events = [e for e in trace.events if e.kind in (KERNEL, MEMCPY, MEMSET)]
    assert all(e.op for e in device_events)
    gemms = {e.op for e in device_events if e.name == "ampere_sgemm_32x32_sliced1x4_tn"}
    assert gemms == {"aten::addmm"}


def test_mi250_links_agree_with_external_ids():
    """Newer traces carry the op's External id on the kernel; both links must agree."""
    path = kineto_fixture("mi250_minitoy_train.json.gz")
    raw = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    op_by_id = {e["args"]["External id"]: e["name"] for e in raw if e.get("cat") == "cpu_op"}
    expected = sorted(
        (round(e["ts"] * 1000), op_by_id[e["args"]["External id"]])
        for e in raw
        if e.get("cat") in ("kernel", "gpu_memcpy")
    )
    trace = read_kineto(path)
    assert sorted((e.start_ns, e.op) for e in trace.events if e.kind in (KERNEL, MEMCPY)) == expected
    assert {e.device for e in trace.events if e.kind == KERNEL} == {"cuda:2"}


def test_mi250_steps_in_nanoseconds():
    trace = read_kineto(kineto_fixture("mi250_minitoy_train.json.gz"))
    first, second = trace.steps
    assert (first.step, first.wall_ns, first.start_ns, first.profiled) == (1, 9_288_291, 4_203_669_603_187_439, True)
    assert (second.step, second.wall_ns) == (2, 49_073)
    assert sum(1 for e in trace.events if e.step == 1) == 106


def test_cpu_only_step():
    trace = read_kineto(kineto_fixture("cpu_only.json.gz"))
    (step,) = trace.steps
    assert (step.step, step.wall_ns, step.start_ns) == (551, 210_109_162, 1_212_075_529_876_817)
    assert trace.devices == {}


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "mi250_minitoy_train.json.gz"])
def test_self_time_counts_each_nanosecond_once(name):
    trace = read_kineto(kineto_fixture(name))
    ops = [e for e in trace.events if e.kind == CPU_OP]
    assert all(0 <= e.self_ns <= e.dur_ns for e in ops)
    assert sum(e.self_ns for e in ops) <= _top_level_dur_ns(ops)
    assert sum(e.self_ns for e in ops) < sum(e.dur_ns for e in ops)  # ops do nest


def _top_level_dur_ns(ops):
    """Total duration of the ops no other op on the same thread encloses."""
    total = 0
    for thread in {e.stream for e in ops}:
        covered_until = None
        for op in sorted((e for e in ops if e.stream == thread), key=lambda e: (e.start_ns, -e.dur_ns)):
            if covered_until is None or op.start_ns >= covered_until:
                total += op.dur_ns
                covered_until = op.start_ns + op.dur_ns
    return total


@pytest.fixture(scope="module")
def torch_trace(tmp_path_factory):
    """A real torch.profiler trace of three profiled steps of a tiny Linear, on CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    path = tmp_path_factory.mktemp("torch") / "linear.pt.trace.json"
    model = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with profile(
        activities=[ProfilerActivity.CPU],
        profile_memory=True,
        schedule=schedule(wait=0, warmup=1, active=3, repeat=1),
        on_trace_ready=lambda prof: prof.export_chrome_trace(str(path)),
    ) as prof:
        for _ in range(4):
            model(x).sum().backward()
            prof.step()
    return path


@pytest.mark.slow
def test_real_torch_trace(torch_trace):
    trace = read_kineto(torch_trace)
    ops = [e for e in trace.events if e.kind == CPU_OP]
    assert any(e.name == "aten::addmm" for e in ops)
    assert all(e.op == e.name and e.device == "cpu" for e in ops)
    assert [s.step for s in trace.steps] == [1, 2, 3]
    assert all(s.profiled and s.wall_ns > 0 for s in trace.steps)
    assert {e.step for e in ops if e.name == "aten::addmm"} == {1, 2, 3}
    assert sum(e.self_ns for e in ops) <= _top_level_dur_ns(ops)
    assert trace.memory
    assert any(m.bytes > 0 for m in trace.memory) and any(m.bytes < 0 for m in trace.memory)
    assert {m.device for m in trace.memory} == {"cpu"}
    assert all(m.total_allocated is not None and m.allocator is None for m in trace.memory)
    assert trace.count(KERNEL) == 0


@pytest.mark.slow
def test_gzipped_trace_reads_the_same(torch_trace, tmp_path):
    zipped = tmp_path / "linear.pt.trace.json.gz"
    with torch_trace.open("rb") as src, gzip.open(zipped, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert read_kineto(zipped) == read_kineto(torch_trace)


def write_trace(tmp_path, name, events, **top):
    path = tmp_path / name
    path.write_text(json.dumps({"traceEvents": events, **top}))
    return path


CPU_OP_EVENT = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 10.0,
                "dur": 5.0, "args": {"External id": 7}}
KERNEL_EVENT = {"ph": "X", "cat": "kernel", "name": "gemm", "pid": 0, "tid": 7, "ts": 20.5, "dur": 1.001,
                "args": {"External id": 7, "correlation": 99, "device": 0, "stream": 7}}
MEMORY_EVENT = {"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "pid": 1, "tid": 1, "ts": 11.0,
                "args": {"Bytes": 512, "Total Allocated": 512, "Total Reserved": 2048,
                         "Device Type": 1, "Device Id": 3}}


def test_external_id_links_when_the_runtime_call_is_absent(tmp_path):
    trace = read_kineto(write_trace(tmp_path, "no_runtime.json", [CPU_OP_EVENT, KERNEL_EVENT]))
    kernel = next(e for e in trace.events if e.kind == KERNEL)
    assert (kernel.op, kernel.start_ns, kernel.dur_ns, kernel.device, kernel.stream) == (
        "aten::mm", 20_500, 1_001, "cuda:0", "7"  # 1.001 * 1000 is 1000.99999...
    )


def test_cuda_memory_event_and_dropped_events(tmp_path):
    flow = {"ph": "s", "id": 99, "pid": 1, "tid": 1, "ts": 12, "cat": "ac2g", "name": "ac2g"}
    annotation = dict(CPU_OP_EVENT, cat="user_annotation", name="## forward ##")
    trace = read_kineto(write_trace(tmp_path, "mixed.json", [MEMORY_EVENT, flow, annotation, CPU_OP_EVENT]))
    assert trace.total_events == 4
    assert [e.name for e in trace.events] == ["aten::mm"]
    (memory,) = trace.memory
    assert (memory.ts_ns, memory.bytes, memory.total_allocated, memory.total_reserved, memory.device) == (
        11_000, 512, 512, 2048, "cuda:3"
    )


def _gzip_truncated(tmp_path, name):
    data = gzip.compress(json.dumps({"traceEvents": [CPU_OP_EVENT] * 50}).encode())
    (tmp_path / name).write_bytes(data[: len(data) // 2])


def _bytes(content):
    return lambda tmp_path, name: (tmp_path / name).write_bytes(content)


def _events(*events, **top):
    return lambda tmp_path, name: write_trace(tmp_path, name, list(events), **top)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_gzip_truncated, id="truncated-gzip"),
        pytest.param(_bytes(b"\x1f\x8b" + b"not really gzip" * 4), id="corrupt-gzip"),
        pytest.param(_bytes(b""), id="empty"),
        pytest.param(_bytes(gzip.compress(b"")), id="empty-gzip"),
        pytest.param(_bytes(b"PK\x03\x04 a zip, not a trace"), id="not-json"),
        pytest.param(_bytes(b'{"traceEvents": ["\xff\xfe"]}'), id="not-utf8"),
        pytest.param(_bytes(b"[" * 100_000), id="nested-too-deep"),
        pytest.param(_bytes(b"[]"), id="json-array"),
        pytest.param(_bytes(b'{"schemaVersion": 1}'), id="no-traceEvents"),
        pytest.param(_bytes(b'{"traceEvents": {}}'), id="traceEvents-not-list"),
        pytest.param(_events(42), id="event-not-object"),
        pytest.param(_events(dict(CPU_OP_EVENT, ts="10.0")), id="ts-string"),
        pytest.param(_events(dict(CPU_OP_EVENT, dur=None)), id="dur-null"),
        pytest.param(_events(dict(CPU_OP_EVENT, ts=float("nan"))), id="ts-nan"),
        pytest.param(_events(dict(CPU_OP_EVENT, ts=1e308)), id="ts-overflows"),
        pytest.param(_events(dict(CPU_OP_EVENT, ts=True)), id="ts-boolean"),
        pytest.param(_events(dict(CPU_OP_EVENT, name=["aten::mm"])), id="name-list"),
        pytest.param(_events(dict(CPU_OP_EVENT, tid=[1])), id="tid-list"),
        pytest.param(_events(dict(CPU_OP_EVENT, args={"External id": [7]})), id="external-id-list"),
        pytest.param(_events(dict(KERNEL_EVENT, args="device 0")), id="args-not-object"),
        pytest.param(_events(dict(KERNEL_EVENT, args={"stream": 7})), id="kernel-without-device"),
        pytest.param(_events(dict(MEMORY_EVENT, args={"Bytes": "512", "Device Type": 0})), id="bytes-string"),
        pytest.param(_events(deviceProperties={"id": 0}), id="deviceProperties-not-list"),
        pytest.param(_events(deviceProperties=[{"name": "A100"}]), id="device-without-id"),
        pytest.param(_events(dict(KERNEL_EVENT, dur=-5)), id="negative-dur"),
        pytest.param(_events(dict(CPU_OP_EVENT, cat="user_annotation", name="ProfilerStep#1", dur=-5)),
                     id="negative-step"),
        pytest.param(_events(), id="no-events"),
    ],
)
def test_bad_input_raises_trace_format_error_naming_the_file(tmp_path, make):
    name = "bad_trace.pt.trace.json"
    make(tmp_path, name)
    with pytest.raises(TraceFormatError, match="bad_trace.pt.trace.json") as raised:
        read_kineto(tmp_path / name)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("event,message", [
    (dict(KERNEL_EVENT, dur=-5), "traceEvents[0]: 'dur' is -5, a negative duration"),
    (dict(KERNEL_EVENT, args="device 0"), "Expected `object`, got `str` in the args at `$.traceEvents[0]`"),
])
def test_bad_event_messages(tmp_path, event, message):
    with pytest.raises(TraceFormatError) as raised:
        read_kineto(write_trace(tmp_path, "t.json", [event]))
    assert str(raised.value) == f"{tmp_path / 't.json'}: {message}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def mi250_document():
    return json.loads(gzip.decompress(kineto_fixture("mi250_minitoy_train.json.gz").read_bytes()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON_VALUES)
def test_any_corrupted_field_gives_a_trace_or_a_trace_format_error(mi250_document, tmp_path, data, value):
    """Put an arbitrary JSON value into one field (top level, event or args) of a real trace."""
    document = json.loads(json.dumps(mi250_document))
    event = data.draw(st.sampled_from(document["traceEvents"]))
    target = data.draw(st.sampled_from([document, event, event.get("args", event)]))
    target[data.draw(st.sampled_from(sorted(target)))] = value
    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(document))
    try:
        assert isinstance(read_kineto(path), TraceData)
    except TraceFormatError as err:
        assert "fuzzed.json" in str(err) and "\n" not in str(err)


# Streaming: the reader takes traceEvents a piece of `chunk_bytes` at a time. Pieces as
# small as one byte must give what one piece holding the whole file gives.

WHOLE_FILE = 1 << 30


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "a100_cupti_counters.json.gz",
                                  "cpu_only.json.gz", "mi250_minitoy_train.json.gz"])
@pytest.mark.parametrize("chunk_bytes", [1, 97, 4096])
def test_pieces_read_like_the_whole_file(name, chunk_bytes):
    path = kineto_fixture(name)
    assert read_kineto(path, chunk_bytes=chunk_bytes) == read_kineto(path, chunk_bytes=WHOLE_FILE)


@pytest.mark.slow
def test_real_torch_trace_in_pieces(torch_trace):
    assert read_kineto(torch_trace, chunk_bytes=113) == read_kineto(torch_trace, chunk_bytes=WHOLE_FILE)


# Text that looks like an event boundary ("},") inside strings, nested args and what
# follows the list; keys of the object on both sides of traceEvents.
AWKWARD_EVENTS = [
    dict(CPU_OP_EVENT, name='aten::mm "}, {" [x]', args={"External id": 7, "Input Dims": [{"a": 1}, {"b": []}]}),
    dict(KERNEL_EVENT, name="gemm},{\\\"", ts=10.5),
    {"ph": "s", "id": 1, "pid": 1, "tid": 1, "ts": 11, "cat": "ac2g", "name": "}, {"},
    dict(MEMORY_EVENT, ts=12.25),
    dict(CPU_OP_EVENT, name="aten::add_ ünïcode 🙂", ts=13.0, dur=1.5, args={}),
    dict(KERNEL_EVENT, name="k2", ts=14.0, args=dict(KERNEL_EVENT["args"], correlation=100)),
]


@pytest.mark.parametrize("layout", [dict(indent=2), dict(separators=(",", ":")), dict()])
def test_awkward_text_at_piece_edges(tmp_path, layout):
    document = {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "GPU ]},{"}],
                "traceEvents": AWKWARD_EVENTS,
                "distributedInfo": {"ranks": [{"r": 0}, {"r": 1}]}, "traceName": "x]},{"}
    path = tmp_path / "awkward.json"
    path.write_text(json.dumps(document, ensure_ascii=False, **layout))
    whole = read_kineto(path, chunk_bytes=WHOLE_FILE)
    assert [e.name for e in whole.events] == ['aten::mm "}, {" [x]', 'gemm},{\\"', "aten::add_ ünïcode 🙂", "k2"]
    assert [m.ts_ns for m in whole.memory] == [12_250]
    assert whole.total_events == 6 and whole.devices["cuda:0"]["name"] == "GPU ]},{"
    for chunk_bytes in range(1, 120, 7):
        assert read_kineto(path, chunk_bytes=chunk_bytes) == whole, chunk_bytes


def test_keys_after_the_list_are_read(tmp_path):
    path = tmp_path / "late_devices.json"
    path.write_text(json.dumps({"traceEvents": [CPU_OP_EVENT, KERNEL_EVENT],
                                "deviceProperties": [{"id": 0, "name": "A100"}]}))
    for chunk_bytes in (5, WHOLE_FILE):
        trace = read_kineto(path, chunk_bytes=chunk_bytes)
        assert trace.devices == {"cuda:0": {"name": "A100"}} and len(trace.events) == 2


@pytest.mark.parametrize("chunk_bytes", [16, 1000, WHOLE_FILE])
def test_truncated_trace_is_one_clear_line(tmp_path, chunk_bytes):
    text = json.dumps({"traceEvents": [dict(CPU_OP_EVENT, ts=float(i)) for i in range(200)]}, indent=1)
    for cut in (len(text) // 3, len(text) - 5, len(text) - 1):
        path = tmp_path / "cut.pt.trace.json"
        path.write_text(text[:cut])
        with pytest.raises(TraceFormatError, match="cut.pt.trace.json") as raised:
            read_kineto(path, chunk_bytes=chunk_bytes)
        message = str(raised.value)
        assert "\n" not in message and ("truncated" in message or "not JSON" in message), message
    path.write_text(text[:len(text) // 3])
    with pytest.raises(TraceFormatError, match=r"truncated: the input ends inside traceEvents, after \d+ complete"):
        read_kineto(path, chunk_bytes=16)


@pytest.mark.parametrize("chunk_bytes", [1, 64, WHOLE_FILE])
def test_a_bad_event_is_named_by_its_index_in_the_whole_list(tmp_path, chunk_bytes):
    events = [dict(CPU_OP_EVENT, ts=float(i)) for i in range(60)]
    events[41] = dict(CPU_OP_EVENT, ts="soon")
    events[52] = dict(KERNEL_EVENT, args={"stream": 7})
    path = write_trace(tmp_path, "bad41.json", events)
    with pytest.raises(TraceFormatError, match=r"traceEvents\[41\]\.ts"):
        read_kineto(path, chunk_bytes=chunk_bytes)
    events[41] = dict(CPU_OP_EVENT, ts=41.0)
    path = write_trace(tmp_path, "bad52.json", events)
    with pytest.raises(TraceFormatError, match=r"traceEvents\[52\]: 'device' and 'stream' are needed"):
        read_kineto(path, chunk_bytes=chunk_bytes)


def test_odd_args_of_a_dropped_event_do_not_fail_the_trace(tmp_path):
    flow = {"ph": "f", "cat": "ac2g", "name": "ac2g", "pid": 1, "tid": 1, "ts": 12,
            "args": {"External id": "not a number", "correlation": [1]}}
    path = write_trace(tmp_path, "flow.json", [CPU_OP_EVENT, flow, KERNEL_EVENT, dict(CPU_OP_EVENT, args=None)])
    trace = read_kineto(path, chunk_bytes=40)
    assert [e.name for e in trace.events] == ["aten::mm", "gemm", "aten::mm"]
    assert next(e for e in trace.events if e.kind == KERNEL).op == "aten::mm"
    bad = write_trace(tmp_path, "bad_args.json", [CPU_OP_EVENT, dict(KERNEL_EVENT, args={"correlation": "99"})])
    with pytest.raises(TraceFormatError, match=r"traceEvents\[1\]"):
        read_kineto(bad)


def test_between_pieces_can_stop_the_reading(tmp_path):
    path = write_trace(tmp_path, "long.json", [dict(CPU_OP_EVENT, ts=float(i)) for i in range(100)])
    calls = []

    class Enough(Exception):
        pass

    def between_pieces():
        calls.append(1)
        if len(calls) == 3:
            raise Enough

    with pytest.raises(Enough):
        read_kineto(path, chunk_bytes=200, between_pieces=between_pieces)
    assert len(calls) == 3


# Segments: a trace of host ops alone is handed over in segments as it is read; joined,
# they are the whole trace.


def _read_in_segments(path, segment_events, chunk_bytes=2048):
    segments = []
    rest = read_kineto(path, chunk_bytes=chunk_bytes, on_segment=segments.append, segment_events=segment_events)
    return segments, rest


def _joined(segments, rest):
    return ([e for s in [*segments, rest] for e in s.events], [m for s in [*segments, rest] for m in s.memory])


@pytest.fixture(scope="module")
def long_torch_trace(torch_trace, tmp_path_factory):
    """The real CPU trace's events 40 times over (about 5,000 events, 120 steps)."""
    document = json.loads(torch_trace.read_text())
    return repeated_trace(document, 40, tmp_path_factory.mktemp("long") / "long.pt.trace.json")


@pytest.mark.slow
@pytest.mark.parametrize("segment_events", [1, 64, 1000])
def test_segments_join_to_the_whole_trace(long_torch_trace, segment_events):
    whole = read_kineto(long_torch_trace)
    segments, rest = _read_in_segments(long_torch_trace, segment_events)
    assert len(segments) >= len(whole.events) // (segment_events + 400)  # cut all along
    assert _joined(segments, rest) == (list(whole.events), list(whole.memory))
    assert (rest.steps, rest.total_events, rest.devices) == (whole.steps, whole.total_events, whole.devices)
    assert [s.step for s in whole.steps] == list(range(1, 121))


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "a100_cupti_counters.json.gz",
                                  "mi250_minitoy_train.json.gz", "cpu_only.json.gz"])
def test_fixtures_in_segments(name):
    """A GPU's trace (deviceProperties) is never cut: its runtime calls come after all
    ops. The CPU one is, and joins up to the whole (a trace without step markers is one
    step, as import makes it)."""
    path = kineto_fixture(name)
    segments, rest = _read_in_segments(path, 1, chunk_bytes=512)
    assert bool(segments) == (name == "cpu_only.json.gz")
    whole = _whole_with_its_step(path)
    assert _joined(segments, rest) == (list(whole.events), list(whole.memory))


def test_no_segments_without_steps(tmp_path):
    path = write_trace(tmp_path, "stepless.json", [dict(CPU_OP_EVENT, ts=10.0 * i) for i in range(300)])
    segments, rest = _read_in_segments(path, 1, chunk_bytes=256)
    assert segments == [] and len(rest.events) == 300


@pytest.mark.slow
@pytest.mark.parametrize("late", [
    pytest.param(dict(CPU_OP_EVENT, ts=0.5), id="op-before-the-cut"),
    pytest.param(dict(CPU_OP_EVENT, cat="cuda_runtime", name="cudaLaunchKernel", ts=1e6), id="runtime-call"),
    pytest.param(dict(KERNEL_EVENT, ts=1e6), id="kernel"),
    pytest.param(dict(CPU_OP_EVENT, cat="user_annotation", name="ProfilerStep#0", ts=0.5, dur=1e6), id="early-step"),
])
def test_an_event_against_time_order_voids_the_segments(long_torch_trace, tmp_path, late):
    document = json.loads(long_torch_trace.read_text())
    document["traceEvents"].append(dict(late, pid=document["traceEvents"][-3].get("pid", 1)))
    path = write_trace(tmp_path, "late.json", document["traceEvents"])
    given = []
    with pytest.raises(NotInTimeOrder):
        read_kineto(path, chunk_bytes=2048, on_segment=given.append, segment_events=64)
    assert given  # segments had been given, and are void
    assert read_kineto(path).total_events == len(document["traceEvents"])  # read whole, it is fine


def test_ops_then_memory_events_leave_little_for_the_end(tmp_path):
    """Kineto writes every memory event after all the ops. Once pieces bring no more
    ops, the ops held are cut at once, and memory events go in batches, so the rest
    left for the end (stored after the reading, on the critical path) is small."""
    steps = [dict(CPU_OP_EVENT, cat="user_annotation", name=f"ProfilerStep#{i}", ts=100.0 * i, dur=100.0)
             for i in range(50)]
    ops = [dict(CPU_OP_EVENT, ts=100.0 * i + 10, dur=50.0) for i in range(50)]
    memory = [dict(MEMORY_EVENT, ts=100.0 * i + 20) for i in range(50)]
    path = write_trace(tmp_path, "ops_then_memory.json", [e for pair in zip(steps, ops) for e in pair] + memory)
    segments, rest = _read_in_segments(path, segment_events=16, chunk_bytes=1024)
    assert len(rest.events) <= 2 and len(rest.memory) < 16
    assert any(not s.events and s.memory for s in segments)  # memory on its own
    whole = read_kineto(path)
    assert _joined(segments, rest) == (list(whole.events), list(whole.memory))


# A GPU's trace cannot be cut as it is read: past a number of events held, they go to
# disk (profiler/traces/kineto_spill.py) and come back at the end in time-ordered segments.


def _sorted_events(traces):
    return sorted((e for t in traces for e in t.events), key=repr)


def _read_spilled(path, segment_events, spill_bytes):
    segments = []
    rest = read_kineto(path, chunk_bytes=1024, on_segment=segments.append,
                       segment_events=segment_events, spill_bytes=spill_bytes)
    return segments, rest


def _whole_with_its_step(path):
    """The trace read whole, given a step spanning it if it has none, as import does."""
    from profiler.traces.events import whole_trace_step

    whole = read_kineto(path)
    whole_trace_step(whole)
    return whole


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "a100_cupti_counters.json.gz",
                                  "mi250_minitoy_train.json.gz"])
@pytest.mark.parametrize("segment_events,spill_bytes", [(1, 1), (8, 4_000), (64, 50_000)])
def test_a_gpu_trace_held_on_disk_gives_the_events_read_whole(name, segment_events, spill_bytes):
    path = kineto_fixture(name)
    whole = _whole_with_its_step(path)
    segments, rest = _read_spilled(path, segment_events, spill_bytes)
    assert len(segments) >= len(whole.events) // (segment_events + 200)  # cut all along
    assert _sorted_events([*segments, rest]) == sorted(whole.events, key=repr)
    assert [m for s in [*segments, rest] for m in s.memory] == list(whole.memory)
    assert (rest.steps, rest.devices, rest.total_events) == (whole.steps, whole.devices, whole.total_events)


def test_a_gpu_trace_goes_to_disk_only_past_the_bytes_held(monkeypatch):
    """Held columns of up to SPILL_BYTES stay in memory (the fast path); past that, the
    events go to disk, and the spill says how much it moved."""
    from profiler.traces import kineto_spill

    made = []

    class Counted(kineto_spill.Spill):
        def __init__(self, path):
            super().__init__(path)
            made.append(self)

    monkeypatch.setattr(kineto_spill, "Spill", Counted)
    path = kineto_fixture("a100_alexnet_train.json.gz")
    whole = _whole_with_its_step(path)
    segments, rest = _read_spilled(path, 64, None)
    assert made == [] and segments == [] and list(rest.events) == list(whole.events)
    builder_bytes = []
    original = kineto_spill.Spill.add

    def add(self, builder):
        builder_bytes.append(builder.held_bytes())
        original(self, builder)

    monkeypatch.setattr(kineto_spill.Spill, "add", add)
    budget = 30_000  # a few hundred of the fixture's 818 kept events
    segments, rest = _read_spilled(path, 64, budget)
    assert len(made) == 1 and builder_bytes[0] >= budget
    assert min(builder_bytes[:-1]) >= budget  # moved only once past the budget, but at the end
    assert _sorted_events([*segments, rest]) == sorted(whole.events, key=repr)


def _gpu_shaped_trace(tmp_path, steps=6):
    """Kineto's order for a GPU: two threads' ops (one inside an optimizer scope), then
    runtime calls (some of no duration) with the kernels they launch, a kernel whose
    call is not in the trace, kernels that run into the next step, memory events."""
    ops, calls, device, annotations = [], [], [], []
    for step in range(steps):
        t0 = 1000.0 * step
        annotations.append(dict(CPU_OP_EVENT, cat="user_annotation", name=f"ProfilerStep#{step}",
                                ts=t0, dur=1000.0, args={}))
        annotations.append(dict(CPU_OP_EVENT, cat="user_annotation", name="Optimizer.step#SGD.step",
                                ts=t0 + 600, dur=300.0, args={}))
        for i, (tid, name) in enumerate([(1, "aten::linear"), (2, "aten::relu"), (1, "aten::add_")]):
            start = t0 + 100 + 250 * i
            eid = 100 * step + i
            ops.append(dict(CPU_OP_EVENT, name=name, tid=tid, ts=start, dur=200.0, args={"External id": eid}))
            ops.append(dict(CPU_OP_EVENT, name="aten::empty", tid=tid, ts=start + 10, dur=5.0,
                            args={"External id": eid + 50}))
            correlation = 1000 * step + i
            calls.append(dict(CPU_OP_EVENT, cat="cuda_runtime", name="cudaLaunchKernel", tid=tid,
                              ts=start + 20, dur=0.0 if i == 1 else 3.0,
                              args={"External id": eid, "correlation": correlation}))
            device.append(dict(KERNEL_EVENT, name=f"k{i}", ts=start + 500, dur=400.0,
                               args={"External id": eid, "correlation": correlation,
                                     "device": 0, "stream": 7 + (i == 1)}))
        device.append(dict(KERNEL_EVENT, name="orphan", cat="gpu_memcpy", ts=t0 + 900, dur=1.0,
                           args={"External id": 100 * step, "correlation": -1 - step,
                                 "device": 0, "stream": 9}))
    memory = [dict(MEMORY_EVENT, ts=100.0 * i) for i in range(20)]
    events = annotations + ops + [e for pair in zip(calls, device) for e in pair] + device[len(calls):] + memory
    path = tmp_path / "gpu_shaped.json"  # deviceProperties first, as Kineto writes them
    path.write_text(json.dumps({"deviceProperties": [{"id": 0, "name": "Fake GPU"}], "traceEvents": events}))
    return path


@pytest.mark.parametrize("segment_events", [1, 5, 1000])
@pytest.mark.parametrize("properties_first", [True, False])
def test_links_scopes_and_steps_survive_the_disk(tmp_path, segment_events, properties_first):
    """Where deviceProperties come after the events, cuts by time start and meet the
    runtime calls; the import then reads the trace again with no cut by time."""
    path = _gpu_shaped_trace(tmp_path)
    if not properties_first:
        document = json.loads(path.read_text())
        path.write_text(json.dumps({"traceEvents": document["traceEvents"],
                                    "deviceProperties": document["deviceProperties"]}))
        if segment_events < len(json.loads(path.read_text())["traceEvents"]):  # a cut came first
            with pytest.raises(NotInTimeOrder):
                _read_spilled(path, segment_events, spill_bytes=300)
    whole = read_kineto(path)
    segments = []
    rest = read_kineto(path, chunk_bytes=1024, on_segment=segments.append, segment_events=segment_events,
                       spill_bytes=300, time_cuts=properties_first)
    assert _sorted_events([*segments, rest]) == sorted(whole.events, key=repr)
    by_name = {}
    for e in whole.events:
        by_name.setdefault(e.name, set()).add((e.op, e.step))
    assert by_name["k1"] == {("aten::relu", s) for s in range(6)}  # a call of no duration
    assert by_name["orphan"] == {("aten::linear", s) for s in range(6)}  # by External id
    assert ("Optimizer.step#SGD.step", 0) in by_name["aten::add_"]
    assert by_name["k2"] == {("aten::add_", s + 1) for s in range(5)} | {("aten::add_", None)}


def test_a_spilled_trace_without_steps_is_one_step(tmp_path):
    events = [e for e in json.loads(_gpu_shaped_trace(tmp_path).read_text())["traceEvents"]
              if not e["name"].startswith("ProfilerStep#")]
    path = write_trace(tmp_path, "stepless_gpu.json", events, deviceProperties=[{"id": 0}])
    whole = _whole_with_its_step(path)
    segments, rest = _read_spilled(path, 4, 2)
    assert len(rest.steps) == 1 and rest.steps == whole.steps
    assert _sorted_events([*segments, rest]) == sorted(whole.events, key=repr)


@pytest.mark.parametrize("spill_bytes", [None, 2], ids=["in-memory", "on-disk"])
def test_an_event_of_no_length_at_the_very_end_is_in_the_whole_trace_step(tmp_path, spill_bytes):
    """A trace without steps is one step from its first event to the end of its last:
    every event is in it, one that starts at that end and lasts nothing too."""
    events = [e for e in json.loads(_gpu_shaped_trace(tmp_path).read_text())["traceEvents"]
              if not e["name"].startswith("ProfilerStep#")]
    end = max(e["ts"] + e.get("dur", 0) for e in events if e.get("ph") == "X")
    events.append(dict(CPU_OP_EVENT, name="aten::last", ts=end, dur=0.0, args={}))
    path = write_trace(tmp_path, "stepless_gpu.json", events, deviceProperties=[{"id": 0}])
    segments, rest = _read_spilled(path, 4, spill_bytes)
    stored = [e for t in [*segments, rest] for e in t.events]
    assert [e.step for e in stored if e.name == "aten::last"] == [0]
    assert {e.step for e in stored} == {0} and len(rest.steps) == 1


def test_a_full_temporary_directory_is_one_clear_line(tmp_path, monkeypatch):
    import sqlite3

    from profiler.traces import kineto_spill
    from profiler.errors import UserError

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    path = _gpu_shaped_trace(tmp_path)
    monkeypatch.setattr(kineto_spill.sqlite3, "connect", full)
    with pytest.raises(UserError, match=r"^\S+gpu_shaped.json: cannot hold its events in a temporary "
                                        r"file \(database or disk is full\); set SQLITE_TMPDIR"):
        _read_spilled(path, 4, 2)


def test_a_wrong_type_early_in_a_long_trace_fails_at_once(tmp_path, monkeypatch):
    """A piece that parses but holds a value of the wrong type is the trace's fault,
    not a bad cut: the reader says so there, rather than buffering the rest of the file
    (msgspec's ValidationError is a DecodeError too)."""
    from profiler.traces import json_pieces

    events = [dict(CPU_OP_EVENT, ts=10.0 * i) for i in range(4000)]
    events[40]["dur"] = "x"
    path = write_trace(tmp_path, "wrong_early.json", events)
    monkeypatch.setattr(json_pieces, "MAX_UNCUT_BYTES", 16 << 10)  # less than the file after it
    assert path.stat().st_size > 100 << 10
    with pytest.raises(TraceFormatError, match=r"wrong_early.json: .*`\$\.traceEvents\[40\]\.dur`"):
        read_kineto(path, chunk_bytes=1024)
