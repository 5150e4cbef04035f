"""Small synthetic stores for tests that check arithmetic: runs whose per-step figures
are chosen by the test, written through the store's own API (no framework, no trace)."""

from __future__ import annotations

import itertools

from profiler.traces.events import CPU_OP, KERNEL, MemoryEvent, StepTiming, TraceEvent

_clock = itertools.count(1)


def add_run(store, figures: list[dict[str, float] | list[dict[str, float]]], *, framework="torch",
            workload="mlp", mode="train", execution=None, size="tiny", device="cpu", dtype="fp32", batch_size=None, steps=3,
            step_ms: list[float] | None = None, profiled_step_ms: list[float] | None = None,
            env: dict | None = None, status="ok", started_at: float | None = None,
            source="profile", peak_bytes: int | None = None, unprofiled=True, host: str | None = None) -> dict:
    """A finished run with one repeat per entry of `figures`, each mapping a category to
    its milliseconds in every profiled step of that repeat, or a list of such maps, one
    per profiled step (a category missing from a step's map is not run in that step). On
    a "cpu" device the events are CPU ops timed by self time; otherwise device kernels.
    `step_ms` (per repeat, default twice the repeat's largest step total) is each
    unprofiled step's wall time; `profiled_step_ms` the profiled steps' (default the
    same). `unprofiled=False` stores profiled steps only, as an imported trace has.
    Returns the stored run."""
    execution = execution or {"torch": "eager", "tensorflow": "graph"}[framework]
    started_at = started_at if started_at is not None else 1_000.0 + next(_clock)
    per_step = [f if isinstance(f, list) else [f] * steps for f in figures]
    assert all(len(p) == steps for p in per_step), "one map per profiled step"
    step_ms = step_ms or [2 * max(sum(f.values()) for f in p) or 1.0 for p in per_step]
    profiled_step_ms = profiled_step_ms or step_ms
    kind = CPU_OP if device == "cpu" else KERNEL
    run_id = store.create_run(framework=framework, workload=workload, mode=mode,
                              execution=execution, size=size, device=device, dtype=dtype, batch_size=batch_size,
                              source=source, repeats=len(figures), started_at=started_at, env=env or {},
                              **({"host": host} if host else {}))
    with store.transaction() as conn:
        for repeat, step_figures in enumerate(per_step):
            t = 0
            timings = []
            events = []
            for step, per_category in enumerate(step_figures, start=1):
                if unprofiled:
                    timings.append(StepTiming(step, round(step_ms[repeat] * 1e6), False, None,
                                              repeat, peak_bytes))
                wall_ns = round(profiled_step_ms[repeat] * 1e6)
                timings.append(StepTiming(step, wall_ns, True, t, repeat, peak_bytes))
                start = t
                for category, ms in per_category.items():
                    dur_ns = int(round(ms * 1e6))
                    events.append(TraceEvent(category, kind, start, dur_ns, device, "0",
                                             op=category, self_ns=dur_ns, step=step))
                    start += dur_ns
                t += wall_ns
            store.add_steps(conn, run_id, timings)
            count = store.add_events(conn, run_id, repeat, events, classify=lambda e: e.name)
            store.set_run_columns(conn, run_id, event_count=count)
    store.finish_run(run_id, status)
    return store.run(run_id)


def add_events(store, run: dict, repeat: int, events: list[TraceEvent],
               categories: dict[str, str] | None = None) -> None:
    """Write `events` into a repeat of a stored run as they are; an event's category is
    `categories[name]` when given, else its name."""
    with store.transaction() as conn:
        store.add_events(conn, run["id"], repeat, events,
                         classify=lambda e: (categories or {}).get(e.name, e.name))
        store.keep_figures(conn, run["id"])  # as finishing the run would


def add_memory(store, run: dict, repeat: int, allocations: list[tuple[int, int, int]],
               device="cpu") -> None:
    """Memory events into a repeat of a stored run, each (ts_ns, bytes, total_allocated):
    bytes > 0 an allocation, < 0 a free."""
    with store.transaction() as conn:
        store.add_memory(conn, run["id"], repeat,
                         [MemoryEvent(ts, size, total, device) for ts, size, total in allocations])
        store.keep_figures(conn, run["id"])


def ms_event(name: str, start_ms: float, dur_ms: float, *, step: int, kind=CPU_OP, device="cpu",
             self_ms: float | None = None, op: str | None = None) -> TraceEvent:
    """A TraceEvent given in milliseconds (self time defaults to its duration)."""
    return TraceEvent(name, kind, int(round(start_ms * 1e6)), int(round(dur_ms * 1e6)), device,
                      "0", op=op, self_ns=int(round((dur_ms if self_ms is None else self_ms) * 1e6)),
                      step=step)
