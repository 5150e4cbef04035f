"""Trace files and what they hold: the record types and a reader per format, picked here by
the file's name (Kineto JSON or XSpace). Imports nothing else of xprof but its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from profiler.traces.events import TraceData, TraceFormatError

KINETO_SUFFIXES = (".json", ".json.gz")
XPLANE_SUFFIXES = (".xplane.pb", ".xplane.pb.gz")


def trace_format(path: Path) -> str | None:
    name = path.name
    if name.endswith(XPLANE_SUFFIXES):
        return "xplane"
    if name.endswith(KINETO_SUFFIXES):
        return "kineto"
    return None


def read_trace(path, between_pieces: Callable[[], None] | None = None,
               on_segment: Callable[[TraceData], None] | None = None,
               segment_events: int | None = None, time_cuts: bool = True) -> TraceData:
    """The trace in `path`. A Kineto trace is read a piece at a time, calling
    `between_pieces()` after each (an exception it raises stops the reading), and with
    `on_segment` may give events final early in segments (see read_kineto; `time_cuts`
    False: only those that need no time order)."""
    path = Path(path)
    kind = trace_format(path)
    if kind == "kineto":
        from profiler.traces.kineto import read_kineto

        return read_kineto(path, between_pieces=between_pieces, on_segment=on_segment,
                           segment_events=segment_events, time_cuts=time_cuts)
    if kind == "xplane":
        from profiler.traces.xplane import read_xplane

        return read_xplane(path)
    raise TraceFormatError(
        f"{path}: not a trace xprof reads (expected .json, .json.gz, .xplane.pb or .xplane.pb.gz)"
    )
