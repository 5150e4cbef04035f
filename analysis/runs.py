"""Which runs a comparison takes: the latest ok run of a framework on a workload, the
pair `xprof diff` compares by default, and what to run when there is none."""

from __future__ import annotations

from profiler.errors import UserError
from profiler.store import Store
from workloads.catalog import WORKLOADS


class AnalysisError(UserError, ValueError):
    """A comparison that cannot be made (no such run, nothing to compare)."""


def latest_run(store: Store, workload: str, framework: str, mode: str | None = None,
               execution: str | None = None, size: str | None = None, dtype: str | None = None,
               device: str | None = None, batch_size: int | None = None) -> dict:
    """The newest `ok` run of a framework on a workload (of the configuration values
    given, at `batch_size`, None: the size's own batch); the command that would make one
    when there is none."""
    run = store.latest_ok_run(workload, framework, mode, execution, size, dtype, device, batch_size)
    if run is not None:
        return run
    what = (" ".join(v for v in (size, mode, execution, dtype) if v) + (f" {device}" if device else "")
            + (f" batch-{batch_size}" if batch_size else ""))
    hint = run_hint(workload, framework, mode, execution, size, dtype, device, batch_size)
    others = [] if batch_size else store.other_batch_sizes(workload, framework, mode)
    elsewhere = (f"; there are runs at {', '.join(f'--batch-size {b}' for b in others)}" if others else "")
    raise AnalysisError(
        f"no ok {what.strip() + ' ' if what.strip() else ''}run of {workload!r} in {framework} "
        f"(run `{hint}`{elsewhere})"
    )


def run_hint(workload: str, framework: str, mode=None, execution=None, size=None, dtype=None, device=None,
             batch_size=None) -> str:
    """The `xprof run` line that would make a run of these configuration values."""
    hint = f"xprof run -w {workload} -f {framework}"
    for flag, value in (("--suite", size), ("--mode", mode), ("--exec", execution), ("--dtype", dtype),
                        ("--device", device), ("--batch-size", batch_size)):
        if value:
            hint += f" {flag} {value}"
    if workload not in WORKLOADS:  # not one xprof profiles: only imports can be of it
        hint = f"xprof import TRACE --workload {workload}" + (f" --mode {mode}" if mode else "")
    return hint


def latest_pair(store: Store, workload: str, framework_a: str, framework_b: str,
                mode: str | None = None, size: str | None = None, execution_a: str | None = None,
                execution_b: str | None = None, dtype: str | None = None,
                device: str | None = None, batch_size: int | None = None) -> tuple[dict, dict]:
    """The latest ok runs of two frameworks on a workload at `batch_size` (None: the
    size's own), B at A's size, dtype and device (a profiled run's: an import names its
    device as its trace does) unless told: runs at different precisions or on different
    devices are never paired.
    Without a mode: train for the catalog's workloads and where runs of train exist,
    else any mode (an import may have none)."""
    if mode is None and (workload in WORKLOADS or store.has_runs_of(workload, "train")):
        mode = "train"
    run_a = latest_run(store, workload, framework_a, mode, execution_a, size, dtype, device, batch_size)
    same_device = run_a["device"] if run_a["source"] == "profile" else None
    run_b = latest_run(store, workload, framework_b, mode, execution_b, size or run_a["size"],
                       dtype or run_a["dtype"], device or same_device, batch_size)
    return run_a, run_b
