"""run_figures on synthetic runs: time basis, "(between ops)", medians over steps,
outlier repeats, spread, memory."""

import pytest

from analysis.figures import BETWEEN_OPS, run_figures
from profiler.store import Store
from profiler.traces.events import CPU_OP, KERNEL
from synthetic import add_events, add_memory, add_run, ms_event


@pytest.fixture
def store():
    return Store.in_memory()


def test_cpu_run_is_timed_by_op_self_time(store):
    # per step: "linear" lasts 3 ms and holds "addmm" (2 ms), so its own time is 1 ms
    run = add_run(store, [{}] * 2, step_ms=[5.0] * 2)
    for repeat in range(2):
        add_events(store, run, repeat, [
            event for step in (1, 2, 3) for event in (
                ms_event("linear", 5.0 * (step - 1), 3.0, self_ms=1.0, step=step),
                ms_event("addmm", 5.0 * (step - 1) + 0.5, 2.0, step=step))])
    figures = run_figures(store, run)
    assert figures.basis == "cpu"
    assert figures.per_repeat["linear"] == pytest.approx([1.0, 1.0])  # not 3.0
    assert figures.per_repeat["addmm"] == pytest.approx([2.0, 2.0])
    # 5 ms steps less 1 + 2 ms of own op time
    assert figures.per_repeat[BETWEEN_OPS] == pytest.approx([2.0, 2.0])


def test_device_run_is_timed_by_kernel_durations_and_ignores_host_ops(store):
    run = add_run(store, [{"gemm": 2.0}] * 2, device="cuda:0", step_ms=[6.0] * 2)
    for repeat in range(2):
        add_events(store, run, repeat, [
            e for step in (1, 2, 3) for e in (
                # a kernel whose self time says 0.1 ms still counts its 0.5 ms duration
                ms_event("relu_kernel", 6.0 * (step - 1) + 3, 0.5, self_ms=0.1, step=step,
                         kind=KERNEL, device="cuda:0"),
                ms_event("aten::relu", 6.0 * (step - 1) + 3, 0.7, step=step))])  # a host op
    figures = run_figures(store, run)
    assert figures.basis == "device"
    assert figures.per_repeat == {"gemm": [2.0, 2.0], "relu_kernel": [0.5, 0.5]}
    assert BETWEEN_OPS not in figures.per_repeat and "aten::relu" not in figures.per_repeat


def test_between_ops_is_the_profiled_step_wall_less_time_in_ops(store):
    run = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 2, step_ms=[10.0] * 2,
                  profiled_step_ms=[4.0, 5.0])
    figures = run_figures(store, run)
    # profiled walls 4 and 5 ms less 1.5 ms in ops; unprofiled steps play no part
    assert figures.per_repeat[BETWEEN_OPS] == pytest.approx([2.5, 3.5])
    assert figures.step_ms == pytest.approx([10.0, 10.0])
    assert figures.profiled_step_ms == pytest.approx([4.0, 5.0])


def test_between_ops_is_never_negative(store):
    # ops of 1.5 ms in a profiled step of 1 ms (overlap, clock skew): 0, not -0.5
    run = add_run(store, [{"matmul": 1.0, "elementwise": 0.5}] * 2, profiled_step_ms=[1.0] * 2)
    assert run_figures(store, run).per_repeat[BETWEEN_OPS] == [0.0, 0.0]


def test_a_repeat_figure_is_the_median_over_steps_with_zeros_where_an_op_did_not_run(store):
    run = add_run(store, [
        # copy in 1 step of 3: median(0.3, 0, 0) = 0 (a mean would say 0.1);
        # matmul 1, 1, 10: median 1 (a mean would say 4)
        [{"matmul": 1.0, "copy": 0.3}, {"matmul": 1.0}, {"matmul": 10.0}],
        # copy in 2 steps of 3: median(0.3, 0.3, 0) = 0.3 (a mean would say 0.2)
        [{"matmul": 1.0, "copy": 0.3}, {"matmul": 1.0, "copy": 0.3}, {"matmul": 1.0}],
        # no copy at all in this repeat: 0
        [{"matmul": 2.0}] * 3,
    ], step_ms=[30.0] * 3)
    figures = run_figures(store, run)
    assert figures.per_repeat["copy"] == pytest.approx([0.0, 0.3, 0.0])
    assert figures.per_repeat["matmul"] == pytest.approx([1.0, 1.0, 2.0])
    # the figure of a key is the geometric mean of its repeats, arithmetic with a zero
    assert figures.mean("matmul") == pytest.approx(2 ** (1 / 3))
    assert figures.mean("copy") == pytest.approx(0.1)


def test_a_repeat_three_times_slower_than_the_median_repeat_is_left_out(store):
    # default steps twice the ops: 2, 2, 6 ms; 6 / median 2 = 3.0 > 2
    run = add_run(store, [{"matmul": 1.0}, {"matmul": 1.0}, {"matmul": 3.0}])
    figures = run_figures(store, run)
    assert figures.excluded == pytest.approx({2: 3.0})
    assert figures.repeats == [0, 1]
    assert figures.per_repeat["matmul"] == pytest.approx([1.0, 1.0])
    assert figures.step_ms == pytest.approx([2.0, 2.0])
    assert figures.spread == pytest.approx(1.0)  # of the kept repeats


def test_a_repeat_slow_only_in_its_profiled_steps_is_left_out_too(store):
    run = add_run(store, [{"matmul": 1.0}] * 3, step_ms=[2.0] * 3, profiled_step_ms=[2.0, 2.0, 6.0])
    figures = run_figures(store, run)
    assert figures.excluded == pytest.approx({2: 3.0})
    assert figures.profiled_step_ms == pytest.approx([2.0, 2.0])


def test_exactly_twice_the_median_repeat_is_kept(store):
    run = add_run(store, [{"matmul": 1.0}] * 3, step_ms=[2.0, 2.0, 4.0])
    figures = run_figures(store, run)
    assert figures.excluded == {} and figures.repeats == [0, 1, 2]
    assert figures.spread == pytest.approx(2.0)  # 4 / 2


def test_two_repeats_have_no_outlier(store):
    run = add_run(store, [{"matmul": 1.0}, {"matmul": 3.0}])  # steps 2 and 6 ms
    figures = run_figures(store, run)
    assert figures.excluded == {} and figures.repeats == [0, 1]
    assert figures.spread == pytest.approx(3.0)


@pytest.mark.parametrize("step_ms, profiled_step_ms", [
    # 4 repeats: repeat 3 is 3x off in unprofiled steps, repeat 2 in profiled: 2 of 4
    ([2.0, 2.0, 2.0, 6.0], [2.0, 2.0, 6.0, 2.0]),
    # 3 repeats, 2 of them off: a majority would go
    ([2.0, 2.0, 6.0], [2.0, 6.0, 2.0]),
])
def test_nothing_is_left_out_when_half_or_more_of_the_repeats_would_go(store, step_ms, profiled_step_ms):
    run = add_run(store, [{"matmul": 1.0}] * len(step_ms), step_ms=step_ms,
                  profiled_step_ms=profiled_step_ms)
    figures = run_figures(store, run)
    assert figures.excluded == {}
    assert figures.repeats == list(range(len(step_ms)))
    assert figures.spread == pytest.approx(3.0)  # 6 / 2 over every repeat's unprofiled steps


def test_a_run_without_unprofiled_steps_uses_its_profiled_ones(store):
    run = add_run(store, [{"matmul": 1.0}] * 3, profiled_step_ms=[2.0, 2.0, 7.0], unprofiled=False)
    figures = run_figures(store, run)
    assert figures.steps_profiled
    assert figures.excluded == pytest.approx({2: 3.5})  # 7 / 2
    assert figures.step_ms == pytest.approx([2.0, 2.0])


def test_peak_bytes_come_from_the_steps_device_peak(store):
    run = add_run(store, [{"gemm": 1.0}] * 2, device="cuda:0", peak_bytes=4096)
    figures = run_figures(store, run)
    assert figures.peak_bytes == 4096
    assert figures.allocations_per_step is None  # no memory events


def test_peak_bytes_and_allocations_come_from_memory_events(store):
    run = add_run(store, [{"matmul": 1.0}] * 2)  # 2 repeats of 3 profiled steps
    add_memory(store, run, 0, [(0, 100, 100), (10, 50, 150), (20, -100, 50)])
    add_memory(store, run, 1, [(0, 200, 200)])
    figures = run_figures(store, run)
    assert figures.peak_bytes == 200  # the largest total allocated of any repeat
    assert figures.allocations_per_step == pytest.approx(0.5)  # 3 allocations (frees not) / 6 steps


def test_the_steps_device_peak_wins_over_memory_events(store):
    run = add_run(store, [{"gemm": 1.0}] * 2, device="cuda:0", peak_bytes=1000)
    add_memory(store, run, 0, [(0, 200, 200)], device="cuda:0")
    figures = run_figures(store, run)
    assert figures.peak_bytes == 1000
    assert figures.allocations_per_step == pytest.approx(1 / 6)


@pytest.mark.parametrize("kind", [CPU_OP, KERNEL])
def test_figures_made_a_range_of_events_at_a_time_add_up_to_the_whole(store, monkeypatch, kind):
    """keep_figures groups FIGURES_CHUNK events at a time (so its sort stays small) and
    adds each range's sums onto the last: ranges of 2 give what one range gives."""
    from profiler.store import rows

    def stored():
        return {table: sorted(store.connection.execute(f"SELECT * FROM {table}").fetchall())
                for table in ("figures", "kind_totals")}

    run = add_run(store, [{}] * 2, step_ms=[5.0] * 2)
    device = "cuda:0" if kind == KERNEL else "cpu"
    for repeat in range(2):  # groups that span ranges, a key in every step, nested time
        add_events(store, run, repeat, [
            ms_event(name, 5.0 * step + offset, 1.0 + repeat, self_ms=0.5, step=step, kind=kind,
                     device=device, op="aten::mm" if name == "gemm" else None)
            for step in range(4) for name, offset in (("gemm", 0.0), ("relu", 2.0), ("gemm", 3.0))])
    whole = stored()
    assert whole["figures"] and whole["kind_totals"]
    monkeypatch.setattr(rows, "FIGURES_CHUNK", 2)  # a step's two gemms fall apart
    with store.transaction() as conn:
        store.keep_figures(conn, run["id"])
    assert stored() == whole
