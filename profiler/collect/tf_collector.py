"""The TensorFlow collector: a workload under the TensorFlow profiler (XSpace). Runs
inside the worker process; imports tensorflow."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# TensorFlow's default CPU allocator reports nothing to the profiler; its BFC allocator
# writes MemoryAllocation/MemoryDeallocation events. Must be set before TF loads.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

from profiler.collect.collectors import device_facts  # noqa: E402
from profiler.collect.devices import gpu_index  # noqa: E402
from workloads.tf_impl import TensorFlowWorkload, tf  # noqa: E402

# Step markers in the host plane: `Trace(STEP_MARKER, step_num=N, _r=1)`.
STEP_MARKER = "train"


def use_device(device: str):
    """Make `device` the only one TensorFlow places work on besides the CPU (before TF
    starts its devices): the chosen GPU becomes its logical GPU:0; on the CPU none is
    visible. Returns the physical GPU, or None."""
    gpus = tf.config.list_physical_devices("GPU")
    index = gpu_index(device)
    if index is not None and index >= len(gpus):
        raise RuntimeError(f"TensorFlow {tf.__version__} sees {len(gpus)} GPUs, not {device}")
    chosen = None if index is None else gpus[index]
    if gpus:
        tf.config.set_visible_devices([chosen] if chosen else [], "GPU")
    return chosen


def _gpu_name(gpu) -> str:
    return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)


class TensorFlowCollector:
    framework = "tensorflow"

    def __init__(self):
        self.device, self.gpu = "cpu", None  # of the workload built last

    def environment(self) -> dict:
        build = tf.sysconfig.get_build_info()
        name = _gpu_name(self.gpu) if self.gpu else None
        return {
            "framework": self.framework,
            "framework_version": tf.__version__,
            "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
            "interop_threads": tf.config.threading.get_inter_op_parallelism_threads() or None,
            # what this TensorFlow build was compiled against (present on CPU too)
            "cuda_build": build.get("cuda_version"),
            "cudnn_build": build.get("cudnn_version"),
            "cpu_allocator": "bfc" if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true" else "default",
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default on (x86)")
            if platform.machine() in ("x86_64", "AMD64") else None,
            "framework_gpus": [_gpu_name(gpu) for gpu in tf.config.list_physical_devices("GPU")],
            **device_facts(self.device, name),
        }

    def build(self, request: dict) -> TensorFlowWorkload:
        self.device = request.get("device", "cpu")
        self.gpu = use_device(self.device)
        return TensorFlowWorkload(request["workload"], request["size"], request["mode"],
                                  request["execution"], request["seed"],
                                  forward_passes=request.get("forward_passes", 1),
                                  dtype=request.get("dtype", "fp32"),
                                  batch_size=request.get("batch_size"))

    def device_memory(self, workload: TensorFlowWorkload) -> tuple[int | None, int | None]:
        """Peak and current bytes of the run's GPU (TensorFlow's GPU:0 once use_device has
        made it the only one) since the last call, then reset; GPU only."""
        if self.gpu is None:
            return None, None
        info = tf.config.experimental.get_memory_info("GPU:0")
        tf.config.experimental.reset_memory_stats("GPU:0")
        return info["peak"], info["current"]

    def profile_steps(self, workload: TensorFlowWorkload, steps: int, out_dir: Path,
                      timed_step) -> tuple[list, Path]:
        logdir = out_dir / "tb"
        options = tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=3, python_tracer_level=0, device_tracer_level=1
        )
        records = []
        tf.profiler.experimental.start(str(logdir), options=options)
        try:
            # As on the torch side, one step settles the profiler in; it carries no step
            # marker, so its events belong to no step and no analysis counts them.
            timed_step(0)
            for step in range(1, steps + 1):
                with tf.profiler.experimental.Trace(STEP_MARKER, step_num=step, _r=1):
                    records.append(timed_step(step))
        finally:
            tf.profiler.experimental.stop()
        traces = sorted(logdir.glob("plugins/profile/*/*.xplane.pb"))
        if not traces:
            raise RuntimeError(f"the TensorFlow profiler wrote no .xplane.pb under {logdir}")
        return records, traces[-1]


COLLECTOR = TensorFlowCollector()
