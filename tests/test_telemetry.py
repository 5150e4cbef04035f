"""Telemetry: NVML through a fake library at the seam, the real NVML (with a driver or
without), the real host sampler, and the sampling thread."""

import atexit
import importlib.util
import os
import subprocess
import sys
import time

import pytest

from conftest import FAKE_NVML
from profiler.telemetry import host
from profiler.telemetry.nvml import NA, Nvml, NvmlSampler
from profiler.telemetry.sampling import SamplerThread, TelemetrySample

MIB = 1024 * 1024


_spec = importlib.util.spec_from_file_location("fake_pynvml", FAKE_NVML / "pynvml.py")
fake_pynvml = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pynvml)
FakePynvml = fake_pynvml.FakePynvml
FakeNVMLError, FakeNotSupported = fake_pynvml.NVMLError, fake_pynvml.NVMLError_NotSupported


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


# -- the real pynvml: the no-driver test where there is none, the other where there is --


def test_real_nvml_without_driver_is_unavailable_with_the_library_reason(exit_hooks):
    pytest.importorskip("pynvml")
    gpus = Nvml()
    if gpus.available:
        pytest.skip("an NVIDIA driver is present: test_real_nvml_with_a_driver runs instead")

    assert gpus.reason.startswith("nvmlInit failed: ")  # e.g. NVML Shared Library Not Found
    assert NvmlSampler(gpus).sample() == []
    assert gpus.driver_version() is NA
    assert gpus.environment() == {"nvml": "unavailable", "reason": gpus.reason}
    assert exit_hooks == []


def test_real_nvml_with_a_driver_reports_every_gpu(exit_hooks):
    pytest.importorskip("pynvml")
    gpus = Nvml()
    if not gpus.available:
        pytest.skip(f"no NVIDIA driver here ({gpus.reason}); "
                    f"PYTHONPATH={FAKE_NVML} takes this path with a fake one")

    count = gpus.device_count()
    assert count >= 1
    samples = NvmlSampler(gpus).sample()
    assert [s.device for s in samples] == [f"gpu:{index}" for index in range(count)]
    for sample in samples:
        assert sample.utilization_pct is None or 0 <= sample.utilization_pct <= 100
        assert 0 < sample.memory_total_bytes and 0 <= sample.memory_used_bytes <= sample.memory_total_bytes
    facts = gpus.environment()
    assert facts["nvml"] == "available" and facts["driver_version"]
    assert [gpu["index"] for gpu in facts["gpus"]] == list(range(count))
    assert all(gpu["name"] and gpu["uuid"] for gpu in facts["gpus"])
    assert len(exit_hooks) == 1  # NVML shut down at exit, having started


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
    """What the orchestrator does: host figures, NVML's where there is a driver, no errors."""
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
