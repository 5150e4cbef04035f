"""Process facts and signals shared by the worker, the trace reader, the store and the
daemon: whether a recorded process still lives, dying with the parent, SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator


def process_alive_since(pid: int | None, started_at: float) -> bool:
    """Whether process `pid` exists and is the one that started at `started_at` (not a
    later process that reused its number)."""
    import psutil  # loaded here: `xprof import` never needs it

    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        # a zombie has exited: killed, and its parent (often an init that does not
        # reap, in a container) has not collected it yet
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_at + 1
    except psutil.Error:
        return False


def die_with_parent(parent_pid: int) -> None:
    """A worker (or a trace reader) whose xprof is gone (killed, terminal closed) stops
    too, instead of working on for nobody: Linux sends it SIGKILL when the parent exits."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took hold
        os._exit(1)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd, kill, `xprof daemon stop`) ends work as Ctrl-C does: a
    KeyboardInterrupt, on which the orchestrator kills the worker and stores the cut
    run as interrupted, never left "running"."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


HOST_ENV = "XPROF_HOST"


def host_name() -> str:
    """The name runs, locks and peaks are kept under: $XPROF_HOST where set (a pod's
    hostname changes every night; its node's name does not), else the hostname."""
    import socket

    return os.environ.get(HOST_ENV) or socket.gethostname()
