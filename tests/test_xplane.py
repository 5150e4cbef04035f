"""The XSpace (`*.xplane.pb`) reader: real GPU profiles from ../shared/fixtures, an
NVIDIA-shaped XSpace built here with TensorFlow's own protos, and a real TF 2 CPU
profile written by a subprocess (TensorFlow and torch never share a process)."""

import gzip
import json
import random
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import REPO_ROOT, fixture_path, last_json_line, run_python

from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, TraceFormatError
from profiler.traces.xplane import load_xplane_pb2, read_xplane


# --- real GPU profiles (JAX/XLA on AMD Instinct, TraceLens test data) -----------------


def test_mi300x_conv_kernels_over_eight_gpus():
    path = fixture_path("xplane", "mi300x_jax_conv.xplane.pb")
    space = load_xplane_pb2().XSpace.FromString(path.read_bytes())
    assert len(space.planes) == 11  # /host:metadata, GPU:0..7, /host:CPU, Task Environment

    trace = read_xplane(path)

    assert trace.source_format == "xplane"
    assert trace.total_events == 3650  # 235 device events + 3,415 host events
    assert trace.count(KERNEL) == 235
    assert trace.total_dur_ns(KERNEL) == 28_137_077  # 28.137 ms
    assert trace.count(MEMCPY) == trace.count(MEMSET) == trace.count(CPU_OP) == 0
    kernels = [e for e in trace.events if e.kind == KERNEL]
    assert Counter(e.device for e in kernels) == {
        "/device:GPU:0": 60,
        **{f"/device:GPU:{i}": 25 for i in range(1, 8)},
    }
    assert Counter(e.stream for e in kernels if e.device == "/device:GPU:0") == {
        "Stream #15(Kernel)": 9,
        "Stream #16(Kernel)": 34,
        "Stream #17(Kernel)": 9,
        "Stream #18(Kernel)": 8,
    }
    assert all(e.correlation is not None for e in kernels)
    assert sum(e.op is not None for e in kernels) == 198  # the 37 rocclr copy blits carry no hlo_op
    assert sorted(trace.devices) == [f"/device:GPU:{i}" for i in range(8)]
    assert trace.devices["/device:GPU:3"] == {
        "device_vendor": "AMD",
        "clock_rate": 2_100_000,  # kHz
        "core_count": 304,
        "memory_size": 206_141_652_992,
        "memory_bandwidth": 2_662_400_000_000,
        "compute_cap_major": 9,
        "compute_cap_minor": 4,
    }
    # hipModuleLaunchKernel & co. on the host threads, linked to kernels by correlation id
    assert trace.count(RUNTIME) == 234
    # the BFC allocators of all eight GPUs: every allocation freed within the trace
    assert len(trace.memory) == 230
    assert sum(m.bytes > 0 for m in trace.memory) == sum(m.bytes < 0 for m in trace.memory) == 115
    assert sum(m.bytes for m in trace.memory) == 0
    assert {m.device for m in trace.memory} == {f"/device:GPU:{i}" for i in range(8)}
    assert trace.steps == []


def test_fused_attention_kernels_carry_their_xla_op():
    path = fixture_path("xplane", "gpu_jax_fused_attention.xplane.pb")
    space = load_xplane_pb2().XSpace.FromString(path.read_bytes())
    assert len(space.planes) == 12

    trace = read_xplane(path)

    kernels = [e for e in trace.events if e.kind == KERNEL]
    assert len(kernels) == 150
    assert trace.total_dur_ns(KERNEL) == 12_133_585  # 12.134 ms
    assert {(e.device, e.stream) for e in kernels} == {("/device:GPU:0", "Stream #2")}
    # tf_op is "XlaModule:" on every kernel (JAX), which names no op: hlo_op does
    assert all(e.op for e in kernels)
    assert Counter(e.op for e in kernels)["gemm_fusion_dot"] == 5
    first = min(kernels, key=lambda e: e.start_ns)
    assert (first.name, first.op, first.start_ns, first.dur_ns, first.correlation) == (
        "wrapped_convert.kd",
        "wrapped_convert",
        9_715_872_534 + 660_484,
        2_960,
        2,
    )
    # GPU:1..7 hold no events and the Megascale plane is empty: no device facts for them
    assert list(trace.devices) == ["/device:GPU:0"]
    assert trace.devices["/device:GPU:0"]["memory_size"] == 309_220_868_096
    assert trace.devices["/device:GPU:0"]["core_count"] == 256
    assert trace.count(RUNTIME) == 150
    assert (sum(m.bytes > 0 for m in trace.memory), sum(m.bytes < 0 for m in trace.memory)) == (30, 29)
    assert sum(m.bytes for m in trace.memory) == 8_388_864  # one buffer still held at the end
    assert {(m.device, m.allocator) for m in trace.memory} == {("/device:GPU:0", "GPU_0_bfc")}


# --- an NVIDIA-shaped XSpace, built with TensorFlow's own protos ----------------------


class Ref(str):
    """A stat value stored once as a stat metadata name (XStat.ref_value)."""


class Unsigned(int):
    """A stat value stored as XStat.uint64_value."""


class PlaneBuilder:
    def __init__(self, space, name):
        self.plane = space.planes.add(id=len(space.planes), name=name)
        self._ids = {}

    def _stat_id(self, name):
        if ("stat", name) not in self._ids:
            self._ids["stat", name] = stat_id = len(self._ids) + 1
            self.plane.stat_metadata[stat_id].id = stat_id
            self.plane.stat_metadata[stat_id].name = name
        return self._ids["stat", name]

    def _event_id(self, name):
        if ("event", name) not in self._ids:
            self._ids["event", name] = event_id = len(self._ids) + 1
            self.plane.event_metadata[event_id].id = event_id
            self.plane.event_metadata[event_id].name = name
        return self._ids["event", name]

    def add_stats(self, owner, stats):
        for name, value in stats.items():
            stat = owner.stats.add(metadata_id=self._stat_id(name))
            if isinstance(value, Ref):
                stat.ref_value = self._stat_id(value)
            elif isinstance(value, Unsigned):
                stat.uint64_value = value
            elif isinstance(value, int):
                stat.int64_value = value
            elif isinstance(value, float):
                stat.double_value = value
            elif isinstance(value, bytes):
                stat.bytes_value = value
            else:
                stat.str_value = value

    def line(self, line_id, name, timestamp_ns):
        return self.plane.lines.add(id=line_id, name=name, timestamp_ns=timestamp_ns)

    def event(self, line, name, offset_ps, duration_ps, **stats):
        event = line.events.add(metadata_id=self._event_id(name), offset_ps=offset_ps)
        event.duration_ps = duration_ps
        self.add_stats(event, stats)
        return event


def nvidia_space():
    pb2 = load_xplane_pb2()
    space = pb2.XSpace(hostnames=["gpu-box"])
    gpu = PlaneBuilder(space, "/device:GPU:0")
    gpu.add_stats(
        gpu.plane,
        {
            "device_vendor": "Nvidia",
            "clock_rate": Unsigned(1_410_000),
            "core_count": 108,
            "memory_size": Unsigned(42_505_273_344),
            "memory_bandwidth": Unsigned(1_555_200_000_000),
            "compute_cap_major": 8,
            "compute_cap_minor": 0,
        },
    )
    kernels = gpu.line(7, "Stream #7(Kernel)", timestamp_ns=1_000_000)
    details = Ref("regs:64 static_shared:0 dynamic_shared:0 grid:4,1,1 block:128,1,1 occ_pct:50")
    gpu.event(kernels, "ampere_sgemm_32x32_sliced1x4_tn", 2_000_000, 5_500_500,
              kernel_details=details, correlation_id=Unsigned(101),
              tf_op=Ref("sequential/dense/MatMul:MatMul"))
    gpu.event(kernels, "void splitKreduce_kernel<float>", 8_000_000, 1_250_000,
              kernel_details="regs:32 grid:1,1,1 block:256,1,1", correlation_id=102, hlo_op=Ref("fusion.3"))
    gpu.event(kernels, "redzone_checker", 300_000_000, 999, kernel_details=details, correlation_id=103)
    # an aggregated event (num_occurrences, no offset) has no place on the timeline
    aggregated = kernels.events.add(metadata_id=kernels.events[0].metadata_id, num_occurrences=4)
    gpu.add_stats(aggregated, {"kernel_details": details})
    copies = gpu.line(14, "Stream #14(MemcpyH2D,Memset)", timestamp_ns=1_000_500)
    gpu.event(copies, "MemcpyH2D", 0, 3_000_000, memcpy_details="kind_src:pinned kind_dst:device size:4096",
              correlation_id=100)
    gpu.event(copies, "Memset", 4_000_000, 500_000, memset_details="num_bytes:512 kind:device",
              correlation_id=99)
    # lines the profiler derives from the stream lines: they repeat each kernel
    xla_ops = gpu.line(-2, "XLA Ops", timestamp_ns=1_000_000)
    gpu.event(xla_ops, "fusion.3", 8_000_000, 1_250_000, kernel_details=details, hlo_op=Ref("fusion.3"))
    steps = gpu.line(-1, "Steps", timestamp_ns=1_000_000)
    gpu.event(steps, "0", 0, 300_000_000)
    PlaneBuilder(space, "/device:CUSTOM:Megascale Trace")

    host = PlaneBuilder(space, "/host:CPU")
    python = host.line(1, "python", timestamp_ns=999_000)
    host.event(python, "train", 0, 100_000_000, step_num=0, _r=1)  # 999,000 .. 1,099,000 ns
    host.event(python, "train", 150_000_000, 100_000_000, step_num=1, _r=1)  # 1,149,000 .. 1,249,000 ns
    host.event(python, "train_function", 151_000_000, 90_000_000, step_num=1)  # nested: not a step of its own
    compute = host.line(23, "tf_Compute/23", timestamp_ns=999_000)
    host.event(compute, "ExecutorState::Process", 1_000_000, 20_000_000, iter_num=0)
    host.event(compute, "sequential/dense/MatMul:MatMul", 2_000_000, 6_000_000)
    host.event(compute, "sequential/dense/BiasAdd:BiasAdd", 9_000_000, 1_000_000)
    host.event(compute, "sequential/dense/MatMul:MatMul", 152_000_000, 4_000_000)
    memory = {"allocator_name": Ref("GPU_0_bfc"), "bytes_reserved": 0, "peak_bytes_in_use": 8192}
    host.event(compute, "MemoryAllocation", 3_000_000, 0, **memory, requested_bytes=1000,
               allocation_bytes=1024, bytes_allocated=5120, fragmentation=0.25,
               tf_op=Ref("sequential/dense/MatMul"))
    host.event(compute, "MemoryDeallocation", 160_000_000, 0, **memory, requested_bytes=1000,
               allocation_bytes=1024, bytes_allocated=4096, fragmentation=0.0)
    host.event(compute, "MemoryAllocation", 4_000_000, 0, allocator_name=Ref("bfc_cpu_allocator_for_gpu"),
               requested_bytes=4, allocation_bytes=256, bytes_allocated=256)
    launches = host.line(55, "Host Threads/55", timestamp_ns=999_000)
    host.event(launches, "cuLaunchKernel", 2_500_000, 400_000, correlation_id=Unsigned(101))
    host.event(launches, "cudaStreamSynchronize", 3_000_000, 400_000)  # no correlation: not kept
    return space


def test_nvidia_shaped_xspace(tmp_path):
    path = tmp_path / "gpu-box.xplane.pb"
    path.write_bytes(nvidia_space().SerializeToString())

    trace = read_xplane(path)

    assert trace.total_events == 20  # all, kept or not: 8 on the GPU plane, 12 on the host
    assert Counter(e.kind for e in trace.events) == {KERNEL: 3, MEMCPY: 1, MEMSET: 1, CPU_OP: 3, RUNTIME: 1}
    by_name = {e.name: e for e in trace.events if e.device != "cpu"}
    sgemm = by_name["ampere_sgemm_32x32_sliced1x4_tn"]
    assert (sgemm.kind, sgemm.start_ns, sgemm.dur_ns, sgemm.self_ns) == (KERNEL, 1_002_000, 5_500, 5_500)
    assert (sgemm.device, sgemm.stream, sgemm.op, sgemm.correlation) == (
        "/device:GPU:0",
        "Stream #7(Kernel)",
        "sequential/dense/MatMul:MatMul",
        101,
    )
    assert (sgemm.step, by_name["redzone_checker"].step) == (0, None)  # 1,300,000 ns: after the last step
    assert by_name["redzone_checker"].dur_ns == 0  # 999 ps
    split_k = by_name["void splitKreduce_kernel<float>"]
    assert (split_k.op, split_k.correlation, split_k.start_ns) == ("fusion.3", 102, 1_008_000)
    assert by_name["redzone_checker"].op is None
    copy, memset = by_name["MemcpyH2D"], by_name["Memset"]
    assert (copy.kind, copy.start_ns, copy.dur_ns) == (MEMCPY, 1_000_500, 3_000)
    assert copy.stream == memset.stream == "Stream #14(MemcpyH2D,Memset)"
    assert (memset.kind, memset.dur_ns, memset.correlation) == (MEMSET, 500, 99)
    assert trace.total_dur_ns(KERNEL) == 5_500 + 1_250 + 0
    assert list(trace.devices) == ["/device:GPU:0"]
    assert trace.devices["/device:GPU:0"] == {
        "device_vendor": "Nvidia",
        "clock_rate": 1_410_000,
        "core_count": 108,
        "memory_size": 42_505_273_344,
        "memory_bandwidth": 1_555_200_000_000,
        "compute_cap_major": 8,
        "compute_cap_minor": 0,
    }

    ops = sorted((e.start_ns, e.name, e.op, e.stream, e.step) for e in trace.events if e.kind == CPU_OP)
    assert ops == [
        (1_001_000, "sequential/dense/MatMul:MatMul", "MatMul", "tf_Compute/23", 0),
        (1_008_000, "sequential/dense/BiasAdd:BiasAdd", "BiasAdd", "tf_Compute/23", 0),
        (1_151_000, "sequential/dense/MatMul:MatMul", "MatMul", "tf_Compute/23", 1),
    ]
    (launch,) = [e for e in trace.events if e.kind == RUNTIME]
    assert (launch.name, launch.device, launch.stream) == ("cuLaunchKernel", "cpu", "Host Threads/55")
    assert launch.correlation == sgemm.correlation == 101

    assert [(s.step, s.start_ns, s.wall_ns, s.profiled) for s in trace.steps] == [
        (0, 999_000, 100_000, True),
        (1, 1_149_000, 100_000, True),
    ]
    assert [(m.ts_ns, m.bytes, m.total_allocated, m.device, m.allocator) for m in trace.memory] == [
        (1_002_000, 1024, 5120, "/device:GPU:0", "GPU_0_bfc"),
        (1_003_000, 256, 256, "cpu", "bfc_cpu_allocator_for_gpu"),
        (1_159_000, -1024, 4096, "/device:GPU:0", "GPU_0_bfc"),
    ]
    first = trace.memory[0]
    assert (first.total_reserved, first.peak_bytes_in_use, first.fragmentation) == (0, 8192, 0.25)


# --- a real TensorFlow 2 profile on this CPU ------------------------------------------

TF_PROFILE = """
    import os, sys
    # The default CPU allocator writes no allocation events; TF's BFC allocator does.
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    import keras, tensorflow as tf

    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]
    )
    optimizer = keras.optimizers.SGD(0.01)
    x, y = tf.random.normal((8, 16)), tf.random.normal((8, 4))

    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    options = tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=3, python_tracer_level=0, device_tracer_level=1
    )
    for mode, step in zip(sys.argv[2:], (tf.function(train_step), train_step)):
        step()  # warm-up: tracing, variable creation
        tf.profiler.experimental.start(os.path.join(sys.argv[1], mode), options=options)
        for i in range(3):
            with tf.profiler.experimental.Trace("train", step_num=i, _r=1):
                step()
        tf.profiler.experimental.stop()
"""

MODES = ("graph", "eager")


@pytest.fixture(scope="module")
def tf_cpu_profiles(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("tf_profile")
    run_python(f"import sys; sys.argv[1:] = {[str(logdir), *MODES]!r}\n" + textwrap.dedent(TF_PROFILE))
    found = {mode: sorted(logdir.glob(f"{mode}/plugins/profile/*/*.xplane.pb")) for mode in MODES}
    assert all(len(files) == 1 for files in found.values()), found
    return {mode: files[0] for mode, files in found.items()}


@pytest.mark.slow
def test_real_tf_cpu_profile_graph_mode(tf_cpu_profiles):
    trace = read_xplane(tf_cpu_profiles["graph"])

    assert [(s.step, s.profiled) for s in trace.steps] == [(0, True), (1, True), (2, True)]
    assert all(s.wall_ns > 0 for s in trace.steps)
    ops = [e for e in trace.events if e.kind == CPU_OP]
    assert {e.kind for e in trace.events} == {CPU_OP}
    assert all(e.device == "cpu" and e.stream.startswith("tf_Compute") for e in ops)
    op_types = Counter(e.op for e in ops)
    # with oneDNN (the default) MatMul runs as _MklMatMul / _MklNativeFusedMatMul
    assert sum(n for op, n in op_types.items() if op.endswith("MatMul")) == 3 * 5  # 2 fwd + 3 grad, per step
    assert {"BiasAddGrad", "ReluGrad", "AssignSubVariableOp"} <= set(op_types)
    # every op of the three steps ran inside one of them
    assert Counter(e.step for e in ops) == {step: len(ops) // 3 for step in (0, 1, 2)}
    assert all(e.name.endswith(":" + e.op) for e in ops)

    assert trace.memory, "TF_CPU_ALLOCATOR_USE_BFC=true should give MemoryAllocation events"
    assert {(m.device, m.allocator) for m in trace.memory} == {("cpu", "bfc_cpu_allocator_for_gpu")}
    assert any(m.bytes > 0 for m in trace.memory) and any(m.bytes < 0 for m in trace.memory)
    assert all(m.total_allocated is not None and m.peak_bytes_in_use is not None for m in trace.memory)


@pytest.mark.slow
def test_real_tf_cpu_profile_eager_mode(tf_cpu_profiles):
    trace = read_xplane(tf_cpu_profiles["eager"])

    assert [s.step for s in trace.steps] == [0, 1, 2]
    ops = [e for e in trace.events if e.kind == CPU_OP]
    # eager ops run on the Python thread as "EagerExecute" with an `eager_op` stat
    op_types = Counter(e.op for e in ops)
    assert op_types["MatMul"] == 3 * 5
    assert op_types["BiasAdd"] == 3 * 2
    assert all(e.name == e.op and e.step is not None for e in ops)
    assert {e.stream for e in ops} == {"python"}
    assert sum(m.bytes > 0 for m in trace.memory) > 0


# --- bad input --------------------------------------------------------------------------


def _fixture_bytes():
    return fixture_path("xplane", "mi300x_jax_conv.xplane.pb").read_bytes()


BAD_FILES = {
    "empty": lambda: b"",
    "random": lambda: random.Random(7).randbytes(4096),
    "truncated": lambda: _fixture_bytes()[:130_000],
    "truncated_gzip": lambda: gzip.compress(_fixture_bytes())[:5000],
    "kineto_json": lambda: json.dumps({"traceEvents": [{"ph": "X", "name": "k"}]}).encode(),
    "no_planes": lambda: load_xplane_pb2().XSpace(hostnames=["vm"], errors=["failed"]).SerializeToString(),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_trace_format_error_naming_it(tmp_path, case):
    path = tmp_path / f"{case}.xplane.pb"
    path.write_bytes(BAD_FILES[case]())

    with pytest.raises(TraceFormatError) as raised:
        read_xplane(path)

    message = str(raised.value)
    assert str(path) in message and "\n" not in message


def test_gzipped_xspace_reads_like_the_plain_file(tmp_path):
    path = tmp_path / "mi300x_jax_conv.xplane.pb.gz"
    path.write_bytes(gzip.compress(_fixture_bytes()))

    trace = read_xplane(path)

    assert (trace.count(KERNEL), trace.total_dur_ns(KERNEL), trace.total_events) == (235, 28_137_077, 3650)


def test_missing_file_raises_trace_format_error(tmp_path):
    path = tmp_path / "absent.xplane.pb"
    with pytest.raises(TraceFormatError, match="absent.xplane.pb"):
        read_xplane(path)


# --- imports ------------------------------------------------------------------------------


@pytest.mark.slow
def test_reading_does_not_import_tensorflow():
    path = fixture_path("xplane", "gpu_jax_fused_attention.xplane.pb")
    out = run_python(
        f"""
        import json, sys
        from profiler.traces.xplane import load_xplane_pb2, read_xplane
        pb2 = load_xplane_pb2()
        trace = read_xplane({str(path)!r})
        print(json.dumps([pb2.XSpace.DESCRIPTOR.full_name, trace.count("kernel"),
                          sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "torch"))]))
        """
    )
    assert last_json_line(out) == ["tensorflow.profiler.XSpace", 150, []]


@pytest.mark.slow
def test_without_tensorflow_the_error_says_to_install_it():
    # -S leaves site-packages off the path: TensorFlow is really absent
    done = subprocess.run(
        [sys.executable, "-S", "-c", "from profiler.traces.xplane import load_xplane_pb2; load_xplane_pb2()"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert done.returncode == 1
    assert "TensorFlowMissing" in done.stderr and "pip install tensorflow" in done.stderr


@pytest.fixture(scope="module")
def small_xspace_bytes():
    return nvidia_space().SerializeToString()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_xspace_gives_a_trace_or_a_trace_format_error(small_xspace_bytes, tmp_path, data):
    """Flip, drop and insert bytes of a valid XSpace: the reader returns a trace or raises
    its own clean error, never anything else."""
    blob = bytearray(small_xspace_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            blob[at] ^= data.draw(st.integers(1, 255))
        elif action == "drop":
            del blob[at]
        else:
            blob.insert(at, data.draw(st.integers(0, 255)))
    path = tmp_path / "mutated.xplane.pb"
    path.write_bytes(bytes(blob))
    try:
        trace = read_xplane(path)
    except TraceFormatError as error:
        assert "mutated.xplane.pb" in str(error) and "\n" not in str(error)
    else:
        assert trace.source_format == "xplane"
