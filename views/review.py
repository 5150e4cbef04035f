"""Exports: an offline HTML page or a Markdown summary drawn from analysis.summary's
plain data, or the traces and tables profiler.interchange.export writes."""

from __future__ import annotations

from pathlib import Path

from analysis.summary import review_summary
from profiler.interchange import export as traces
from profiler.interchange.export import Exported, ExportError, writable
from views.labels import trace_label
from views.html import render_html
from views.markdown import render_markdown

RENDERERS = {"html": render_html, "md": render_markdown}


def write_review(summary: dict, fmt: str, output: Path) -> Exported:
    text = RENDERERS[fmt](summary)
    try:
        writable(output).write_text(text)
    except OSError as error:
        raise ExportError(f"cannot write {output}: {error.strerror}") from None
    return Exported(fmt, output, [output], len(summary["runs"]))


def export(store, runs: list[dict], fmt: str, output: Path, step_range: str | None = None,
           repeat: int = 0) -> Exported:
    """Export `runs` in `fmt`: a review (html, md) or a trace or tables (perfetto,
    tensorboard, csv); `step_range` slices the last two."""
    steps = traces.parse_step_range(step_range, fmt)
    if fmt in RENDERERS:
        return write_review(review_summary(store, runs), fmt, output)
    return traces.write(store, runs, fmt, output, steps, repeat, trace_label)
