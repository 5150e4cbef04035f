"""What `xprof watch` shows, read from the store in bounded queries.

Every query is limited by an index and a LIMIT or a time window, so a frame costs the
same on a store with a year of history as on a new one. The expensive part, the ranked
category differences of the latest pair of runs per workload, is memoized by run ids:
it is computed again only when a newer run lands.
"""

from __future__ import annotations

import json
import sqlite3
import time

from .diff import compare
from .regressions import find_regressions
from .samples import AnalysisError, query_rows

TELEMETRY_WINDOW_S = 300
RECENT_RUNS = 20  # as many as a tall terminal shows
HISTORY_POINTS = 30


def _telemetry(conn, now_ns: int) -> list[dict]:
    rows = query_rows(conn, "SELECT * FROM samples WHERE ts_ns > ? ORDER BY ts_ns DESC LIMIT 2000",
                 (now_ns - TELEMETRY_WINDOW_S * 10**9,))
    devices: dict[tuple, dict] = {}
    for row in rows:  # newest first
        key = (row["source"], row["device"])
        entry = devices.setdefault(key, {"latest": row, "history": []})
        if len(entry["history"]) < HISTORY_POINTS:
            value = row["utilization_pct"] if row["source"] == "nvml" else row["cpu_pct"]
            entry["history"].append(value)
    for entry in devices.values():
        entry["history"].reverse()
    return [dict(source=k[0], device=k[1], **v) for k, v in sorted(devices.items())]


def _running(conn, now: float) -> list[dict]:
    runs = query_rows(conn, "SELECT id, framework, execution, workload, mode, size, repeats, started_at"
                       " FROM runs WHERE status = 'running' ORDER BY started_at")
    for run in runs:
        run["repeats_done"] = conn.execute(
            "SELECT count(DISTINCT repeat) FROM steps WHERE run_id = ?", (run["id"],)).fetchone()[0]
        run["elapsed_s"] = now - run["started_at"]
    return runs


class SnapshotReader:
    """Takes snapshots; remembers the comparisons it already made."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._diffs: dict[tuple[str, str], dict | None] = {}
        self._regressions: tuple[float | None, list] = (None, [])

    def _latest_pairs(self) -> list[tuple[dict, dict]]:
        pairs = []
        latest = query_rows(self.conn, "SELECT * FROM runs WHERE status = 'ok' AND source = 'profile'"
                                  " ORDER BY started_at DESC LIMIT 200")
        seen = {}
        for run in latest:
            key = (run["workload"], run["mode"], run["size"])
            seen.setdefault(key, {}).setdefault(run["framework"], run)
        for sides in seen.values():
            if "torch" in sides and "tensorflow" in sides:
                pairs.append((sides["torch"], sides["tensorflow"]))
        return pairs

    def _diff(self, a: dict, b: dict) -> dict | None:
        key = (a["id"], b["id"])
        if key not in self._diffs:
            try:
                self._diffs[key] = compare(self.conn, a, b)
            except AnalysisError:
                self._diffs[key] = None
        return self._diffs[key]

    def take(self) -> dict:
        now = time.time()
        recent = query_rows(self.conn, "SELECT id, status, framework, execution, workload, mode, size,"
                                  " step_ms_median, started_at, error, env FROM runs"
                                  " ORDER BY started_at DESC LIMIT ?", (RECENT_RUNS,))
        nvml = None
        for run in recent:
            env = json.loads(run.pop("env") or "{}")
            if nvml is None and env.get("nvml"):
                nvml = {"state": env["nvml"], "reason": env.get("reason")}
        differences = []
        for a, b in self._latest_pairs():
            result = self._diff(a, b)
            if result:
                differences.append({"workload": a["workload"], "mode": a["mode"],
                                    "size": a["size"], "step": result["step"],
                                    "rows": result["rows"][:3]})
        newest = self.conn.execute("SELECT MAX(finished_at) FROM runs WHERE status = 'ok'").fetchone()[0]
        if newest != self._regressions[0]:  # only a new finished run can change the answer
            self._regressions = (newest, find_regressions(self.conn)["regressions"])
        return {
            "taken_at": now,
            "regressions": self._regressions[1][:10],
            "telemetry": _telemetry(self.conn, int(now * 1e9)),
            "nvml": nvml,
            "running": _running(self.conn, now),
            "recent": recent,
            "differences": differences,
        }
