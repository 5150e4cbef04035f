"""An exported review of runs, for a person rather than a viewer: an offline HTML page
or a Markdown summary, drawn from analysis.summary's plain data."""

from __future__ import annotations

from pathlib import Path

from profiler.interchange.export import Exported, ExportError, writable
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
