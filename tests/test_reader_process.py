"""The trace read in a child process (profiler/traces/reading.py): what it sends is what
the reader gives, in one process or the other; its errors are the reader's; a child
that dies or is left behind never hangs the import nor outlives it."""

import os
import signal

import pytest

from conftest import fixture_path
from profiler.traces.events import TraceFormatError
from profiler.traces.kineto import read_kineto
from profiler.traces.reading import ReaderDied, TraceReading


def _read_all(path, in_child, segmented=True, segment_events=64):
    messages = []
    with TraceReading(path, segmented, segment_events, in_child=in_child) as reading:
        messages.extend(reading)
    return messages


@pytest.mark.parametrize("in_child", [True, False], ids=["child-process", "thread"])
def test_segments_and_rest_join_to_what_the_reader_gives(long_cpu_trace, in_child):
    messages = _read_all(long_cpu_trace, in_child)
    kinds = [kind for kind, _ in messages]
    assert kinds[-1] == "rest" and set(kinds[:-1]) == {"segment"} and len(kinds) >= 3
    whole = read_kineto(long_cpu_trace)
    events = [e for _, data in messages for e in data.events]
    memory = [m for _, data in messages for m in data.memory]
    assert (events, memory) == (list(whole.events), list(whole.memory))  # self time and steps too
    rest = messages[-1][1]
    assert (rest.steps, rest.total_events) == (whole.steps, whole.total_events)


def test_unsegmented_reading_sends_the_whole_trace_at_once(long_cpu_trace):
    [(kind, rest)] = _read_all(long_cpu_trace, in_child=True, segmented=False)
    assert kind == "rest" and list(rest.events) == list(read_kineto(long_cpu_trace).events)


@pytest.mark.parametrize("in_child", [True, False], ids=["child-process", "thread"])
def test_a_malformed_trace_fails_with_the_readers_own_message(tmp_path, in_child):
    bad = tmp_path / "cut.pt.trace.json"
    bad.write_text('{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 1.0, ')
    with pytest.raises(TraceFormatError) as in_this_process:
        read_kineto(bad)
    with pytest.raises(TraceFormatError) as beside:
        _read_all(bad, in_child)
    assert str(beside.value) == str(in_this_process.value) and str(bad) in str(beside.value)


def test_a_reader_killed_midway_is_one_clear_error(long_cpu_trace):
    with pytest.raises(ReaderDied, match="the process reading it ended early") as died:
        with TraceReading(long_cpu_trace, True, 16) as reading:
            for _ in reading:
                os.kill(reading.child_pid, signal.SIGKILL)
    assert str(long_cpu_trace) in str(died.value)


def test_leaving_early_ends_the_child(long_cpu_trace):
    with TraceReading(long_cpu_trace, True, 16) as reading:
        child = reading.child_pid
        next(iter(reading))  # the first segment, then stop (as a duplicate import does)
    with pytest.raises(ChildProcessError):  # killed and reaped: no zombie left
        os.waitpid(child, os.WNOHANG)


@pytest.mark.parametrize("name", ["a100_alexnet_train.json.gz", "mi250_minitoy_train.json.gz"])
def test_a_gpu_trace_read_beside_links_as_in_one_process(name):
    """Kernels find the op that launched them in the child, as in one process, and
    come through the pickle whole (a trace without step markers as one step)."""
    from profiler.traces.events import whole_trace_step

    path = fixture_path("kineto", name)
    [(kind, rest)] = [m for m in _read_all(path, in_child=True) if m[0] == "rest"]
    whole = read_kineto(path)
    whole_trace_step(whole)
    assert list(rest.events) == list(whole.events) and rest.devices == whole.devices
    assert any(e.op for e in rest.events if e.kind == "kernel")


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipe_holds_about_a_segment():
    import fcntl

    from profiler.traces.reading import PIPE_BYTES, widen_pipe

    readable, writable = os.pipe()
    try:
        widen_pipe(writable)
        allowed = int(open("/proc/sys/fs/pipe-max-size").read())
        size = fcntl.fcntl(writable, fcntl.F_GETPIPE_SZ)
        assert size == PIPE_BYTES if allowed >= PIPE_BYTES else size >= 4096
    finally:
        os.close(readable)
        os.close(writable)
