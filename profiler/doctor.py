"""`xprof doctor`: what this machine offers xprof, and why something is missing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

from profiler.processes import host_name

PACKAGES = ("xprof-frameworks", "torch", "tensorflow", "keras", "numpy", "nvidia-ml-py",
            "pyinstrument", "rich", "sqlite-utils", "psutil")


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _framework_view(framework: str) -> dict:
    """The framework's own view of its devices (`gpus`: the names of those it sees),
    asked in a subprocess of its own."""
    code = ("import json; from profiler.collect.collectors import collector_for; "
            f"print(json.dumps(collector_for({framework!r}).environment()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"cannot load {framework}: {tail[0]}"}
    view = json.loads(done.stdout.strip().splitlines()[-1])
    # no workload was built: the device a run would take is for `xprof run` to choose
    view["gpus"] = view.pop("framework_gpus", [])
    return {k: v for k, v in view.items() if k not in ("device", "device_name")}


def _store(db_path) -> dict:
    from profiler.store import Store, StoreError, default_db_path
    from profiler.store.dialect import is_url, shown_url

    path = db_path or default_db_path()
    server = is_url(str(path))
    facts = {"path": shown_url(str(path)) if server else str(path), "backend": "postgresql" if server else "sqlite"}
    if not server and not os.path.exists(path):
        facts["state"] = "absent (created by the first `xprof run`)"
        return facts
    try:
        store = Store.open(path, create=False)
    except StoreError as error:
        facts["state"] = f"unusable: {error}"
        return facts
    facts["schema_version"] = store.schema_version()
    facts["runs"] = store.run_count()
    facts["artifacts"] = str(store.artifacts_dir())
    facts["peaks"] = _peaks(store)
    store.close()
    return facts


def _peaks(store) -> dict:
    """This host's newest calibration of each device, framework and precision, and the
    datasheet of each GPU NVML sees."""
    import time

    from profiler.telemetry.datasheets import match_datasheet
    from profiler.telemetry.nvml import Nvml

    peaks = {}
    for row in store.calibrations(host_name()):
        day = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["measured_at"]))
        peaks[f"{row['device']} {row['framework']} {row['dtype']}"] = (
            f"{row['flops_per_s'] / 1e9:,.1f} GFLOP/s (spread {row['flops_spread']:.0%}), "
            f"{row['bytes_per_s'] / 1e9:,.1f} GB/s (spread {row['bytes_spread']:.0%}), calibrated {day}")
    for index, gpu in enumerate(Nvml().environment().get("gpus") or []):
        name = gpu.get("name") if isinstance(gpu, dict) else str(gpu)
        sheet = match_datasheet(name, gpu if isinstance(gpu, dict) else {})
        if sheet:
            peaks[f"gpu:{index} datasheet"] = (f"{sheet.name}: fp32 {sheet.flops['fp32'] / 1e12:g} TFLOP/s, "
                                               f"{sheet.bytes_per_s / 1e9:,.0f} GB/s ({sheet.source})")
    return peaks or {"none": "run `xprof calibrate` to measure this machine's peaks"}


def report(db_path=None) -> dict:
    from profiler.telemetry.host import environment as host_environment
    from profiler.telemetry.nvml import Nvml

    nvml = Nvml()
    return {
        "versions": _versions(),
        "host": host_environment(),
        "nvml": nvml.environment(),
        "torch": _framework_view("torch"),
        "tensorflow": _framework_view("tensorflow"),
        "store": _store(db_path),
    }
