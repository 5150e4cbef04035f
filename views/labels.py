"""How runs and workloads are named in every output."""

from __future__ import annotations

# The colour each run status and each regression state is drawn in (terminal and watch).
STATUS_COLOURS = {"ok": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
STATE_COLOURS = {"regression": "red", "suspicious": "yellow", "improvement": "green", "unstable": "magenta",
                 "insufficient data": "dim", "ok": "green"}


def workload_label(workload, mode=None, size=None, dtype=None, device=None, batch_size=None) -> str:
    """'cnn train small bf16 on gpu:0', 'cnn infer small b=1 fp32 on cpu'; an imported run
    may lack any of them: those are left out, and a run with none is an 'imported trace'."""
    what = " ".join(str(part) for part in (workload, mode, size_text(size, batch_size), dtype) if part)
    return (what or "imported trace") + (f" on {device}" if device else "")


def size_text(size, batch_size=None) -> str:
    """A size, and the batch a run took where it was not the size's own: 'tiny b=1'."""
    return f"{size or '-'} b={batch_size}" if batch_size else (size or "")


def placement(entry: dict) -> str:
    """Where and at what precision a run ran, in one cell: 'bf16@gpu:0', 'fp32@cpu'; '-'
    for what an import does not say."""
    return f"{entry.get('dtype') or '-'}@{entry.get('device') or '-'}"


def entry_label(entry: dict) -> str:
    """workload_label of a run or an entry that has its configuration's columns."""
    from views.numbers import host_text

    return (workload_label(*(entry.get(k) for k in ("workload", "mode", "size", "dtype", "device", "batch_size")))
            + host_text(entry.get("host")))


def short_id(run_id: str | None) -> str:
    """The first 8 of a run id's 12 hex digits: unique enough to read, and a prefix
    every command takes."""
    return (run_id or "-")[:8]


def run_label(run: dict, repeats: int | None = None, with_workload: bool = False) -> str:
    """'torch eager (3f2a9c1b)'; with the repeats compared, '(3f2a9c1b, 5 repeats)'; with
    the workload, 'torch eager cnn (3f2a9c1b)'."""
    parts = (run["framework"], run["execution"]) + ((run["workload"],) if with_workload else ())
    what = " ".join(str(part) for part in parts if part)
    detail = short_id(run["id"]) + ("" if repeats is None else f", {repeats} repeats")
    return f"{what} ({detail})"


def trace_label(run: dict) -> str:
    """A run's name in an exported trace viewer: framework, style and workload."""
    return run_label(run, with_workload=True)
