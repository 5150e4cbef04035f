"""How often `xprof regressions` cries wolf, and how fast it catches a real change
(`.venv/bin/python bench/regression_power.py`); see docs/measurements.md.

Two measurements:
- false alarms on real noise: a store of nights, each a separate `xprof run --suite tiny`
  (both frameworks, not interleaved, as a nightly job runs them), judged night by night
  as it stood then; `--collect N` makes one (about 5 minutes a night here);
- power on real GPU profiles: the shared A100 Kineto trace imported night after night
  with a per-night factor on every kernel and per-kernel jitter, and from some night on one
  category slower by 10, 20 or 30%: the nights to the first regression, and false alarms
  before the change.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.regressions import CONFIRM, MIN_BASELINE, change_words, find_regressions  # noqa: E402
from analysis.taxonomy import classify_event  # noqa: E402
from profiler.interchange.ingest import import_traces  # noqa: E402
from profiler.store import Store  # noqa: E402

A100 = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "kineto" / "a100_alexnet_train.json.gz"
XPROF = Path(sys.executable).parent / "xprof"


# -- false alarms over nights of separate invocations ------------------------------------

def collect(db: Path, nights: int, suite: str) -> None:
    for night in range(nights):
        started = time.perf_counter()
        subprocess.run([str(XPROF), "run", "--suite", suite, "--json", "--db", str(db)],
                       check=False, capture_output=True)
        print(f"night {night + 1}/{nights} in {time.perf_counter() - started:.0f} s", flush=True)


def nights_of(store: Store) -> list[float]:
    """When each night ended: the k-th run of every configuration is night k's."""
    per_configuration = defaultdict(list)
    for run in sorted((r for r in store.runs() if r["status"] == "ok"), key=lambda r: r["started_at"]):
        per_configuration[(run["workload"], run["framework"], run["mode"], run["execution"], run["size"],
                           run["device"])].append(run["started_at"])
    count = min(len(v) for v in per_configuration.values())
    return [max(v[k] for v in per_configuration.values()) for k in range(count)]


def false_alarms(db: Path) -> None:
    store = Store.open(db, create=False)
    ends = nights_of(store)
    judged = defaultdict(int)
    alarmed = defaultdict(int)
    states = defaultdict(lambda: defaultdict(int))
    visible = defaultdict(list)
    alarms = []
    for night, end in enumerate(ends[MIN_BASELINE + CONFIRM - 1:], start=MIN_BASELINE + CONFIRM):
        result = find_regressions(store, as_of=end)
        alarms += [(night, r) for r in result["regressions"]]
        for framework in ("torch", "tensorflow"):
            entries = [e for e in result["configurations"] if e["framework"] == framework]
            judged[framework] += 1
            alarmed[framework] += any(e["state"] == "regression" for e in entries)
            for e in entries:
                states[framework][e["state"]] += 1
                if e["smallest_visible_change"] is not None:
                    visible[framework].append(e["smallest_visible_change"])
    print(f"false alarms: {len(ends)} nights of separate `xprof run` invocations in {db}; judged from night "
          f"{MIN_BASELINE + CONFIRM} on, as the store stood at the end of each night")
    for framework in ("torch", "tensorflow"):
        n = judged[framework]
        seen = visible[framework]
        print(f"  {framework}: {alarmed[framework]} of {n} nights with any regression "
              f"({alarmed[framework] / max(n, 1):.0%}); states over configurations and nights: "
              + ", ".join(f"{s} {c}" for s, c in sorted(states[framework].items(), key=lambda kv: -kv[1]))
              + (f"; smallest visible change of step time: median {change_words(statistics.median(seen))}, "
                 f"range {change_words(min(seen))} to {change_words(max(seen))}" if seen else ""))
    for night, entry in alarms:
        print(f"    night {night}: {entry['workload']} {entry['framework']} {entry['key']} "
              f"{entry['baseline_ms']:.4f} -> {entry['previous_ms']:.4f}, {entry['latest_ms']:.4f} ms")


# -- power on the A100 trace -------------------------------------------------------------

def night_trace(document: dict, path: Path, rng: random.Random, slower: set[str], factor: float) -> None:
    """The trace with every kernel scaled by one night factor (2% sd) and its own jitter
    (1% sd), the kernels named in `slower` by `factor` too."""
    night = math.exp(rng.gauss(0, 0.02))
    events = []
    for event in document["traceEvents"]:
        if event.get("cat") == "kernel":
            scale = night * math.exp(rng.gauss(0, 0.01)) * (factor if event["name"] in slower else 1.0)
            event = {**event, "dur": round(event["dur"] * scale, 3)}
        events.append(event)
    with gzip.open(path, "wt") as out:
        json.dump({**document, "traceEvents": events}, out)


def category_kernels(document: dict, category: str) -> set[str]:
    from profiler.traces.events import KERNEL, TraceEvent

    return {e["name"] for e in document["traceEvents"] if e.get("cat") == "kernel"
            and classify_event(TraceEvent(e["name"], KERNEL, 0, 0, "0", "7")) == category}


def one_series(document: dict, slower: set[str], effect: float, change_night: int, seed: int, tmp: Path) -> dict:
    """Import nights until two after the change; the regressions' state after each."""
    rng = random.Random(seed)
    store = Store.open(tmp / f"s{seed}.db")
    flagged_after, false_nights, judged = None, 0, 0
    for night in range(change_night + CONFIRM):
        path = tmp / f"night{night}.json.gz"
        night_trace(document, path, rng, slower, 1 + effect if night >= change_night else 1.0)
        import_traces(store, [path], "alexnet", f"night {night}", classify_event, mode="train")
        if night + 1 < MIN_BASELINE + CONFIRM:
            continue
        found = find_regressions(store)["regressions"]
        if night < change_night:
            judged += 1
            false_nights += bool(found)
        elif flagged_after is None and any(r["key"] == "matmul" for r in found):
            flagged_after = night - change_night + 1
    store.close()
    return {"flagged_after": flagged_after, "false_nights": false_nights, "judged": judged}


def power(series: int, effects: list[float]) -> None:
    if series < 1:
        return
    if not A100.exists():
        print(f"power: skipped, the shared fixture {A100} is absent")
        return
    document = json.loads(gzip.decompress(A100.read_bytes()))
    slower = category_kernels(document, "matmul")
    print(f"power: {A100.name} imported night after night ({len(slower)} matmul kernels slowed from a night "
          f"drawn between {MIN_BASELINE + CONFIRM + 1} and {MIN_BASELINE + CONFIRM + 8}); {series} series per effect")
    for effect in effects:
        started = time.perf_counter()
        outcomes = []
        for seed in range(series):
            change = random.Random(1000 + seed).randint(MIN_BASELINE + CONFIRM + 1, MIN_BASELINE + CONFIRM + 8)
            with tempfile.TemporaryDirectory() as tmp:
                outcomes.append(one_series(document, slower, effect, change, seed, Path(tmp)))
        within = sum(o["flagged_after"] is not None and o["flagged_after"] <= 2 for o in outcomes)
        first = sum(o["flagged_after"] == 1 for o in outcomes)
        false = sum(o["false_nights"] for o in outcomes)
        judged = sum(o["judged"] for o in outcomes)
        print(f"  matmul {effect:+.0%}: flagged within two nights in {within} of {series} series "
              f"({within / series:.0%}; on the first night {first}); false alarms before the change on "
              f"{false} of {judged} nights ({false / max(judged, 1):.1%}); {time.perf_counter() - started:.0f} s")


def main() -> None:
    """Collect nights, or judge a store of them and measure power on the A100 trace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights-db", type=Path, help="a store of nights to judge (see --collect)")
    parser.add_argument("--collect", type=int, metavar="N", help="first run N nights into --nights-db")
    parser.add_argument("--suite", default="tiny")
    parser.add_argument("--series", type=int, default=40, help="series per effect on the A100 trace")
    parser.add_argument("--effects", default="0.1,0.2,0.3")
    args = parser.parse_args()
    if args.collect:
        if not args.nights_db:
            parser.error("--collect needs --nights-db")
        collect(args.nights_db, args.collect, args.suite)
    if args.nights_db:
        false_alarms(args.nights_db)
    power(args.series, [float(e) for e in args.effects.split(",")])


if __name__ == "__main__":
    main()
