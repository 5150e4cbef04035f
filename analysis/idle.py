"""A GPU's idle time per step: the gaps between its kernels, split into waiting for the
host (the next kernel was not launched yet) and the rest (launched, but not started)."""

from __future__ import annotations

from collections import defaultdict
from statistics import median

from profiler.store import Store

DEVICE_KINDS = ("kernel", "memcpy", "memset")


def device_idle(store: Store, run: dict) -> dict | None:
    """Median per step of the device's busy, idle, waiting-for-host and other idle
    milliseconds, from the first device event of a step to the end of its last; None for
    a run with no device events."""
    if not store.has_device_events(run["id"]):
        return None
    launches: dict[tuple[int, int], int] = {}  # (repeat, correlation) -> the launch call's end
    device: dict[tuple[int, int], list] = defaultdict(list)  # (repeat, step) -> [(start, end, launch key)]
    for (repeat, step, _name, _op, _category, kind, _device, _stream, start, dur, _self, correlation,
         _layer, _shapes) in store.attribution_events(run["id"], "device idle time"):
        if kind == "runtime" and correlation is not None:
            launches[repeat, correlation] = start + dur
        elif kind in DEVICE_KINDS and step is not None:
            device[repeat, step].append((start, start + dur, (repeat, correlation)))
    figures = defaultdict(list)
    for where, spans in device.items():
        spans.sort()
        busy = host = other = 0
        end = spans[0][0]
        for start, stop, key in spans:
            if start > end:  # a gap: the device had nothing to run
                launched = launches.get(key)
                waited = 0 if launched is None else min(max(launched - end, 0), start - end)
                host += waited
                other += start - end - waited
            busy += max(stop - max(start, end), 0)
            end = max(end, stop)
        for name, value in (("busy_ms", busy), ("idle_ms", host + other), ("host_wait_ms", host),
                            ("other_idle_ms", other)):
            figures[name].append(value / 1e6)
    return {name: median(values) for name, values in figures.items()} | {"steps": len(device)}
