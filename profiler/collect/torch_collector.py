"""The torch collector: a workload under torch.profiler (Kineto). Runs inside the
worker process; imports torch."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from profiler.collect.collectors import device_facts
from workloads.torch_impl import TorchWorkload

TRACE_NAME = "trace.pt.trace.json.gz"


class TorchCollector:
    framework = "torch"

    def environment(self) -> dict:
        gpu = torch.cuda.is_available()
        return {
            "framework": self.framework,
            "framework_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            **device_facts("cuda:0" if gpu else None, torch.cuda.get_device_name(0) if gpu else None),
        }

    def build(self, request: dict) -> TorchWorkload:
        return TorchWorkload(request["workload"], request["size"], request["mode"],
                             request["execution"], request["seed"],
                             forward_passes=request.get("forward_passes", 1))

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
