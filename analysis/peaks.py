"""A device's peak compute and memory bandwidth: measured here (`xprof calibrate`), else
from the vendor's datasheet for the GPUs xprof knows."""

from __future__ import annotations

import json
from dataclasses import dataclass

from profiler.store import Store
from profiler.telemetry.datasheets import match_datasheet


@dataclass(frozen=True)
class Peak:
    name: str
    flops_per_s: float | None
    bytes_per_s: float | None
    spread: float  # the calibration's relative spread (0 for a datasheet)
    source: str


def run_peak(store: Store, run: dict) -> Peak | None:
    """The peak a run is held against: the newest calibration of its host's device at
    its precision (the best framework's), else its GPU's datasheet; None if neither."""
    env = json.loads(run.get("env") or "{}")
    dtype = run.get("dtype") or "fp32"
    host, device = env.get("hostname"), _device_key(run.get("device"))
    measured = [c for c in store.calibrations(host) if c["device"] == device and c["dtype"] == dtype] if host else []
    if measured:
        best = max(measured, key=lambda c: c["flops_per_s"] or 0)
        bandwidth = max((c["bytes_per_s"] or 0 for c in measured), default=0) or None
        spread = max(best["flops_spread"] or 0, *(c["bytes_spread"] or 0 for c in measured))
        return Peak(best["device_name"] or device, best["flops_per_s"], bandwidth, spread,
                    f"calibrated on {host} ({best['framework']} {dtype} GEMM, triad)")
    facts = next(iter((env.get("devices") or {}).values()), {})
    sheet = match_datasheet(env.get("device_name") or run.get("device"), facts)
    if sheet is None:
        return None
    flops = sheet.flops.get(dtype)
    return Peak(sheet.name, flops, sheet.bytes_per_s, 0.0, f"datasheet: {sheet.source}")


def _device_key(device: str | None) -> str:
    return device if device and (device == "cpu" or device.startswith("gpu:")) else (device or "cpu")
