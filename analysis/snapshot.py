"""What `xprof watch` shows, read from the store in bounded queries; comparisons are
memoized until a newer run lands."""

from __future__ import annotations

import json
import time
from typing import Callable

from analysis.diff import compare
from analysis.regressions import find_regressions
from analysis.runs import AnalysisError
from profiler.store import Store

TELEMETRY_WINDOW_S = 300
RECENT_RUNS = 20  # as many as a tall terminal shows
HISTORY_POINTS = 30
STATE_ROWS = 12  # configurations, worst state first, as many as a tall terminal shows
PAIRED_RUNS = 200  # newest profiled runs searched for a torch/TensorFlow pair
RECENT_COLUMNS = ("id", "status", "framework", "execution", "workload", "mode", "size", "dtype",
                  "device", "batch_size", "step_ms_median", "started_at", "error", "host")
RUNNING_COLUMNS = ("id", "framework", "execution", "workload", "mode", "size", "dtype", "device",
                   "batch_size", "repeats", "started_at", "host")


def _telemetry(store: Store, now_ns: int) -> list[dict]:
    rows = store.recent_samples(now_ns - TELEMETRY_WINDOW_S * 10**9, 2000)
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


def _running(store: Store, now: float) -> list[dict]:
    runs = [{k: run[k] for k in RUNNING_COLUMNS} for run in store.running_runs()]
    for run in runs:
        run["repeats_done"] = store.repeats_stored(run["id"])
        run["elapsed_s"] = now - run["started_at"]
    return runs


class SnapshotReader:
    """Takes snapshots; remembers the comparisons it already made. `daemon_status()`,
    when given, is added to each snapshot as its "daemon"."""

    def __init__(self, store: Store, daemon_status: Callable[[], dict] | None = None):
        self.store = store
        self.daemon_status = daemon_status
        self.comparisons: dict[tuple[str, str], dict | None] = {}  # (run A, run B) -> diff
        self._regressions: tuple[float | None, dict | None] = (None, None)

    def _latest_pairs(self) -> list[tuple[dict, dict]]:
        seen: dict[tuple, dict] = {}
        for run in self.store.newest_ok_runs(PAIRED_RUNS, source="profile"):
            key = (run["workload"], run["mode"], run["size"], run["dtype"], run["device"], run["batch_size"])
            seen.setdefault(key, {}).setdefault(run["framework"], run)
        return [(sides["torch"], sides["tensorflow"]) for sides in seen.values()
                if "torch" in sides and "tensorflow" in sides]

    def _diff(self, a: dict, b: dict) -> dict | None:
        key = (a["id"], b["id"])
        if key not in self.comparisons:
            try:
                self.comparisons[key] = compare(self.store, a, b)
            except AnalysisError:
                self.comparisons[key] = None
        return self.comparisons[key]

    def take(self) -> dict:
        now = time.time()
        recent = []
        nvml = None
        for run in self.store.runs(RECENT_RUNS):
            env = json.loads(run["env"] or "{}")
            if nvml is None and env.get("nvml"):
                nvml = {"state": env["nvml"], "reason": env.get("reason")}
            recent.append({k: run[k] for k in RECENT_COLUMNS})
        differences = []
        for a, b in self._latest_pairs():
            result = self._diff(a, b)
            if result:
                differences.append({"workload": a["workload"], "mode": a["mode"],
                                    "size": a["size"], "dtype": a["dtype"], "device": a["device"],
                                    "batch_size": a["batch_size"], "step": result["step"],
                                    "rows": result["rows"][:3]})
        newest = self.store.last_ok_finish()
        if newest != self._regressions[0]:  # only a new finished run can change the answer
            self._regressions = (newest, find_regressions(self.store))
        check = self._regressions[1]
        snapshot = {
            "taken_at": now,
            "regressions": check["regressions"][:10] if check else [],
            "states": check["states"] if check else {},
            "configurations": check["configurations"][:STATE_ROWS] if check else [],
            "telemetry": _telemetry(self.store, int(now * 1e9)),
            "nvml": nvml,
            "running": _running(self.store, now),
            "recent": recent,
            "differences": differences,
        }
        if self.daemon_status:
            snapshot["daemon"] = self.daemon_status()
        return snapshot
