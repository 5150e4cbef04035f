"""Telemetry: NVML through a fake library at the seam (this machine has no GPU), the
real no-driver path, the real host sampler, and the sampling thread."""

import atexit
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from profiler.telemetry import host
from profiler.telemetry.nvml import NA, Nvml, NvmlSampler
from profiler.telemetry.sampling import SamplerThread, TelemetrySample

MIB = 1024 * 1024


class FakeNVMLError(Exception):
    pass


class FakeNotSupported(FakeNVMLError):
    pass


class FakePynvml:
    """The slice of pynvml that xprof uses: two GPUs; gpu:1 has no power sensor."""

    NVMLError = FakeNVMLError
    NVMLError_NotSupported = FakeNotSupported
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, init_error=None):
        self.init_error = init_error
        self.calls = []

    def nvmlInit(self):
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetName(self, handle):
        return f"Fake GPU {handle[1]}"

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-0000-{handle[1]}"

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=[37, 81][handle[1]], memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=1024 * MIB, total=40960 * MIB, free=39936 * MIB)

    def nvmlDeviceGetPowerUsage(self, handle):
        if handle[1] == 1:
            raise FakeNotSupported("Not Supported")
        return 123456  # milliwatts

    def nvmlDeviceGetClockInfo(self, handle, clock_type):
        assert clock_type == self.NVML_CLOCK_SM
        return 1410

    def nvmlDeviceGetMaxClockInfo(self, handle, clock_type):
        assert clock_type == self.NVML_CLOCK_SM
        return 1980

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 64


@pytest.fixture
def exit_hooks(monkeypatch):
    """atexit.register, recorded instead of run at interpreter exit."""
    hooks = []
    monkeypatch.setattr(atexit, "register", hooks.append)
    return hooks


# -- NVML through the fake library -------------------------------------------------


def test_nvml_sampler_one_sample_per_gpu_with_units_converted(exit_hooks):
    samples = NvmlSampler(Nvml(library=FakePynvml())).sample()

    assert [(s.source, s.device) for s in samples] == [("nvml", "gpu:0"), ("nvml", "gpu:1")]
    first, second = samples
    assert first.utilization_pct == 37
    assert second.utilization_pct == 81
    assert first.power_w == pytest.approx(123.456)  # 123456 mW
    assert second.power_w is None  # NotSupported on gpu:1
    assert first.memory_used_bytes == 1024 * MIB
    assert first.memory_total_bytes == 40960 * MIB
    assert first.sm_clock_mhz == 1410
    assert first.temperature_c == 64
    assert (first.cpu_pct, first.rss_bytes) == (None, None)  # host-only fields
    assert abs(first.ts_ns - time.time_ns()) < 60 * 10**9  # wall clock, not monotonic


def test_not_supported_metric_is_na_which_prints_as_na(exit_hooks):
    gpus = Nvml(library=FakePynvml())

    assert gpus.power_w(1) is NA
    assert str(gpus.power_w(1)) == "N/A"
    assert f"{NA:.1f}" == "N/A"
    assert NA != NA  # behaves like NaN: a missing reading never equals a number


def test_init_is_lazy_once_and_shutdown_registered_after_success(exit_hooks):
    library = FakePynvml()
    gpus = Nvml(library=library)
    assert library.calls == []  # constructing does not touch NVML

    assert gpus.available
    assert gpus.reason is None
    NvmlSampler(gpus).sample()
    NvmlSampler(gpus).sample()
    assert library.calls == ["nvmlInit"]

    assert len(exit_hooks) == 1
    exit_hooks[0]()
    assert library.calls == ["nvmlInit", "nvmlShutdown"]


def test_init_failure_is_unavailable_with_reason_and_no_shutdown(exit_hooks):
    library = FakePynvml(init_error=FakeNVMLError("Driver Not Loaded"))
    gpus = Nvml(library=library)

    assert not gpus.available
    assert "Driver Not Loaded" in gpus.reason
    assert "\n" not in gpus.reason
    assert NvmlSampler(gpus).sample() == []
    assert gpus.device_count() == 0
    assert library.calls == ["nvmlInit"]  # not retried on every sample
    assert exit_hooks == []


def test_environment_from_fake_library(exit_hooks):
    facts = Nvml(library=FakePynvml()).environment()

    assert facts["driver_version"] == "550.54.15"
    assert facts["cuda_driver_version"] == "12.4"
    assert facts["gpus"] == [
        {"index": 0, "name": "Fake GPU 0", "uuid": "GPU-0000-0",
         "memory_total_bytes": 40960 * MIB, "max_sm_clock_mhz": 1980},
        {"index": 1, "name": "Fake GPU 1", "uuid": "GPU-0000-1",
         "memory_total_bytes": 40960 * MIB, "max_sm_clock_mhz": 1980},
    ]


# -- the real pynvml on this machine, which has no driver ------------------------------


def test_real_nvml_without_driver_is_unavailable_with_the_library_reason(exit_hooks):
    pytest.importorskip("pynvml")
    gpus = Nvml()
    if gpus.available:
        pytest.skip("this machine has an NVIDIA driver")

    assert "NVML Shared Library Not Found" in gpus.reason
    assert NvmlSampler(gpus).sample() == []
    assert gpus.driver_version() is NA
    assert gpus.environment() == {"nvml": "unavailable", "reason": gpus.reason}
    assert exit_hooks == []


# -- host ---------------------------------------------------------------------------------


def test_host_sampler_reads_the_current_process():
    sampler = host.HostSampler()
    sum(range(200_000))  # some CPU time between the priming and the sample
    [sample] = sampler.sample()

    assert (sample.source, sample.device) == ("host", "host")
    assert sampler.pid == os.getpid()
    assert 0 <= sample.utilization_pct <= 100
    assert sample.cpu_pct >= 0
    assert sample.rss_bytes > 10 * MIB  # an interpreter with pytest loaded
    assert 0 < sample.memory_used_bytes < sample.memory_total_bytes
    assert sample.power_w is None


def test_host_sampler_on_an_exited_child_gives_system_figures_only():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = host.HostSampler(pid=child.pid)
    child.wait()

    for _ in range(2):  # the second call exercises the forgotten process
        [sample] = sampler.sample()
        assert sample.rss_bytes is None
        assert sample.cpu_pct is None
        assert sample.utilization_pct is not None


def test_host_sampler_on_an_unreaped_child_gives_system_figures_only():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = host.HostSampler(pid=child.pid)
    # Wait for it to exit without reaping it: a zombie, which psutil reads as rss 0.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    try:
        [sample] = sampler.sample()
        assert sample.rss_bytes is None
    finally:
        child.wait()


def test_host_environment():
    facts = host.environment()

    assert facts["cpu_model"]
    assert facts["logical_cores"] >= 1
    assert facts["memory_total_bytes"] > 0
    assert facts["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["hostname"]


# -- the sampling thread ----------------------------------------------------------------


class CountingSampler:
    def __init__(self):
        self.calls = 0

    def sample(self):
        self.calls += 1
        return [TelemetrySample(ts_ns=time.time_ns(), source="host", device="host")]


class BrokenSampler:
    def sample(self):
        raise RuntimeError("sensor on fire")


def test_sampler_thread_collects_at_a_short_interval():
    thread = SamplerThread([CountingSampler()], interval_s=0.02)
    thread.start()
    deadline = time.monotonic() + 30
    collected = []
    while len(collected) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
        collected += thread.drain()
    thread.stop()

    assert len(collected) >= 3
    stamps = [s.ts_ns for s in collected]
    assert stamps == sorted(stamps)
    assert thread.daemon
    assert not thread.is_alive()


def test_sampler_thread_stops_promptly_with_a_long_interval():
    counting = CountingSampler()
    thread = SamplerThread([counting], interval_s=10)
    thread.start()
    while counting.calls == 0:  # now in its 10 s wait
        time.sleep(0.01)

    started = time.monotonic()
    thread.stop()
    assert time.monotonic() - started < 5  # generous: a busy 2-core machine, not 10 s
    assert not thread.is_alive()
    assert len(thread.drain()) == 1
    assert thread.drain() == []  # drain empties


def test_raising_sampler_is_recorded_once_and_others_continue():
    counting = CountingSampler()
    thread = SamplerThread([BrokenSampler(), counting], interval_s=0.01)
    thread.start()
    deadline = time.monotonic() + 30
    while counting.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()

    assert counting.calls >= 3
    assert thread.errors == ["BrokenSampler: RuntimeError: sensor on fire"]
    assert len(thread.drain()) == counting.calls


def test_real_samplers_together_in_the_thread():
    """What the orchestrator does on a machine without a GPU: host figures, no errors."""
    thread = SamplerThread([NvmlSampler(), host.HostSampler()], interval_s=0.02)
    thread.start()
    deadline = time.monotonic() + 30
    collected = []
    while len(collected) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
        collected += thread.drain()
    thread.stop()

    assert thread.errors == []
    assert {s.source for s in collected} <= {"host", "nvml"}
    assert any(s.source == "host" and s.rss_bytes for s in collected)
