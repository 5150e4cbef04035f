"""One self-contained HTML review: no scripts, no network, plots drawn as inline SVG."""

from __future__ import annotations

import math
from html import escape
from statistics import median

from analysis.report import NO_DIFFERENCE, faster_side
from views.claims import environment_line, measured, unmeasured_line, verdict_cells
from views.labels import run_label, workload_label
from views.numbers import (change_text, clock_text, configuration_text, delta_text, interval_text, left_out_text,
                           ms_text, rate_text, ratio_text, ratio_word, share_text, si_text)

COLOURS = {"matmul": "#4e79a7", "convolution": "#f28e2b", "elementwise": "#e15759",
           "reduction": "#76b7b2", "normalization": "#59a14f", "softmax/loss": "#edc948",
           "optimizer": "#b07aa1", "data movement": "#ff9da7", "communication": "#9c755f",
           "other": "#bab0ac", "(between ops)": "#d4d4d4"}
RUN_COLOURS = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2"]
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: .2em .7em; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-size: 1.1em; padding: .6em 1em; background: #f4f6f8; border-left: 4px solid #4e79a7; }
.sig-slower { color: #b2182b; font-weight: 600; } .sig-faster { color: #1a7f37; font-weight: 600; }
.legend span { display: inline-block; margin-right: 1em; } .swatch { width: .8em; height: .8em;
  display: inline-block; margin-right: .3em; vertical-align: middle; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def _stacked_bars(runs) -> str:
    categories = sorted({c for r in runs for c in r["categories"]},
                        key=lambda c: list(COLOURS).index(c) if c in COLOURS else 99)
    total_max = max((sum(r["categories"].values()) for r in runs), default=0) or 1
    width, row, left = 640, 34, 190
    parts = [f'<svg width="{width}" height="{row * len(runs) + 30}" role="img">']
    for i, run in enumerate(runs):
        y, x = 10 + i * row, left
        parts.append(f'<text x="0" y="{y + 17}">{escape(run_label(run))}</text>')
        for category in categories:
            ms = run["categories"].get(category, 0.0)
            w = (width - left - 70) * ms / total_max
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="24" '
                         f'fill="{COLOURS.get(category, "#888")}"><title>{escape(category)}: '
                         f'{ms_text(ms)} ms</title></rect>')
            x += w
        parts.append(f'<text x="{x + 5:.1f}" y="{y + 17}">{ms_text(sum(run["categories"].values()))} ms</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{COLOURS.get(c, "#888")}"></i>'
                     f"{escape(c)}</span>" for c in categories)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _step_distributions(runs) -> str:
    values = [v for r in runs for v in r["step_ms"]]
    if not values:
        return "<p>No steps recorded.</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    width, row, left = 640, 34, 190
    parts = [f'<svg width="{width}" height="{row * len(runs) + 40}" role="img">']
    for i, run in enumerate(runs):
        y = 10 + i * row
        profiled = " (profiled)" if run.get("steps_profiled") else ""  # an imported trace's
        parts.append(f'<text x="0" y="{y + 15}">{escape(run_label(run))}{profiled}</text>')
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        for v in run["step_ms"]:
            x = left + (width - left - 20) * (v - low) / span
            parts.append(f'<circle cx="{x:.1f}" cy="{y + 11}" r="3" fill="{colour}" fill-opacity=".45"/>')
        if run["step_ms"]:
            m = median(run["step_ms"])
            x = left + (width - left - 20) * (m - low) / span
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 22}" stroke="#000" '
                         f'stroke-width="2"><title>median {ms_text(m)} ms</title></line>')
    axis_y = 10 + len(runs) * row + 12
    parts.append(f'<text x="{left}" y="{axis_y}">{ms_text(low)} ms</text>'
                 f'<text x="{width - 80}" y="{axis_y}">{ms_text(high)} ms</text></svg>')
    return "".join(parts)


def _memory_plot(runs) -> str:
    series = [(i, r) for i, r in enumerate(runs) if r["memory"]]
    pruned = [run_label(r) for r in runs if r.get("events_pruned_at")]
    note = (f"<p>The raw memory events of {escape(', '.join(pruned))} were pruned (xprof prune).</p>"
            if pruned else "")
    if not series:
        return note or "<p>No memory events recorded.</p>"
    t_max = max(t for _, r in series for t, _ in r["memory"]) or 1.0
    b_max = max(b for _, r in series for _, b in r["memory"]) or 1
    width, height, left = 640, 220, 60
    parts = [f'<svg width="{width}" height="{height + 30}" role="img">',
             f'<text x="0" y="12">{b_max / 2**20:.2f} MiB</text><text x="0" y="{height}">0</text>']
    for i, run in series:
        points = " ".join(f"{left + (width - left - 10) * t / t_max:.1f},"
                          f"{height - (height - 20) * b / b_max:.1f}" for t, b in run["memory"])
        parts.append(f'<polyline points="{points}" fill="none" stroke="{RUN_COLOURS[i % 6]}" '
                     f'stroke-width="1.5"><title>{escape(run_label(run))}</title></polyline>')
    parts.append(f'<text x="{left}" y="{height + 20}">0 ms</text>'
                 f'<text x="{width - 90}" y="{height + 20}">{t_max:.1f} ms</text></svg>')
    legend = "".join(f'<span><i class="swatch" style="background:{RUN_COLOURS[i % 6]}"></i>'
                     f"{escape(run_label(r))}</span>" for i, r in series)
    return note + "".join(parts) + f'<div class="legend">{legend}</div>'


def _history_plot(history, runs) -> str:
    """A configuration's step time run after run: the exported runs ringed, each change
    point a dashed line with its ratio."""
    series = history["series"]
    values = [p["value_ms"] for p in series]
    low, high = min(values), max(values)
    span = (high - low) or high or 1.0
    width, height, left, top = 640, 160, 60, 14
    x = (lambda i: left + (width - left - 20) * i / max(len(series) - 1, 1))
    y = (lambda v: top + (height - top - 20) * (1 - (v - low) / span))
    index = {p["run"]: i for i, p in enumerate(series)}
    parts = [f'<svg width="{width}" height="{height + 16}" role="img">',
             f'<text x="0" y="{top + 4}">{ms_text(high)} ms</text><text x="0" y="{height - 16}">{ms_text(low)} ms</text>',
             '<polyline fill="none" stroke="#4477aa" stroke-width="1.5" points="'
             + " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values)) + '"/>']
    for c in history["change_points"]:
        cx = x(index[c["run"]] - 0.5)
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" y2="{height - 20}" stroke="#cc3311" '
                     f'stroke-dasharray="4 3"><title>{escape(c["run"])}: {ms_text(c["before_ms"])} -&gt; '
                     f'{ms_text(c["after_ms"])} ms</title></line><text x="{cx + 3:.1f}" y="{top + 10}" fill="#cc3311">'
                     f"{change_text(c['ratio'])}</text>")
    for run in runs:
        if run["id"] in index:
            i = index[run["id"]]
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(values[i]):.1f}" r="4" fill="none" stroke="#222">'
                         f"<title>{escape(run_label(run))}</title></circle>")
    parts.append(f'<text x="{left}" y="{height + 10}">{clock_text(series[0]["started_at"])[:10]}</text>'
                 f'<text x="{width - 90}" y="{height + 10}">{clock_text(series[-1]["started_at"])[:10]}</text></svg>')
    changes = "; ".join(f"{change_text(c['ratio'])} at run {c['run'][:8]} ({clock_text(c['started_at'])[:10]})"
                        + (f", environment: {'; '.join(c['environment_changed'])}" if c["environment_changed"] else "")
                        for c in history["change_points"]) or "no change point"
    left_out = "".join(f"<li>{escape(left_out_text(item))}</li>" for item in history["left_out"])
    return (f"<h3>{escape(configuration_text(history))}: {len(series)} runs</h3>" + "".join(parts)
            + f"<p>{escape(changes)}</p>" + (f"<p>Left out of the figures:</p><ul>{left_out}</ul>" if left_out else ""))


def _diff_table(diff) -> str:
    rows = []
    for row in diff["rows"]:
        ratio = ratio_word(row["ratio"])
        ratio += interval_text(row["ci_low"], row["ci_high"])
        css = ("sig-slower" if row["delta_ms"] > 0 else "sig-faster") if row["significant"] else ""
        rows.append(f"<tr><td>{escape(row['key'])}</td><td class=num>{ms_text(row['a_ms'])}</td>"
                    f"<td class=num>{ms_text(row['b_ms'])}</td><td class=num>{delta_text(row['delta_ms'])}</td>"
                    f'<td class="{css}">{ratio}</td></tr>')
    return ("<table><tr><th>category</th><th>A ms</th><th>B ms</th><th>delta ms</th>"
            "<th>B/A [interval]</th></tr>" + "".join(rows) + "</table>")


def _log_scale(low: float, high: float, start: float, end: float):
    """A function from [low, high] (log scale) to [start, end] pixels."""
    span = math.log10(high / low) or 1.0
    return lambda v: start + (end - start) * math.log10(max(v, low) / low) / span


def _roofline_chart(rooflines: list[dict]) -> str:
    """Each run's layers (or ops) as points, FLOP/s against FLOPs per byte on log axes,
    under the first run's roof: the bandwidth slope, then the compute peak."""
    points = [(i, roof, row) for i, roof in enumerate(rooflines) for row in roof["rows"]
              if row.get("intensity") and row.get("flops_per_s")]
    if not points:
        return "<p>No rows with both FLOPs and bytes to place (see the tables).</p>"
    device = next((roof["device"] for roof in rooflines if roof["device"]["peak_flops_per_s"]), None)
    xs = [row["intensity"] for _, _, row in points]
    ys = [row["flops_per_s"] for _, _, row in points]
    if device and device["peak_bytes_per_s"]:
        xs.append(device["peak_flops_per_s"] / device["peak_bytes_per_s"])
    if device:
        ys.append(device["peak_flops_per_s"])
    x_low, x_high = min(xs) / 3, max(xs) * 3
    y_low, y_high = min(ys) / 3, max(ys) * 3
    width, height, left, top = 640, 300, 70, 10
    x = _log_scale(x_low, x_high, left, width - 10)
    y = _log_scale(y_low, y_high, height - 20, top)
    parts = [f'<svg width="{width}" height="{height + 20}" role="img">',
             f'<text x="0" y="{top + 10}">{si_text(y_high)}FLOP/s</text>'
             f'<text x="0" y="{height - 20}">{si_text(y_low)}FLOP/s</text>'
             f'<text x="{left}" y="{height}">{x_low:.2g} FLOP/B</text>'
             f'<text x="{width - 90}" y="{height}">{x_high:.2g} FLOP/B</text>']
    if device:
        peak, bandwidth = device["peak_flops_per_s"], device["peak_bytes_per_s"]
        ridge = peak / bandwidth if bandwidth else x_low
        roof = [(x_low, min(peak, x_low * bandwidth) if bandwidth else peak), (ridge, peak), (x_high, peak)]
        parts.append('<polyline fill="none" stroke="#222" stroke-width="2" points="'
                     + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in roof if a >= x_low)
                     + f'"><title>{escape(device["name"] or "")}: {escape(device["source"] or "")}</title></polyline>')
    for i, roof, row in points:
        label = f"{run_label(roof['run'])}: {row['key']}, {si_text(row['flops_per_s'])}FLOP/s at {row['intensity']:.2g} FLOP/B"
        parts.append(f'<circle cx="{x(row["intensity"]):.1f}" cy="{y(row["flops_per_s"]):.1f}" r="4" '
                     f'fill="{RUN_COLOURS[i % 6]}" fill-opacity=".7"><title>{escape(label)}</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{RUN_COLOURS[i % 6]}"></i>'
                     f"{escape(run_label(roof['run']))}</span>" for i, roof in enumerate(rooflines))
    source = (f"<p><small>Roof: {escape(device['name'] or '')}, {escape(device['source'] or '')}.</small></p>"
              if device else "<p><small>No peak known for this device (run <code>xprof calibrate</code>): "
              "points only.</small></p>")
    return "".join(parts) + f'<div class="legend">{legend}</div>' + source


def _layer_table(layers: dict) -> str:
    rows = []
    for row in layers["rows"]:
        a, b = row["a"], row["b"]
        css = ("sig-slower" if row["delta_ms"] > 0 else "sig-faster") if row["significant"] else ""
        rows.append(f"<tr><td>{escape(row['key'])}</td><td class=num>{ms_text(row['a_ms'])}</td>"
                    f"<td class=num>{ms_text(row['b_ms'])}</td>"
                    f'<td class="{css}">{ratio_word(row["ratio"])}{interval_text(row["ci_low"], row["ci_high"])}</td>'
                    f"<td class=num>{a['ops']:.0f}/{b['ops']:.0f}</td><td class=num>{a['kernels']:.0f}/{b['kernels']:.0f}</td>"
                    f"<td class=num>{rate_text(a['flops_per_s'])}/{rate_text(b['flops_per_s'])}</td>"
                    f"<td class=num>{share_text(a['efficiency'])}/{share_text(b['efficiency'])}</td></tr>")
    idle = "".join(f"<li>{escape(label.upper())}: device idle {ms_text(i['idle_ms'])} ms a step, waiting for the "
                   f"host {ms_text(i['host_wait_ms'])} ms, other {ms_text(i['other_idle_ms'])} ms</li>"
                   for label, i in (layers.get("device_idle") or {}).items() if i)
    return ("<table><tr><th>layer</th><th>A ms</th><th>B ms</th><th>B/A [interval]</th><th>ops A/B</th>"
            "<th>kernels A/B</th><th>FLOP/s A/B</th><th>of roof A/B</th></tr>" + "".join(rows) + "</table>"
            + (f"<ul>{idle}</ul>" if idle else ""))



def _verdict(summary) -> str:
    diff = summary.get("diff")
    if not diff:
        return escape(summary.get("diff_unavailable", "One run: nothing to compare."))
    step, a, b = diff["step"], diff["a"], diff["b"]
    if step["ratio"] is None:
        return "No step times to compare."
    interval = ""
    if step["ci_low"] is not None:
        interval = f" (interval{interval_text(step['ci_low'], step['ci_high'], ' to ')})"
    if not step["significant"]:
        return (f"{NO_DIFFERENCE.capitalize()} between {escape(run_label(a))} and "
                f"{escape(run_label(b))}: B/A {ratio_text(step['ratio'])}x{interval}.")
    faster, slower, speedup = faster_side(a, b, step["ratio"])
    return (f"<b>{escape(run_label(faster))}</b> is {speedup} than "
            f"{escape(run_label(slower))}{interval}.")


def _claims_section(result: dict) -> str:
    rows = []
    for claim in result["claims"]:
        for verdict in measured(claim):
            cells = verdict_cells(verdict, comparisons=2)[:-1]
            css = {"holds": "sig-faster", "reversed": "sig-slower"}.get(verdict["verdict"], "")
            rows.append(f"<tr><td>{claim['id']}</td>" + "".join(
                f'<td class="{css if i == 2 else ("num" if i in (3, 4) else "")}">{escape(c)}</td>'
                for i, c in enumerate(cells)) + "</tr>")
    summaries = "".join(
        f"<li><b>{escape(c['claim'])}</b> <small>({escape(c['source'])})</small><br>test: {escape(c['test'])}"
        f"<br><b>{escape(c['summary'])}</b>"
        + (f"<br><small>{escape(unmeasured_line(c, result['size']))}</small>" if unmeasured_line(c, result["size"])
           else "") + "</li>" for c in result["claims"])
    return (f"<h2>The articles' claims, checked on this machine</h2><p>{escape(environment_line(result))}</p>"
            "<table><tr><th>claim</th><th>workload</th><th>comparison</th><th>verdict</th><th>claimed side</th>"
            f"<th>other side</th><th>advantage [interval]</th></tr>{''.join(rows)}</table><ol>{summaries}</ol>"
            f"<p><small>{escape(result['ratio'])}. {escape(result['method'])}.</small></p>")


def render_html(summary: dict) -> str:
    runs = summary["runs"]
    workload = ", ".join(sorted({workload_label(r["workload"], r["mode"], r["size"], r.get("dtype")) for r in runs}))
    table = "".join(
        f"<tr><td><code>{r['id']}</code></td><td>{escape(run_label(r))}</td><td>{escape(str(r['device']))}</td>"
        f"<td class=num>{ms_text(median(r['step_ms']) if r['step_ms'] else None)}</td>"
        f"<td class=num>{r['repeats']}</td></tr>" for r in runs)
    diff = summary.get("diff")
    sections = [
        f"<h1>xprof review: {escape(workload)}</h1>",
        f'<p class="verdict">{_verdict(summary)}</p>',
        "<table><tr><th>run</th><th>framework</th><th>device</th><th>median step ms</th>"
        f"<th>repeats</th></tr>{table}</table>",
        "<h2>Where a step's time goes (ms per step, by category)</h2>", _stacked_bars(runs),
        "<h2>Step time distribution (unprofiled steps, where a run has them; bar = median)</h2>", _step_distributions(runs),
        "<h2>Memory allocated over time (first repeat)</h2>", _memory_plot(runs),
        "<h2>History: step time run after run, per configuration (ringed: these runs; dashed: a change)</h2>",
        *[_history_plot(history, runs) for history in summary.get("history", [])],
    ]
    if diff:
        sections += [f"<h2>Ranked differences, B = {escape(run_label(diff['b']))} against "
                     f"A = {escape(run_label(diff['a']))}</h2>", _diff_table(diff),
                     f"<p><small>{escape(diff['method'])}; significant = interval excludes 1, "
                     f"effect &gt; {diff['min_effect']:.0%}.</small></p>"]
    if summary.get("layers"):
        layers = summary["layers"]
        sections += [f"<h2>Layer by layer, B = {escape(run_label(layers['b']))} against "
                     f"A = {escape(run_label(layers['a']))} (forward and backward, per step)</h2>", _layer_table(layers)]
    if summary.get("rooflines"):
        sections += ["<h2>Roofline: each layer's FLOP/s against its FLOPs per byte</h2>",
                     _roofline_chart(summary["rooflines"])]
    if summary.get("claims"):
        sections.append(_claims_section(summary["claims"]))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>xprof review: {escape(workload)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(sections)}</body></html>\n")
