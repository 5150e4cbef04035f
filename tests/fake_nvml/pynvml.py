"""A fake of the slice of pynvml xprof uses: two GPUs, gpu:1 without a power sensor.

Tests build `FakePynvml` instances; with this directory first on PYTHONPATH, every
process imports this module as `pynvml`, as if an NVIDIA driver were installed.
"""

from types import SimpleNamespace

MIB = 1024 * 1024


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own name
    pass


class FakePynvml:
    """The library's calls on an object, recording them; `init_error` makes nvmlInit fail."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
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
            raise NVMLError_NotSupported("Not Supported")
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


# Imported as `pynvml`: the module's functions are one instance's methods.
_LIBRARY = FakePynvml()
NVML_CLOCK_SM = FakePynvml.NVML_CLOCK_SM
NVML_TEMPERATURE_GPU = FakePynvml.NVML_TEMPERATURE_GPU
globals().update({name: getattr(_LIBRARY, name) for name in dir(FakePynvml) if name.startswith("nvml")})
