"""NVML: GPU telemetry and driver facts through one wrapper (`Nvml`) with lazy init and an
`NA` value; without a driver it says why and never raises."""

from __future__ import annotations

import atexit
import threading
import time
from types import ModuleType

from profiler.telemetry.sampling import NVML, TelemetrySample

class _NotAvailable(float):
    """A metric the device or driver does not report.

    Prints as "N/A" and does arithmetic like NaN, so a missing reading never passes
    for a number. A single instance: test with `value is NA` (NaN != NaN).
    """

    _instance: _NotAvailable | None = None

    def __new__(cls) -> _NotAvailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls, "nan")
        return cls._instance

    def __repr__(self) -> str:
        return "N/A"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "N/A"


NA = _NotAvailable()


def or_none(value):
    """`value`, or None for NA: what the store and JSON output want."""
    return None if value is NA else value


class Nvml:
    """The one way to NVML. `library` defaults to the real pynvml, imported lazily."""

    def __init__(self, library: ModuleType | None = None):
        self._library = library
        self._initialised: bool | None = None  # None until the first use
        self._reason: str | None = None
        self._init_lock = threading.Lock()  # the sampler thread and the caller may race
        self._handles: dict[int, object] = {}

    # -- lifecycle -----------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._ensure_init()

    @property
    def reason(self) -> str | None:
        """Why NVML is unavailable, in one line; None when it is available."""
        self._ensure_init()
        return self._reason

    def _ensure_init(self) -> bool:
        with self._init_lock:
            if self._initialised is None:
                self._initialised = self._init()
        return self._initialised

    def _init(self) -> bool:
        if self._library is None:
            try:
                import pynvml
            except ImportError:
                self._reason = "pynvml is not installed (pip install nvidia-ml-py)"
                return False
            self._library = pynvml
        try:
            self._library.nvmlInit()
        except self._library.NVMLError as exc:
            # Without a driver pynvml raises NVMLError_LibraryNotFound,
            # "NVML Shared Library Not Found".
            self._reason = f"nvmlInit failed: {exc}"
            return False
        # Registered only now: shutting down a library that never started raises.
        atexit.register(self._library.nvmlShutdown)
        return True

    # -- the single call path ----------------------------------------------------------

    def _call(self, function: str, *args):
        """library.function(*args); NA when NVML is absent or the metric unsupported."""
        if not self._ensure_init():
            return NA
        try:
            return getattr(self._library, function)(*args)
        except self._library.NVMLError_NotSupported:
            return NA

    def _device_call(self, function: str, index: int, *args):
        handle = self._handles.get(index)
        if handle is None:
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            if handle is NA:
                return NA
            self._handles[index] = handle
        return self._call(function, handle, *args)

    # -- system ----------------------------------------------------------------------

    def device_count(self) -> int:
        """Number of GPUs NVML sees; 0 when NVML is unavailable. (nvidia-smi: count)"""
        count = self._call("nvmlDeviceGetCount")
        return 0 if count is NA else count

    def driver_version(self):
        """Driver version string, e.g. "550.54.15". (nvidia-smi: driver_version)"""
        return self._call("nvmlSystemGetDriverVersion")

    def cuda_driver_version(self):
        """Highest CUDA version the driver supports, "major.minor", e.g. "12.4".

        (nvidia-smi: "CUDA Version" in the header.) NVML gives 1000*major + 10*minor.
        """
        encoded = self._call("nvmlSystemGetCudaDriverVersion")
        if encoded is NA:
            return NA
        return f"{encoded // 1000}.{encoded % 1000 // 10}"

    # -- per device ----------------------------------------------------------------------

    def name(self, index: int):
        """Product name, e.g. "NVIDIA A100-SXM4-40GB". (nvidia-smi: name)"""
        return self._device_call("nvmlDeviceGetName", index)

    def uuid(self, index: int):
        """Stable identity, "GPU-…", unlike the index. (nvidia-smi: uuid)"""
        return self._device_call("nvmlDeviceGetUUID", index)

    def utilization_pct(self, index: int):
        """Percent of the last sample period a kernel was running, 0-100.

        (nvidia-smi: utilization.gpu) Not SM occupancy: one tiny kernel counts as busy.
        The driver refreshes it every 1/6 s to 1 s, hence telemetry.DEFAULT_INTERVAL_S.
        """
        rates = self._device_call("nvmlDeviceGetUtilizationRates", index)
        return NA if rates is NA else rates.gpu

    def memory_used_bytes(self, index: int):
        """Device memory in use by all processes, bytes. (nvidia-smi: memory.used, MiB)"""
        info = self._device_call("nvmlDeviceGetMemoryInfo", index)
        return NA if info is NA else info.used

    def memory_total_bytes(self, index: int):
        """Installed device memory, bytes. (nvidia-smi: memory.total, MiB)"""
        info = self._device_call("nvmlDeviceGetMemoryInfo", index)
        return NA if info is NA else info.total

    def power_w(self, index: int):
        """Board power draw, watts (NVML reports milliwatts). (nvidia-smi: power.draw)"""
        milliwatts = self._device_call("nvmlDeviceGetPowerUsage", index)
        return NA if milliwatts is NA else milliwatts / 1000

    def sm_clock_mhz(self, index: int):
        """Current SM clock, MHz. (nvidia-smi: clocks.sm)"""
        clock = self._constant("NVML_CLOCK_SM")
        return self._device_call("nvmlDeviceGetClockInfo", index, clock)

    def max_sm_clock_mhz(self, index: int):
        """Maximum SM clock, MHz. (nvidia-smi: clocks.max.sm)"""
        clock = self._constant("NVML_CLOCK_SM")
        return self._device_call("nvmlDeviceGetMaxClockInfo", index, clock)

    def temperature_c(self, index: int):
        """GPU core temperature, degrees C. (nvidia-smi: temperature.gpu)"""
        sensor = self._constant("NVML_TEMPERATURE_GPU")
        return self._device_call("nvmlDeviceGetTemperature", index, sensor)

    def _constant(self, name: str):
        """An NVML enum value; None when NVML is absent (the call then gives NA anyway)."""
        # Initialise first: the argument is evaluated before the call that would.
        if not self._ensure_init():
            return None
        return getattr(self._library, name)

    # -- the run fingerprint -------------------------------------------------------------

    def environment(self) -> dict:
        """Driver and GPU facts for the run fingerprint, JSON-ready (NA becomes None)."""
        if not self.available:
            return {"nvml": "unavailable", "reason": self.reason}
        return {
            "nvml": "available",
            "driver_version": or_none(self.driver_version()),
            "cuda_driver_version": or_none(self.cuda_driver_version()),
            "gpus": [self._gpu_facts(index) for index in range(self.device_count())],
        }

    def _gpu_facts(self, index: int) -> dict:
        return {
            "index": index,
            "name": or_none(self.name(index)),
            "uuid": or_none(self.uuid(index)),
            "memory_total_bytes": or_none(self.memory_total_bytes(index)),
            "max_sm_clock_mhz": or_none(self.max_sm_clock_mhz(index)),
        }


class NvmlSampler:
    """One TelemetrySample per GPU; [] when NVML is unavailable."""

    def __init__(self, nvml: Nvml | None = None):
        self.nvml = nvml if nvml is not None else Nvml()

    def sample(self) -> list[TelemetrySample]:
        return [self._sample_device(index) for index in range(self.nvml.device_count())]

    def _sample_device(self, index: int) -> TelemetrySample:
        nvml = self.nvml
        return TelemetrySample(
            ts_ns=time.time_ns(),
            source=NVML,
            device=f"gpu:{index}",
            utilization_pct=or_none(nvml.utilization_pct(index)),
            memory_used_bytes=or_none(nvml.memory_used_bytes(index)),
            memory_total_bytes=or_none(nvml.memory_total_bytes(index)),
            power_w=or_none(nvml.power_w(index)),
            sm_clock_mhz=or_none(nvml.sm_clock_mhz(index)),
            temperature_c=or_none(nvml.temperature_c(index)),
        )

