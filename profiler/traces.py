"""Pick the reader for a trace file by its name: Kineto JSON or XSpace protobuf."""

from __future__ import annotations

from pathlib import Path

from .events import TraceData, TraceFormatError

KINETO_SUFFIXES = (".json", ".json.gz")
XPLANE_SUFFIXES = (".xplane.pb", ".xplane.pb.gz")


def trace_format(path: Path) -> str | None:
    name = path.name
    if name.endswith(XPLANE_SUFFIXES):
        return "xplane"
    if name.endswith(KINETO_SUFFIXES):
        return "kineto"
    return None


def read_trace(path) -> TraceData:
    path = Path(path)
    kind = trace_format(path)
    if kind == "kineto":
        from .kineto import read_kineto

        return read_kineto(path)
    if kind == "xplane":
        from .xplane import read_xplane

        return read_xplane(path)
    raise TraceFormatError(
        f"{path}: not a trace xprof reads (expected .json, .json.gz, .xplane.pb or .xplane.pb.gz)"
    )
