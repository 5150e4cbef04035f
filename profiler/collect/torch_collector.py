"""The torch collector: a workload under torch.profiler (Kineto). Runs inside the
worker process; imports torch."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from profiler.collect.collectors import device_facts
from profiler.collect.devices import gpu_index
from workloads.torch_impl import TorchWorkload

TRACE_NAME = "trace.pt.trace.json.gz"


def torch_device(device: str) -> torch.device:
    """torch's device for a stored device name ('gpu:N' is 'cuda:N', on ROCm builds too);
    a GPU this torch does not see is an error that says so."""
    index = gpu_index(device)
    if index is None:
        return torch.device("cpu")
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"torch {torch.__version__} sees {torch.cuda.device_count()} GPUs, "
                           f"not {device} (cuda:{index})")
    return torch.device("cuda", index)


class TorchCollector:
    framework = "torch"

    def __init__(self):
        self.device = torch.device("cpu")  # the device of the workload built last

    def environment(self) -> dict:
        index = self.device.index if self.device.type == "cuda" else None
        return {
            "framework": self.framework,
            "framework_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "framework_gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            **device_facts("cpu" if index is None else f"gpu:{index}",
                           None if index is None else torch.cuda.get_device_name(index)),
        }

    def build(self, request: dict) -> TorchWorkload:
        self.device = torch_device(request.get("device", "cpu"))
        return TorchWorkload(request["workload"], request["size"], request["mode"],
                             request["execution"], request["seed"], device=self.device,
                             forward_passes=request.get("forward_passes", 1),
                             dtype=request.get("dtype", "fp32"),
                             batch_size=request.get("batch_size"))

    def device_memory(self, workload: TorchWorkload) -> tuple[int | None, int | None]:
        """Peak allocated and reserved bytes since the last call (GPU only), then reset."""
        if workload.device.type != "cuda":
            return None, None
        peak = torch.cuda.max_memory_allocated(workload.device)
        reserved = torch.cuda.memory_reserved(workload.device)
        torch.cuda.reset_peak_memory_stats(workload.device)
        return peak, reserved

    def profile_steps(self, workload: TorchWorkload, steps: int, out_dir: Path,
                      timed_step) -> tuple[list, Path]:
        """Run `steps` steps under the profiler; returns the per-step records from
        `timed_step` and the gzipped Kineto trace."""
        activities = [ProfilerActivity.CPU]
        if workload.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        # The first step under the profiler pays for its start-up (128 ms for a 0.4 ms
        # step); the schedule profiles it as warm-up and discards it. Kineto marks each
        # recorded step `ProfilerStep#N`, N = 1..steps, which the reader keys on.
        records = []
        plan = schedule(wait=0, warmup=1, active=steps, repeat=1)
        with profile(activities=activities, record_shapes=True, profile_memory=True,
                     schedule=plan) as prof:
            for step in range(steps + 1):
                record = timed_step(step)
                if step > 0:
                    records.append(record)
                prof.step()
        raw = out_dir / "trace.pt.trace.json"
        prof.export_chrome_trace(str(raw))
        trace = out_dir / TRACE_NAME
        with open(raw, "rb") as src, gzip.open(trace, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        raw.unlink()
        return records, trace


COLLECTOR = TorchCollector()
