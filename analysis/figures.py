"""Per-repeat figures of one run (ms per step by category, op or kernel), the outlier
rule for repeats, and the time basis; see docs/statistics.md."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from analysis.stats import summarize
from profiler.store import Store


# On the CPU, the part of a profiled step that no op accounts for: the framework's
# dispatch and runtime, Python, the profiler's own cost. Dominant for small models.
BETWEEN_OPS = "(between ops)"


# A repeat whose median step (timed or profiled) is more than this many times off the
# median repeat's ran while the machine did something else: it is left out, and said
# so. Healthy repeats here differ by up to 1.5x; under load, two of five profiled
# repeats ran 5x slower than the other three and hid a 3x slowdown from the interval.
OUTLIER_FACTOR = 2.0
UNSTABLE_SPREAD = 1.5


def outlier_repeats(step_ms: dict[int, float]) -> dict[int, float]:
    """Repeats whose median step is more than OUTLIER_FACTOR slower than the median
    repeat's (a busy machine slows a process down, it never speeds one up):
    repeat -> factor. Needs 3 repeats."""
    if len(step_ms) < 3 or min(step_ms.values()) <= 0:
        return {}
    center = median(step_ms.values())
    return {r: v / center for r, v in step_ms.items() if v / center > OUTLIER_FACTOR}


@dataclass
class RunFigures:
    run: dict
    basis: str  # "device" or "cpu"
    repeats: list[int]
    # key -> one value (ms per step) per repeat, in `repeats` order
    per_repeat: dict[str, list[float]] = field(default_factory=dict)
    step_ms: list[float] = field(default_factory=list)  # median unprofiled step per repeat
    step_repeats: list[int] = field(default_factory=list)  # the repeat of each of step_ms
    profiled_step_ms: list[float] = field(default_factory=list)
    steps_profiled: bool = False  # no unprofiled steps (an import): step_ms are profiled ones
    peak_bytes: int | None = None
    allocations_per_step: float | None = None

    excluded: dict[int, float] = field(default_factory=dict)  # repeat -> its factor off
    spread: float | None = None  # slowest / fastest per-repeat median step, kept repeats

    def mean(self, key: str) -> float:
        return summarize(self.per_repeat.get(key, []))


def run_figures(store: Store, run: dict, by: str = "category") -> RunFigures:
    """Per-repeat figures of one run, by category, op or kernel (see the module's doc)."""
    run_id = run["id"]
    has_device = store.has_device_events(run_id)
    basis = "device" if has_device else "cpu"

    steps = defaultdict(list)  # (repeat) -> profiled step numbers
    plain = defaultdict(list)
    profiled_walls = defaultdict(list)
    step_wall_ms = {}
    for row in store.step_rows(run_id):
        if row["profiled"]:
            steps[row["repeat"]].append(row["step"])
            profiled_walls[row["repeat"]].append(row["wall_ns"] / 1e6)
            step_wall_ms[row["repeat"], row["step"]] = row["wall_ns"] / 1e6
        else:
            plain[row["repeat"]].append(row["wall_ns"] / 1e6)
    # imported traces have no unprofiled steps: their profiled steps stand in
    timing = plain if any(plain.values()) else profiled_walls
    excluded = outlier_repeats({r: median(v) for r, v in timing.items() if v})
    excluded.update(outlier_repeats({r: median(v) for r, v in profiled_walls.items() if v}))
    if 2 * len(excluded) >= len(steps):
        excluded = {}  # no majority left to trust: keep all, the spread note warns
    repeats = [r for r in sorted(steps) if r not in excluded]
    figures = RunFigures(run, basis, repeats, excluded=excluded)
    figures.step_repeats = [r for r in sorted(timing) if timing[r] and r not in excluded]
    figures.step_ms = [median(timing[r]) for r in figures.step_repeats]
    figures.profiled_step_ms = [median(profiled_walls[r]) for r in repeats]
    figures.steps_profiled = timing is profiled_walls
    if len(figures.step_ms) >= 2:
        figures.spread = max(figures.step_ms) / min(figures.step_ms)

    per_step: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    for row in store.time_per_step(run_id, by):
        per_step[row["key"]][row["repeat"], row["step"]] = (row["ns"] or 0) / 1e6
    if basis == "cpu" and per_step:
        in_ops = defaultdict(float)
        for values in per_step.values():
            for where, ms in values.items():
                in_ops[where] += ms
        per_step[BETWEEN_OPS] = {
            where: max(wall - in_ops[where], 0.0) for where, wall in step_wall_ms.items()
        }
    for key, values in per_step.items():
        figures.per_repeat[key] = [
            median(values.get((r, step), 0.0) for step in steps[r]) for r in repeats
        ]

    memory = store.memory_per_repeat(run_id)
    device_peak = store.device_peak_bytes(run_id)
    peaks = [r["peak"] for r in memory if r["peak"] is not None]
    figures.peak_bytes = device_peak or (max(peaks) if peaks else None)
    profiled_steps = sum(len(v) for v in steps.values())
    if memory and profiled_steps:
        figures.allocations_per_step = sum(r["allocations"] or 0 for r in memory) / profiled_steps
    return figures
