"""A short Markdown summary of runs, for a pull request or a CI log."""

from __future__ import annotations

import time
from statistics import median

from views.claims import environment_line, measured, unmeasured_line, verdict_cells
from views.numbers import (change_text, clock_text, configuration_text, delta_text, host_text, interval_text,
                           left_out_text, ms_text, rate_text, ratio_word, share_text, sparkline, visible_text)


def _interval(row) -> str:
    return interval_text(row.get("ci_low"), row.get("ci_high"))


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "/").replace("\n", " ")


def render_markdown(summary: dict) -> str:
    lines = ["# xprof summary", "", "| run | framework | workload | mode | size | dtype | device | "
             "step ms (median) | repeats |", "|---|---|---|---|---|---|---|---:|---:|"]
    for run in summary["runs"]:
        step = median(run["step_ms"]) if run["step_ms"] else None
        lines.append(f"| `{run['id']}` | {run['framework']} {run['execution'] or ''} | "
                     f"{run['workload'] or '-'} | {run['mode'] or '-'} | {run['size'] or '-'} | "
                     f"{run.get('dtype') or '-'} | {run['device'] or '-'} | {ms_text(step)} | {run['repeats']} |")
    diff = summary.get("diff")
    if diff:
        step = diff["step"]
        ratio = "-" if step["ratio"] is None else ratio_word(step["ratio"])
        lines += ["", f"**B/A step time: {ratio}{_interval(step)}**"
                  f" ({'significant' if step['significant'] else 'not significant'};"
                  f" A = `{diff['a']['id']}`, B = `{diff['b']['id']}`)", "",
                  "| category | A ms | B ms | delta ms | B/A [interval] | significant |",
                  "|---|---:|---:|---:|---|:---:|"]
        for row in diff["rows"][:10]:
            ratio = ratio_word(row["ratio"])
            lines.append(f"| {row['key']} | {ms_text(row['a_ms'])} | {ms_text(row['b_ms'])} | "
                         f"{delta_text(row['delta_ms'])} | {ratio}{_interval(row)} | "
                         f"{'yes' if row['significant'] else ''} |")
        for note in diff["notes"] + [f"environment differs: {d}" for d in diff["environment_differences"]]:
            lines.append(f"\n> {note}")
    elif summary.get("diff_unavailable"):
        lines += ["", f"_No diff: {summary['diff_unavailable']}_"]
    if summary.get("layers"):
        lines += ["", render_layers(summary["layers"])]
    if summary.get("claims"):
        lines += ["", render_claims(summary["claims"], level=2)]
    lines.append("")
    return "\n".join(lines)


def render_layers(layers: dict) -> str:
    """The layer table of `diff --by layer`: per layer, each side's time, counts, FLOP/s
    and share of its roof."""
    lines = [f"## Layer by layer (A = `{layers['a']['id']}`, B = `{layers['b']['id']}`, forward and backward)", "",
             "| layer | A ms | B ms | B/A [interval] | ops A/B | kernels A/B | FLOP/s A/B | of roof A/B |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for row in layers["rows"]:
        a, b = row["a"], row["b"]
        lines.append(f"| {row['key']} | {ms_text(row['a_ms'])} | {ms_text(row['b_ms'])} | "
                     f"{ratio_word(row['ratio'])}{_interval(row)} | {a['ops']:.0f}/{b['ops']:.0f} | "
                     f"{a['kernels']:.0f}/{b['kernels']:.0f} | {rate_text(a['flops_per_s'])}/{rate_text(b['flops_per_s'])} | "
                     f"{share_text(a['efficiency'])}/{share_text(b['efficiency'])} |")
    peaks = layers.get("peaks") or {}
    lines += ["", f"Peaks: A {peaks.get('a') or 'none (xprof calibrate)'}; B {peaks.get('b') or 'none (xprof calibrate)'}."]
    for label, idle in (layers.get("device_idle") or {}).items():
        if idle:
            lines.append(f"{label.upper()}'s device idle per step: {ms_text(idle['idle_ms'])} ms (waiting for the host "
                         f"{ms_text(idle['host_wait_ms'])} ms, other {ms_text(idle['other_idle_ms'])} ms).")
    return "\n".join(lines)



def render_claims(result: dict, level: int = 1) -> str:
    """`xprof claims` as Markdown: the environment, one table of every measured verdict,
    and each claim's summary line."""
    lines = [f"{'#' * level} The articles' claims, checked on this machine", "", environment_line(result), "",
             "| claim | workload | comparison | verdict | claimed side | other side | advantage [interval] |",
             "|---|---|---|---|---:|---:|---|"]
    for claim in result["claims"]:
        for verdict in measured(claim):
            cells = verdict_cells(verdict, comparisons=2)[:-1]
            lines.append(f"| {claim['id']} | " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    for claim in result["claims"]:
        lines.append(f"{claim['id']}. **{_cell(claim['claim'])}** ({_cell(claim['source'])}). "
                     f"Test: {claim['test']}. **{claim['summary']}.**")
        missing = unmeasured_line(claim, result["size"])
        if missing:
            lines.append(f"   _{missing}_")
        for note in dict.fromkeys(note for verdict in measured(claim) for note in verdict["notes"]):
            lines.append(f"   > {note}")
    lines += ["", f"_{result['ratio']}. {result['method']}._"]
    return "\n".join(lines)


def print_claims(result: dict) -> None:
    """`xprof claims --markdown`: the table the README shows."""
    print(render_claims(result))


def render_cycle_summary(cycle: dict, runs: list[dict], regressions: dict) -> str:
    """What one daemon cycle did and found: the file `--on-regression` is handed. Every
    configuration's state, the regressions' figures, recent change points, and every
    repeat or run left out of a figure."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cycle["started_at"]))
    found = regressions["regressions"]
    verdict = (f"**{len(found)} regression{'s' if len(found) != 1 else ''}**" if found
               else "no regressions")
    if cycle["runs_failed"]:
        verdict += f", **{cycle['runs_failed']} of {cycle['runs_ok'] + cycle['runs_failed']} runs failed**"
    lines = [f"# xprof nightly: {verdict}", "",
             f"Cycle {cycle['number']} started {started}: {cycle['runs_ok']} runs ok, "
             f"{cycle['runs_failed']} failed."]
    if cycle.get("error"):
        lines += ["", f"> the store refused the cycle: {cycle['error']}"]
    entries = regressions.get("configurations", [])
    if entries:
        counts = ", ".join(f"{n} {state}" for state, n in regressions["states"].items() if n)
        lines += ["", f"## States: {counts}", "", "| state | configuration | runs | step ms, oldest to latest | why |",
                  "|---|---|---:|---|---|"]
        for e in entries:
            why = e["why"] or visible_text(e["smallest_visible_change"])
            lines.append(f"| {e['state']} | {configuration_text(e)} | {e['runs']} | "
                         f"{sparkline(e['recent_step_ms'])} {ms_text(e['recent_step_ms'][-1])} | {_cell(why)} |")
    if found:
        lines += ["", "| workload | framework | what | baseline ms | previous ms | latest ms | ratio [interval] | run |",
                  "|---|---|---|---:|---:|---:|---|---|"]
        for r in found:
            ratio = change_text(r["ratio"])
            lines.append(f"| {r['workload']}{host_text(r.get('host'))} | {r['framework']} {r['execution'] or ''} | "
                         f"{_cell(r['key'])} | "
                         f"{ms_text(r['baseline_ms'])} | {ms_text(r['previous_ms'])} | {ms_text(r['latest_ms'])} | "
                         f"{ratio}{_interval(r)} | `{r['latest_run']}` |")
        for r in found:
            for change in r["environment_changed"]:
                lines.append(f"\n> {r['workload']} {r['framework']}: the environment changed, "
                             f"a likely cause: {change}")
    changes = regressions.get("change_points", [])
    if changes:
        lines += ["", "## Step time changed", ""]
        for c in changes:
            env = f"; environment: {'; '.join(c['environment_changed'])}" if c["environment_changed"] else ""
            lines.append(f"- {configuration_text(c)}: at run `{c['run']}` ({clock_text(c['started_at'])}), "
                         f"{ms_text(c['before_ms'])} -> {ms_text(c['after_ms'])} ms ({change_text(c['ratio'])}){env}")
    left = [(e, item) for e in entries for item in e["left_out"]]
    if left:
        lines += ["", "## Left out of the figures", ""]
        lines += [f"- {configuration_text(e)}: {left_out_text(item)}" for e, item in left]
    lines += ["", "| run | workload | framework | status | step ms (median) |", "|---|---|---|---|---:|"]
    for run in runs:
        status = run["status"] if not run["error"] else f"{run['status']}: {run['error'][:120]}"
        lines.append(f"| `{run['id']}` | {run['workload']} {run['mode']} | {run['framework']} "
                     f"{run['execution'] or ''} | {status.replace('|', '/')} | {ms_text(run['step_ms_median'])} |")
    lines.append("")
    return "\n".join(lines)
