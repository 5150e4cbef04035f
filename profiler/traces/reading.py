"""Read a trace in a forked child process while this one stores the segments it sends
(on a thread where there is no fork); see docs/ingest.md."""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import threading
import traceback
from pathlib import Path
from typing import Callable, Iterator

from profiler.errors import UserError

# Light on purpose: the import command forks the reader before it loads the store and the
# rest (profiler/interchange/ingest.py), so the reader's own modules are imported where they run.

_HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size is 1 MiB by default


class ReaderDied(UserError):
    """The child reading a trace ended without a word (killed, out of memory)."""


class _Stop(BaseException):
    """The reading thread's way out when the reader is closed early."""


class TraceReading:
    """A trace read on the side: `with TraceReading(path, ...) as reading:`, then iterate
    for (kind, TraceData) (see the module docstring) up to the rest of the trace.
    Segments come only if `segmented`, of about `segment_events` events; with
    `time_cuts` False, only those that need no time order (see read_kineto). Leaving the
    block early kills the reading. `in_child` False reads on a thread of this process
    instead. No other thread may run when it is entered (it forks)."""

    def __init__(self, path: Path, segmented: bool = True, segment_events: int | None = None,
                 in_child: bool | None = None, time_cuts: bool = True):
        self.path = Path(path)
        self.segmented, self.segment_events, self.time_cuts = segmented, segment_events, time_cuts
        self.in_child = hasattr(os, "fork") if in_child is None else in_child
        self._child: int | None = None
        self._pipe: int | None = None
        self._queue: queue.Queue | None = None
        self._closed = False

    @property
    def child_pid(self) -> int | None:
        """The reading child's pid while it reads; None on a thread."""
        return self._child

    def __enter__(self) -> TraceReading:
        """Start the reading; entered again (a reading started early), nothing more."""
        if self._child is not None or self._queue is not None or self._closed:
            return self
        if self.in_child:
            self._fork()
        else:
            self._queue = queue.Queue(maxsize=1)
            threading.Thread(target=self._on_thread, daemon=True).start()
        return self

    def __iter__(self) -> Iterator[tuple[str, object]]:
        kind = None
        while kind != "rest":
            kind, payload = self._next()
            if kind == "error":
                raise payload
            yield kind, payload

    def __exit__(self, *exc) -> None:
        self._closed = True
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        if self._child is not None:
            _reap(self._child)
            self._child = None
        if self._queue is not None:  # unblock a thread waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass

    # -- the work, wherever it runs ------------------------------------------------

    def _read(self, send: Callable[[str, object], None]) -> None:
        """Read the trace, sending segments as the reader gives them, then the rest."""
        from profiler.traces import read_trace

        on_segment = (lambda segment: send("segment", segment)) if self.segmented else None
        send("rest", read_trace(self.path, on_segment=on_segment, segment_events=self.segment_events,
                                time_cuts=self.time_cuts))

    # -- in a child process ----------------------------------------------------------

    def _fork(self) -> None:
        readable, writable = os.pipe()
        widen_pipe(writable)
        parent = os.getpid()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child, which leaves by os._exit
            os.close(readable)
            self._in_child(writable, parent)
        os.close(writable)
        self._child, self._pipe = child, readable

    def _in_child(self, fd: int, parent: int) -> None:
        """Read and send; then leave by os._exit, so that nothing the parent set up (its
        store connection, atexit handlers, buffered output) runs or flushes here. Once the
        first message is out, the child is set to die with the parent (before that, a
        parent gone makes the first send fail)."""
        watched = []

        def send(kind: str, payload) -> None:
            _send(fd, kind, payload)
            if not watched:
                from profiler.processes import die_with_parent

                die_with_parent(parent)
                watched.append(parent)

        code = 0
        try:
            self._read(send)
        except BaseException as err:  # noqa: BLE001 - every error goes to the parent
            code = 1
            _send_error(send, err)
        finally:
            os._exit(code)

    def _next(self) -> tuple[str, object]:
        if self._queue is not None:
            return self._queue.get()
        (size,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
        return pickle.loads(self._read_exactly(size))

    def _read_exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = os.read(self._pipe, min(left, 1 << 20))
            if not chunk:
                raise ReaderDied(f"{self.path}: the process reading it ended early "
                                 "(killed, or out of memory)")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    # -- on a thread of this process -------------------------------------------------

    def _on_thread(self) -> None:
        def send(kind: str, payload) -> None:
            if self._closed:
                raise _Stop
            self._queue.put((kind, payload))

        try:
            self._read(send)
        except _Stop:
            pass
        except BaseException as err:  # noqa: BLE001 - raised by the iterating thread
            if not self._closed:
                self._queue.put(("error", err))


def _send_error(send: Callable[[str, object], None], err: BaseException) -> None:
    try:
        send("error", err)
    except BrokenPipeError:  # the parent stopped listening
        pass
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        try:
            send("error", RuntimeError("".join(traceback.format_exception(err)).rstrip()))
        except BaseException:  # noqa: BLE001 - nobody left to tell
            pass


def widen_pipe(fd: int) -> None:
    """Let the pipe hold PIPE_BYTES, where the system has a way and allows it."""
    import fcntl

    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or a lower pipe-max-size: the default
        pass


def _send(fd: int, kind: str, payload) -> None:
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


def _reap(child: int) -> None:
    """Wait for the child; kill it first if it is still at work (we stopped early)."""
    pid, _ = os.waitpid(child, os.WNOHANG)
    if pid == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
