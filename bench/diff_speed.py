"""How fast `xprof diff` answers on a store of 1,000 runs with two 100k-event runs
(`.venv/bin/python bench/diff_speed.py`); see docs/measurements.md."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.traces.events import TraceEvent, StepTiming  # noqa: E402
from profiler.store.store import Store  # noqa: E402

CATEGORIES = ["matmul", "convolution", "elementwise", "reduction", "normalization",
              "softmax/loss", "optimizer", "data movement", "other"]
REPEATS, STEPS = 3, 10


def add_run(store: Store, framework: str, workload: str, kernels: int, rng: random.Random,
            slower: float = 1.0) -> str:
    """An ok GPU run of `kernels` random kernels over REPEATS repeats of STEPS steps."""
    run_id = store.create_run(framework=framework, workload=workload, mode="train", execution="eager",
                              size="small", source="profile", device="cuda:0")
    per_step = kernels // (REPEATS * STEPS)
    steps, events = [], {}
    for repeat in range(REPEATS):
        clock = 0
        batch = []
        for step in range(1, STEPS + 1):
            start = clock
            for i in range(per_step):
                dur = int(rng.expovariate(1 / 2000) * slower) + 1
                batch.append(TraceEvent(f"kernel_{i % 300}", "kernel", clock, dur, "cuda:0", "7",
                                         op=f"aten::op_{i % 40}", self_ns=dur, step=step))
                clock += dur + 100
            steps.append(StepTiming(step, clock - start, True, start, repeat))
            steps.append(StepTiming(step, int((clock - start) * 0.9), False, None, repeat))
        events[repeat] = batch
    with store.transaction() as conn:
        store.add_steps(conn, run_id, steps)
        for repeat, batch in events.items():
            store.add_events(conn, run_id, repeat, batch,
                             classify=lambda e: CATEGORIES[hash(e.name) % len(CATEGORIES)])
        store.set_run_columns(conn, run_id, event_count=sum(map(len, events.values())))
    store.finish_run(run_id, "ok")
    return run_id


def build(path: Path, runs: int, kernels: int) -> tuple[str, str]:
    store = Store.open(path)
    rng = random.Random(1)
    big = []
    started = time.perf_counter()
    for i in range(runs):
        is_big = i >= runs - 2
        run_id = add_run(store, "torch" if i % 2 == 0 else "tensorflow", "cnn",
                         kernels if is_big else 2_000, rng, 1.2 if i == runs - 1 else 1.0)
        if is_big:
            big.append(run_id)
    rows = sum(run["event_count"] for run in store.runs())
    print(f"store: {runs} runs, {rows:,} kernel rows, built in {time.perf_counter() - started:.1f} s")
    store.close()
    return big[0], big[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--kernels", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        run_a, run_b = build(db, args.runs, args.kernels)
        xprof = Path(sys.executable).parent / "xprof"
        for by in ("category", "op", "kernel"):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                done = subprocess.run([str(xprof), "diff", run_a, run_b, "--by", by, "--json",
                                       "--db", str(db)], capture_output=True, text=True)
                times.append(time.perf_counter() - started)
                if done.returncode != 0:
                    sys.exit(f"xprof diff failed: {done.stderr.strip()}")
            best = min(times)
            verdict = "meets" if best < 1.0 else "MISSES"
            print(f"xprof diff --by {by:<8} (whole command, best of 3): {best * 1000:6.0f} ms "
                  f"({verdict} the 1 s goal)")

        from analysis.diff import compare

        store = Store.open(db)
        started = time.perf_counter()
        compare(store, store.run(run_a), store.run(run_b), "category")
        print(f"comparison alone (in process, by category): {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
