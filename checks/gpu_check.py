"""`make gpu-check`: on a host with an NVIDIA GPU, profile the tiny suite on GPU 0 in both
frameworks at fp32 and bf16 and check what must hold; elsewhere say so and what it would
check (exit 0). See docs/gpu.md."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
XPROF = str(BIN / "xprof")
DEVICE_KINDS = ("kernel", "memcpy", "memset")
DTYPES = ("fp32", "bf16")
CHECKS = {
    "run": "the tiny suite runs on gpu:0 in both frameworks, at fp32 and at bf16",
    "kernels": "device kernels stored with device time, in both frameworks",
    "bf16": "at bf16, matrix kernels that name bf16 (tensor cores), in both frameworks",
    "busy": "every profiled step lasts at least its device's busy time",
    "memory": "peak device memory for every profiled step, in both frameworks",
    "nvml": "NVML samples stored with the runs and drawn by `xprof watch --once`",
    "doctor": "`xprof doctor` names the driver, the CUDA version and cuDNN",
    "export": "a GPU run exported to Perfetto and to HTML",
}
# Checks made once, on the fp32 runs; the others are made at each dtype.
ONCE = ("nvml", "doctor", "export")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from profiler.telemetry.nvml import Nvml

    nvml = Nvml()
    if not nvml.available or nvml.device_count() == 0:
        print(f"gpu-check: no NVIDIA GPU on this machine ({nvml.reason or 'NVML sees no device'}).")
        print("On a host with one it runs `xprof run --suite tiny --device gpu:0` at fp32 and at bf16 "
              "in both frameworks, then checks:")
        for what in CHECKS.values():
            print(f"  - {what}")
        print("verdict: nothing checked, no GPU (exit 0)")
        return 0
    print(f"gpu-check: {nvml.device_count()} GPU(s), {nvml.name(0)}, driver {nvml.driver_version()}")
    started = time.monotonic()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "gpu_check.db"
        for dtype in DTYPES:
            done = _xprof("run", "--suite", "tiny", "--device", "gpu:0", "--dtype", dtype, "--repeats", "1",
                          "--steps", "5", "--telemetry-interval", "0.2", "--json", "--db", str(db))
            runs = json.loads(done.stdout)["runs"] if done.stdout.strip() else []
            ok = [r for r in runs if r["status"] == "ok" and r["device"] == "gpu:0" and r["dtype"] == dtype]
            failed_runs = [f"{r['workload']} {r['framework']}: {r['error']}" for r in runs if r["status"] != "ok"]
            detail = (f"{len(ok)} of {len(runs)} runs ok on gpu:0" if runs else
                      (done.stderr.strip().splitlines() or ["no run"])[-1])
            results[f"run {dtype}"] = (bool(runs) and len(ok) == len(runs),
                                       "; ".join([detail, *failed_runs[:3]]))
            if ok:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                checks = _checks(conn, ok, db, Path(tmp), dtype)
                results.update({f"{name} {dtype}" if name not in ONCE else name: result
                                for name, result in checks.items() if dtype == "fp32" or name not in ONCE})
    failed = [name for name, (ok, _) in results.items() if not ok]
    for name, (ok, detail) in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {CHECKS[name.split()[0]]}: {detail}")
    print(f"verdict: {len(results) - len(failed)} of {len(results)} checks passed in "
          f"{time.monotonic() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _xprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([XPROF, *args], capture_output=True, text=True, timeout=1200)


def _checks(conn: sqlite3.Connection, runs: list[dict], db: Path, tmp: Path, dtype: str) -> dict:
    """Each check on `runs` (ok runs at `dtype`): name -> (passed, what was seen)."""
    results = {}
    ids = [r["id"] for r in runs]
    in_runs = f"run_id IN ({', '.join('?' * len(ids))})"
    by_framework: dict[str, list[str]] = {}
    for run in runs:
        by_framework.setdefault(run["framework"], []).append(run["id"])
    kinds = ", ".join("?" * len(DEVICE_KINDS))
    device_time = {framework: conn.execute(
        f"SELECT count(*), COALESCE(SUM(dur_ns), 0) FROM event_rows WHERE kind IN ({kinds})"
        f" AND run_id IN ({', '.join('?' * len(ids))})", (*DEVICE_KINDS, *ids)).fetchone()
        for framework, ids in by_framework.items()}
    results["kernels"] = (len(device_time) == 2 and all(n and ns for n, ns in device_time.values()),
                          ", ".join(f"{f}: {n} device events, {ns / 1e6:.1f} ms"
                                    for f, (n, ns) in device_time.items()))
    if dtype == "bf16":
        named = {framework: conn.execute(
            "SELECT count(*) FROM event_rows WHERE kind = 'kernel' AND (lower(name) LIKE '%bf16%'"
            f" OR lower(name) LIKE '%bfloat16%') AND run_id IN ({', '.join('?' * len(fw_ids))})",
            fw_ids).fetchone()[0] for framework, fw_ids in by_framework.items()}
        results["bf16"] = (len(named) == 2 and all(named.values()),
                           ", ".join(f"{f}: {n} kernels" for f, n in named.items()))
    short = []
    for run_id, repeat, step, wall_ns, start_ns in conn.execute(
            f"SELECT run_id, repeat, step, wall_ns, start_ns FROM steps WHERE profiled AND start_ns IS NOT NULL"
            f" AND {in_runs}", ids):
        spans = conn.execute(f"SELECT start_ns, dur_ns FROM event_rows WHERE run_id = ? AND repeat = ?"
                             f" AND step = ? AND kind IN ({kinds}) ORDER BY start_ns",
                             (run_id, repeat, step, *DEVICE_KINDS)).fetchall()
        if _busy_ns(spans) > wall_ns:
            short.append(f"{run_id[:8]} step {step}")
    results["busy"] = (not short, "every step" if not short else f"shorter than its device busy time: {short[:5]}")
    peaks = dict(conn.execute("SELECT r.framework, min(s.peak_bytes IS NOT NULL) FROM steps s"
                              f" JOIN runs r ON r.id = s.run_id WHERE s.profiled AND s.{in_runs}"
                              " GROUP BY r.framework", ids))
    results["memory"] = (len(peaks) == 2 and all(peaks.values()),
                         ", ".join(f"{f}: {'every step' if v else 'missing'}" for f, v in peaks.items()))
    joined = conn.execute("SELECT count(*), count(DISTINCT run_id) FROM samples WHERE source = 'nvml'"
                          " AND run_id IS NOT NULL").fetchone()
    frame = _xprof("watch", "--once", "--db", str(db)).stdout
    results["nvml"] = (joined[0] > 0 and "gpu:0" in frame and "NVML unavailable" not in frame,
                       f"{joined[0]} samples over {joined[1]} runs; watch draws gpu:0: {'gpu:0' in frame}")
    doctor = json.loads(_xprof("doctor", "--json", "--db", str(db)).stdout or "{}")
    named = {"driver": doctor.get("nvml", {}).get("driver_version"),
             "CUDA": doctor.get("torch", {}).get("cuda") or doctor.get("tensorflow", {}).get("cuda_build"),
             "cuDNN": doctor.get("torch", {}).get("cudnn") or doctor.get("tensorflow", {}).get("cudnn_build")}
    results["doctor"] = (all(named.values()), ", ".join(f"{k} {v}" for k, v in named.items()))
    run_id = max(runs, key=lambda r: r["kernels"])["id"]
    exported = [_xprof("export", run_id, "--format", fmt, "-o", str(tmp / f"gpu.{suffix}"), "--db", str(db))
                for fmt, suffix in (("perfetto", "json"), ("html", "html"))]
    sizes = [(tmp / f"gpu.{s}").stat().st_size if (tmp / f"gpu.{s}").exists() else 0 for s in ("json", "html")]
    results["export"] = (all(e.returncode == 0 for e in exported) and all(sizes),
                         f"run {run_id[:8]}: perfetto {sizes[0]:,} bytes, html {sizes[1]:,} bytes")
    return results


def _busy_ns(spans: list[tuple[int, int]]) -> int:
    """Time covered by any of the spans (start, duration), given by start."""
    busy, end = 0, None
    for start, dur in spans:
        if end is None or start >= end:
            busy += dur
            end = start + dur
        elif start + dur > end:
            busy += start + dur - end
            end = start + dur
    return busy


if __name__ == "__main__":
    sys.exit(main())
