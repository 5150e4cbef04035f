"""`xprof calibrate`: the machine's achievable GEMM FLOP/s and triad bandwidth, measured in
each framework's own subprocess on the CPU or a GPU, stored per host; see docs/roofline.md."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from statistics import median

from profiler.errors import UserError

CALIBRATE_TIMEOUT_S = 900
# GEMM sides: large enough that a GEMM runs near the peak (a 2048 GEMM is 17 GFLOP, some
# 0.1 s on 2 cores), and the triad's arrays well past every cache.
GEMM_SIDE = {"cpu": 2048, "gpu": 8192}
TRIAD_ELEMENTS = {"cpu": 1 << 25, "gpu": 1 << 28}
# Precisions measured: fp32 always, the low precisions where the framework has a kernel.
DTYPES = ("fp32", "bf16")


class CalibrationError(UserError):
    """A framework's calibration subprocess failed."""


def calibrate(framework: str, device: str, repeats: int, scale: float = 1.0) -> dict:
    """Measure in a subprocess: {"device_name", "results": [{"dtype", "flops_per_s": [..],
    "bytes_per_s": [..]} or {"dtype", "unsupported": why}]}, `repeats` values each."""
    command = [sys.executable, "-m", "profiler.collect.calibrate", framework, device, str(repeats), str(scale)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CALIBRATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CalibrationError(f"{framework} calibration on {device} took over {CALIBRATE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CalibrationError(f"{framework} calibration on {device} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def figure(values: list[float]) -> tuple[float, float]:
    """The peak a calibration states, the best of its repeats (what the machine can do),
    and its spread: (best - worst) / best."""
    best = max(values)
    return best, (best - min(values)) / best if best else 0.0


def summary(measured: dict, dtype: str) -> dict | None:
    """One stored row's figures from a framework's measurement at `dtype`."""
    for result in measured["results"]:
        if result["dtype"] == dtype and "unsupported" not in result:
            flops, flops_spread = figure(result["flops_per_s"])
            bandwidth, bytes_spread = figure(result["bytes_per_s"])
            return {"flops_per_s": flops, "flops_spread": flops_spread, "bytes_per_s": bandwidth,
                    "bytes_spread": bytes_spread, "median_flops_per_s": median(result["flops_per_s"])}
    return None


# -- in the subprocess ------------------------------------------------------------


def _timed(run, synchronize, repeats: int) -> list[float]:
    run()  # warm-up: allocation, kernel selection
    synchronize()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds


def _torch(device: str, repeats: int, scale: float) -> dict:
    import torch

    where = torch.device("cpu") if device == "cpu" else torch.device("cuda", int(device.split(":")[1]))
    if where.type == "cuda" and where.index >= torch.cuda.device_count():
        raise SystemExit(f"torch {torch.__version__} sees {torch.cuda.device_count()} GPUs, not {device}")
    sync = (lambda: torch.cuda.synchronize(where)) if where.type == "cuda" else (lambda: None)
    kind = "cpu" if device == "cpu" else "gpu"
    side, elements = max(64, int(GEMM_SIDE[kind] * scale)), max(1024, int(TRIAD_ELEMENTS[kind] * scale))
    results = []
    for dtype in DTYPES:
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        try:
            a = torch.randn(side, side, device=where, dtype=torch_dtype)
            b = torch.randn(side, side, device=where, dtype=torch_dtype)
            out = torch.empty(side, side, device=where, dtype=torch_dtype)
            gemm = _timed(lambda: torch.mm(a, b, out=out), sync, repeats)
            x, y, z = (torch.rand(elements, device=where, dtype=torch_dtype) for _ in range(3))
            # the STREAM triad, x = y + 3 z: two arrays read, one written, nothing else
            triad = _timed(lambda: torch.add(y, z, alpha=3.0, out=x), sync, repeats)
        except RuntimeError as error:
            results.append({"dtype": dtype, "unsupported": str(error).splitlines()[0]})
            continue
        size = a.element_size()
        results.append({"dtype": dtype, "flops_per_s": [2 * side**3 / s for s in gemm],
                        "bytes_per_s": [3 * elements * size / s for s in triad],
                        "gemm_side": side, "triad_elements": elements})
    name = torch.cuda.get_device_name(where) if where.type == "cuda" else _cpu_name()
    return {"device_name": name, "framework_version": torch.__version__, "results": results}


def _tensorflow(device: str, repeats: int, scale: float) -> dict:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    kind = "cpu" if device == "cpu" else "gpu"
    where = "/CPU:0" if kind == "cpu" else f"/GPU:{device.split(':')[1]}"
    if kind == "gpu" and int(device.split(":")[1]) >= len(tf.config.list_physical_devices("GPU")):
        raise SystemExit(f"tensorflow {tf.__version__} sees {len(tf.config.list_physical_devices('GPU'))} "
                         f"GPUs, not {device}")
    side, elements = max(64, int(GEMM_SIDE[kind] * scale)), max(1024, int(TRIAD_ELEMENTS[kind] * scale))
    results = []
    for dtype in DTYPES:
        tf_dtype = {"fp32": tf.float32, "bf16": tf.bfloat16}[dtype]
        try:
            with tf.device(where):
                a = tf.random.normal((side, side), dtype=tf.float32)
                b = tf.random.normal((side, side), dtype=tf.float32)
                a, b = tf.cast(a, tf_dtype), tf.cast(b, tf_dtype)
                y = tf.cast(tf.random.uniform((elements,)), tf_dtype)
                z = tf.cast(tf.random.uniform((elements,)), tf_dtype)
                three = tf.constant(3.0, tf_dtype)
                gemm_fn = tf.function(lambda: tf.linalg.matmul(a, b))
                # y + 3 z in one fused expression is not TensorFlow's: eager (so that no
                # graph rewrite fuses them) it is a multiply then an add, 5 arrays' traffic
                # (z read, 3z written and read, y read, x written)
                triad_fn = lambda: tf.add(y, tf.multiply(three, z))  # noqa: E731
                holder = {}
                gemm = _timed(lambda: holder.__setitem__("g", gemm_fn()), lambda: holder["g"][0, 0].numpy(), repeats)
                triad = _timed(lambda: holder.__setitem__("t", triad_fn()), lambda: holder["t"][0].numpy(), repeats)
        except (tf.errors.OpError, RuntimeError, TypeError) as error:
            results.append({"dtype": dtype, "unsupported": str(error).splitlines()[0]})
            continue
        size = a.dtype.size
        results.append({"dtype": dtype, "flops_per_s": [2 * side**3 / s for s in gemm],
                        "bytes_per_s": [5 * elements * size / s for s in triad],
                        "gemm_side": side, "triad_elements": elements})
    gpus = tf.config.list_physical_devices("GPU")
    name = _cpu_name() if kind == "cpu" else (tf.config.experimental.get_device_details(gpus[int(
        device.split(":")[1])]).get("device_name") if gpus else device)
    return {"device_name": name, "framework_version": tf.__version__, "results": results}


def _cpu_name() -> str:
    from profiler.telemetry.host import environment

    return environment().get("cpu_model") or "cpu"


if __name__ == "__main__":
    framework, device, count, factor = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    measure = _torch if framework == "torch" else _tensorflow
    print(json.dumps(measure(device, count, factor)))
