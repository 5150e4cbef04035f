"""A short Markdown summary of runs, for a pull request or a CI log."""

from __future__ import annotations

from statistics import median

from .numbers import interval_text


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(row) -> str:
    return interval_text(row.get("ci_low"), row.get("ci_high"))


def render_markdown(summary: dict) -> str:
    lines = ["# xprof summary", "", "| run | framework | workload | mode | size | device | "
             "step ms (median) | repeats |", "|---|---|---|---|---|---|---:|---:|"]
    for run in summary["runs"]:
        step = median(run["step_ms"]) if run["step_ms"] else None
        lines.append(f"| `{run['id']}` | {run['framework']} {run['execution'] or ''} | "
                     f"{run['workload'] or '-'} | {run['mode'] or '-'} | {run['size'] or '-'} | "
                     f"{run['device'] or '-'} | {_ms(step)} | {run['repeats']} |")
    diff = summary.get("diff")
    if diff:
        step = diff["step"]
        ratio = "-" if step["ratio"] is None else f"{step['ratio']:.2f}x"
        lines += ["", f"**B/A step time: {ratio}{_interval(step)}**"
                  f" ({'significant' if step['significant'] else 'not significant'};"
                  f" A = `{diff['a']['id']}`, B = `{diff['b']['id']}`)", "",
                  "| category | A ms | B ms | delta ms | B/A [interval] | significant |",
                  "|---|---:|---:|---:|---|:---:|"]
        for row in diff["rows"][:10]:
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            lines.append(f"| {row['key']} | {_ms(row['a_ms'])} | {_ms(row['b_ms'])} | "
                         f"{row['delta_ms']:+.3f} | {ratio}{_interval(row)} | "
                         f"{'yes' if row['significant'] else ''} |")
        for note in diff["notes"] + [f"environment differs: {d}" for d in diff["environment_differences"]]:
            lines.append(f"\n> {note}")
    elif summary.get("diff_unavailable"):
        lines += ["", f"_No diff: {summary['diff_unavailable']}_"]
    lines.append("")
    return "\n".join(lines)
