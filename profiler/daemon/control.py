"""Starting a daemon in the background and stopping it: spawn, signal, and wait on the
store's lock, which tells whether the daemon holds the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from profiler.collect.settings import flags as flags_of
from profiler.daemon.files import DaemonFiles, lock_holder, read_status
from profiler.daemon.loop import LOG_ENV
from profiler.errors import UserError
from profiler.store.paths import DB_ENV

POLL_S = 0.1


def as_arguments(flags: dict, config_path, files: DaemonFiles) -> list[str]:
    """The flags that were given, as `xprof daemon run` arguments again, with the store
    and state directory as absolute paths (the daemon does not share our directory)."""
    # a server's URL goes to the daemon in its environment (start_detached), never in its
    # arguments, where a password in it would show in every process list
    store = files.store if isinstance(files.store, Path) else None
    given = {"config": config_path, **flags, "db": store, "state_dir": files.directory}
    arguments = []
    for name, value in given.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                arguments += [flags_of(name)[0], str(item)]
    return arguments


def refuse_if_running(files: DaemonFiles) -> None:
    holder = lock_holder(files)
    if holder is not None:
        raise UserError(f"an xprof daemon (pid {holder}) already runs on store "
                        f"{files.shown_store}; `xprof daemon stop` stops it")


def start_detached(files: DaemonFiles, arguments: list[str], wait_s: float) -> int:
    """`xprof daemon run ARGUMENTS` in a new session with its output in the log file;
    its pid once it holds the store's lock."""
    argv = [sys.executable, "-P", "-m", "cli", "daemon", "run", *arguments]
    with open(files.log, "ab") as log:
        # the daemon keeps this directory, so relative paths (a hook `./notify.sh`, a
        # summary path in the config) mean what they meant to the user who started it
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True,
                                 env={**os.environ, LOG_ENV: str(files.log),
                                      **({} if isinstance(files.store, Path) else {DB_ENV: files.store})})
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if lock_holder(files) == child.pid:
            return child.pid
        if child.poll() is not None:
            tail = files.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise UserError(f"the daemon exited at once ({' '.join(tail) or 'no output'}); "
                            f"log: {files.log}")
        time.sleep(POLL_S)
    raise UserError(f"the daemon (pid {child.pid}) did not take the store's lock within "
                    f"{wait_s:g} s; see {files.log}")


def stop(files: DaemonFiles, timeout_s: float) -> int:
    """SIGTERM to the daemon holding the store, then wait until it lets go; its pid."""
    status = read_status(files)
    if not status["running"]:
        if status["stale_pid"]:
            files.pid.unlink(missing_ok=True)
            raise UserError(f"no xprof daemon runs on store {files.shown_store} (removed a "
                            f"stale pid file for pid {status['stale_pid']}, which is gone)")
        raise UserError(f"no xprof daemon runs on store {files.shown_store}")
    pid = status["pid"]
    if not pid or pid <= 0:  # never os.kill(-1): that is every process the user may signal
        raise UserError(f"a daemon holds this host's lock on store {files.shown_store}, but its pid is "
                        "unknown: stop it where it runs")
    if not isinstance(files.store, Path) and not _is_local_daemon(pid):
        raise UserError(f"the daemon holding this host's lock on store {files.shown_store} (pid {pid}) is not "
                        "a process of this machine (the same XPROF_HOST on two machines?): stop it where it runs")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout_s
    while lock_holder(files) == pid and time.time() < deadline:
        time.sleep(POLL_S)
    if lock_holder(files) == pid:
        raise UserError(f"the daemon (pid {pid}) did not stop within {timeout_s:g} s; "
                        f"`kill -9 {pid}` ends it (its cut run is marked interrupted "
                        "at the next start)")
    return pid


def _is_local_daemon(pid: int) -> bool:
    """Whether `pid` is an `xprof daemon run` of this machine (a server store's lock holder
    may be on another machine that calls itself by the same host name)."""
    import psutil

    try:
        command = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "daemon" in command and "run" in command
