"""The commands that say why a gap is there: `xprof calibrate` (the machine's peaks) and
`xprof roofline` (each op's or layer's rate against them); cli.py adds them."""

from __future__ import annotations

import time

import click

from profiler.processes import host_name
from views.invoke import show
from views.invoke import store as open_store
from views.options import store_options
from workloads import FRAMEWORKS


@click.command("calibrate")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda:N / gpu:N.")
@click.option("--framework", "-f", "frameworks", multiple=True, type=click.Choice(FRAMEWORKS),
              help="Only these frameworks (repeatable; default: both).")
@click.option("--repeats", type=click.IntRange(2, 1000), default=5, show_default=True,
              help="Timed GEMMs and triads a precision; the peak is the best, the spread (best - worst) / best.")
@click.option("--scale", type=click.FloatRange(0.01, 4.0), default=1.0, show_default=True,
              help="Size factor of the GEMM side and triad arrays (2048 and 32M on a CPU, 8192 and 256M on a GPU).")
@store_options()
def calibrate_command(device, frameworks, repeats, scale, as_json, db_path):
    """Measure the machine's peaks: fp32 and bf16 GEMM FLOP/s and triad bandwidth in each framework.

    \b
    Stored per host with the environment fingerprint; `doctor` shows them, and `roofline`,
    `diff --by layer` and `report` hold runs against them (a GPU without a calibration
    is held against its datasheet).
    Examples:
      xprof calibrate                         # the CPU, both frameworks
      xprof calibrate --device gpu:0 --repeats 10
    """
    from profiler.collect.calibrate import calibrate, summary
    from profiler.collect.devices import parse_device
    from profiler.store.store import fingerprint
    from profiler.telemetry.host import environment

    device = parse_device(device)
    store = open_store(db_path, create=True)
    env = environment()
    host, rows = host_name(), []
    for framework in frameworks or FRAMEWORKS:
        click.echo(f"calibrating {framework} on {device} ({repeats} repeats)...", err=True)
        measured = calibrate(framework, device, repeats, scale)
        for result in measured["results"]:
            dtype = result["dtype"]
            figures = summary(measured, dtype)
            row = {"host": host, "device": device, "device_name": measured["device_name"], "framework": framework,
                   "dtype": dtype, "repeats": repeats}
            if figures is None:
                rows.append({**row, "unsupported": result["unsupported"]})
                continue
            store.add_calibration(
                host=host, fingerprint=fingerprint({**env, "framework_version": measured["framework_version"]}),
                device=device, device_name=measured["device_name"], framework=framework, dtype=dtype,
                flops_per_s=figures["flops_per_s"], flops_spread=figures["flops_spread"],
                bytes_per_s=figures["bytes_per_s"], bytes_spread=figures["bytes_spread"], repeats=repeats,
                detail=_detail(result, measured), measured_at=time.time())
            rows.append({**row, **figures})
    show({"host": host, "calibrations": rows}, as_json, "terminal_why:print_calibration")


def _detail(result: dict, measured: dict) -> str:
    import json

    return json.dumps({"framework_version": measured["framework_version"], "gemm_side": result["gemm_side"],
                       "triad_elements": result["triad_elements"], "flops_per_s": result["flops_per_s"],
                       "bytes_per_s": result["bytes_per_s"]})


@click.command("roofline")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--by", type=click.Choice(["op", "layer", "category"]), default="op", show_default=True)
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Rows shown (--json: all).")
@store_options()
def roofline_command(run_ids, by, top, as_json, db_path):
    """Each op's (layer's, category's) time, FLOPs, bytes and rates against the device's peak.

    \b
    Works on imported traces too (Kineto traces with shapes; TensorFlow's by layer).
    Examples:
      xprof roofline 3f2a9c1b                 # by op
      xprof roofline 3f2a9c1b 8e77d0aa --by layer
      xprof roofline 3f2a9c1b --json
    """
    from analysis.roofline import roofline

    store = open_store(db_path)
    results = [roofline(store, store.run(ref), by) for ref in run_ids]
    show(results[0] if len(results) == 1 else results, as_json, "terminal_why:print_rooflines", top)
