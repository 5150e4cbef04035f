"""Telemetry: device and host readings beside a run and between daemon cycles. One
`Sampler` per source (psutil host, NVML); imports nothing else of xprof."""

from __future__ import annotations

from typing import Callable

from profiler.telemetry.sampling import SamplerThread


def telemetry_sampler(interval_s: float) -> Callable[..., SamplerThread]:
    """A factory of sampler threads watching one process (this one when not given):
    host CPU/RSS and, where a driver is present, NVML per GPU. One NVML handle serves
    every thread it makes."""
    from profiler.telemetry.host import HostSampler
    from profiler.telemetry.nvml import Nvml, NvmlSampler

    nvml = Nvml()
    return lambda pid=None: SamplerThread([HostSampler(pid), NvmlSampler(nvml)], interval_s)
