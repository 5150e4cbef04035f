"""`xprof watch`: frames drawn from snapshots that a thread takes on a timer, so that a
frame never waits on a query."""

from __future__ import annotations

import threading
import time
from typing import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from profiler.errors import UserError
from views.labels import STATE_COLOURS, STATUS_COLOURS, short_id, size_text
from views.numbers import (
    configuration_text,
    gib_text,
    host_text,
    interval_text,
    ms_text,
    ratio_text,
    sparkline,
    visible_text,
)


def _reading(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _telemetry_lines(snapshot) -> list[Text]:
    lines = []
    for device in snapshot["telemetry"]:
        s = device["latest"]
        if device["source"] == "nvml":
            # a reading the GPU does not report (NVML's NotSupported) shows as "-", not 0
            text = (f"{device['device']:<6} util {_reading(s['utilization_pct'], '3.0f')}%  mem "
                    f"{gib_text(s['memory_used_bytes'])}/{gib_text(s['memory_total_bytes'])}  "
                    f"{_reading(s['power_w'], '.0f')} W  {_reading(s['sm_clock_mhz'], '.0f')} MHz  "
                    f"{_reading(s['temperature_c'], '.0f')}°C  ")
        else:
            text = (f"host   cpu {s['utilization_pct'] or 0:3.0f}%  worker cpu {s['cpu_pct'] or 0:4.0f}%"
                    f"  rss {gib_text(s['rss_bytes'])}  ")
        lines.append(Text(text) + Text(sparkline(device["history"], low=0), style="cyan"))
    if not snapshot["telemetry"]:
        lines.append(Text("no telemetry in the last 5 min (sampled during runs and by the daemon)",
                          style="dim"))
    nvml = snapshot.get("nvml")
    if nvml and nvml["state"] != "available":
        lines.append(Text(f"NVML unavailable: {nvml['reason']}", style="yellow"))
    return lines


def _running_lines(snapshot) -> list[Text]:
    if not snapshot["running"]:
        return [Text("no run in progress", style="dim")]
    return [Text(f"running: {r['workload']} {r['mode']} {size_text(r['size'], r.get('batch_size'))} {r.get('dtype') or ''} {r['framework']} "
                 f"{r['execution']} on {r.get('device') or '?'}{host_text(r.get('host'))}"
                 f"  repeat {min(r['repeats_done'] + 1, r['repeats'] or 1)}/{r['repeats'] or 1}"
                 f"  {r['elapsed_s']:.0f} s", style="cyan") for r in snapshot["running"][:3]]


def _differences_table(snapshot, rows: int) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold underline",
                  title="latest TF / torch, per step", title_justify="left")
    cells = []
    for d in snapshot["differences"][:rows]:
        step = d["step"]
        ratio = "-" if step["ratio"] is None else f"{ratio_text(step['ratio'])}x"
        style = ("red" if (step["ratio"] or 0) > 1 else "green") if step["significant"] else "dim"
        gaps = ", ".join(f"{escape(r['key'])} {r['delta_ms']:+.3f}" for r in d["rows"])
        cells.append((f"{d['workload']} {size_text(d['size'], d.get('batch_size'))} {d.get('dtype') or ''}".rstrip(),
                      f"[{style}]{ratio}{interval_text(step['ci_low'], step['ci_high'])}[/]", gaps))
    # the workload and its ratio keep their width; the list of gaps gives way
    for i, column in enumerate(("workload", "step TF/torch")):
        width = max([len(column)] + [Text.from_markup(c[i]).cell_len for c in cells])
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("largest gaps (ms, tf - torch)", no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*row)
    return table


def _recent_table(snapshot, rows: int) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold underline",
                  title="recent runs", title_justify="left")
    for column in ("id", "status", "workload", "framework", "step ms"):
        table.add_column(column, no_wrap=True, justify="right" if column == "step ms" else "left")
    for r in snapshot["recent"][:rows]:
        median = r["step_ms_median"]
        table.add_row(short_id(r["id"]), f"[{STATUS_COLOURS.get(r['status'], 'white')}]{r['status']}[/]",
                      f"{r['workload'] or '-'} {r['mode'] or ''}{host_text(r.get('host'))}",
                      f"{r['framework']} {r['execution'] or ''}",
                      ms_text(median))
    return table


def _state_lines(snapshot, rows: int = 3) -> list[Text]:
    """The states' counts, then the worst configurations: state, sparkline of the last
    runs' step time, the configuration and why."""
    counts = ", ".join(f"{n} {state}" for state, n in snapshot.get("states", {}).items() if n)
    lines = [Text(f"states: {counts or 'no ok runs yet'}", style="bold", no_wrap=True, overflow="ellipsis")]
    for e in snapshot.get("configurations", [])[:rows]:
        why = e["why"] or visible_text(e["smallest_visible_change"])
        lines.append(Text(f"{e['state']:<11.11} {sparkline(e['recent_step_ms'][-12:]):<12} "
                          f"{ms_text(e['recent_step_ms'][-1]):>7} {configuration_text(e)}" + (f": {why}" if why else ""),
                          style=STATE_COLOURS[e["state"]], no_wrap=True, overflow="ellipsis"))
    return lines


def _daemon_line(snapshot) -> Text:
    daemon = snapshot.get("daemon")
    if not daemon or not daemon["running"]:
        return Text("daemon: not running (xprof daemon start)", style="dim")
    text = f"daemon {daemon['pid']} ({daemon.get('schedule') or '?'}): {daemon.get('phase') or '?'}"
    if daemon.get("phase") == "waiting" and daemon.get("next_cycle_at"):
        left = max(daemon["next_cycle_at"] - snapshot["taken_at"], 0)
        text += (f", next {time.strftime('%H:%M', time.localtime(daemon['next_cycle_at']))}"
                 f" in {left / 60:.0f} min")
    last = daemon.get("last_cycle")
    if last:
        text += f"; last {last['runs_ok']} ok, {last['runs_failed']} failed"
    return Text(text, style="cyan", no_wrap=True, overflow="ellipsis")


def render_frame(snapshot: dict, store_path: str, height: int = 24) -> Group:
    """A frame for a terminal of `height` rows: 80x24 shows the essentials, a taller one
    more differences and more recent runs."""
    spare = max(height - 24, 0)
    stamp = time.strftime("%H:%M:%S", time.localtime(snapshot["taken_at"]))
    header = Text(f"xprof watch  {stamp}  {store_path}  (Ctrl-C quits)", style="bold",
                  no_wrap=True, overflow="ellipsis")
    return Group(
        header,
        *([Text(f"last snapshot failed, retrying: {snapshot['error']}", style="red",
                no_wrap=True, overflow="ellipsis")] if snapshot.get("error") else []),
        _daemon_line(snapshot),
        *_telemetry_lines(snapshot),
        *_running_lines(snapshot),
        _differences_table(snapshot, 4 + spare // 3),
        _recent_table(snapshot, 4 + spare // 2),
        *_state_lines(snapshot, 2 + spare // 6),  # the counts line and the worst two at 80x24
    )


def watch(take: Callable[[], dict], store_path: str, interval_s: float, once: bool = False) -> None:
    """Draw frames until Ctrl-C (one, with `once`). `take()` makes a snapshot; its first
    error ends the command, later ones are shown in the frame and retried."""
    first = take()
    console = Console()
    if once:
        console.print(render_frame(first, store_path, console.height))
        return
    latest = {"snapshot": first}
    stop = threading.Event()

    def refresh():
        # an error in one snapshot (a store being migrated, an analysis bug) is shown in
        # the frame and the next snapshot is tried; the view never freezes silently
        while not stop.wait(interval_s):
            try:
                latest["snapshot"] = take()
            except Exception as error:  # noqa: BLE001 - shown in the frame, retried
                text = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
                latest["snapshot"] = {**latest["snapshot"], "error": text}

    threading.Thread(target=refresh, name="xprof-snapshots", daemon=True).start()
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(render_frame(latest["snapshot"], store_path, console.height), refresh=True)
                time.sleep(min(interval_s, 1.0))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
