"""The daemon's files: the lock beside the store that makes it one daemon per store, and
the pid, log, status and summary files in the user state directory."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from profiler.errors import UserError

STATE_ENV = "XPROF_STATE_DIR"


def default_state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("xprof", appauthor=False))


@dataclass(frozen=True)
class DaemonFiles:
    """Where the daemon of one store keeps its pid, log, status and summary: files named
    after the store, so that daemons on different stores keep apart."""

    store: Path | str  # a file, or a server store's URL
    directory: Path

    @classmethod
    def of(cls, store=None, directory=None) -> DaemonFiles:
        """The files of the daemon of `store` (default: the default store), kept in
        `directory` (default: the user state directory)."""
        from profiler.store.dialect import is_url

        if store is None:
            from profiler.store.paths import default_db_path

            store = default_db_path()
        if not is_url(str(store)):
            store = Path(store).expanduser().resolve()
        return cls(store, Path(directory).expanduser().resolve() if directory else default_state_dir())

    def _named(self, suffix: str) -> Path:
        digest = hashlib.sha1(str(self.store).encode()).hexdigest()[:10]
        stem = self.store.stem if isinstance(self.store, Path) else "server"
        return self.directory / f"daemon-{stem}-{digest}{suffix}"

    pid = property(lambda self: self._named(".pid"))
    log = property(lambda self: self._named(".log"))
    status = property(lambda self: self._named(".status.json"))
    summary = property(lambda self: self._named(".summary.md"))

    @property
    def lock(self) -> Path:
        """Beside the store, not in the state directory: whoever starts a daemon on a
        store, with whatever state directory, meets the same lock. (A server store's lock
        is in the server: see ServerLock.)"""
        return self.store.with_name(self.store.name + ".daemon-lock")

    @property
    def shown_store(self) -> str:
        from profiler.store.dialect import shown_url

        return str(self.store) if isinstance(self.store, Path) else shown_url(self.store)

    def prepare(self) -> DaemonFiles:
        """Create the state directory and prove it takes files: one line if not."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".{self.pid.stem}.probe"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise UserError(f"state directory {self.directory} is not writable: "
                            f"{error.strerror or error} (set ${STATE_ENV} or --state-dir)") from None
        return self


class StoreLock:
    """An exclusive flock on the store's lock file, which holds the owner's pid. The
    kernel drops it when the process dies, however it dies, so it is never stale."""

    def __init__(self, files: DaemonFiles):
        self.files = files
        self._fd: int | None = None
        self._server = None

    def acquire(self) -> None:
        if not isinstance(self.files.store, Path):  # a server store: one daemon per host on it
            from profiler.store.server_lock import ServerLock

            self._server = ServerLock(self.files.store)
            holder = self._server.acquire()
            if holder is not None:
                raise UserError(f"another xprof daemon of this host (pid {holder if holder > 0 else 'unknown'}) "
                                f"already runs on store {self.files.shown_store}; `xprof daemon stop` stops it")
            return
        try:
            fd = os.open(self.files.lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(f"cannot create the daemon lock {self.files.lock}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise UserError(f"another xprof daemon (pid {holder or 'unknown'}) already runs on "
                            f"store {self.files.store}; `xprof daemon stop` stops it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def keep(self) -> None:
        """Still hold the lock: a flock cannot be lost; a server's lock goes with a lost
        connection and is taken again (LockLost where another daemon took it)."""
        if self._server is not None:
            self._server.keep()

    def release(self) -> None:
        if self._server is not None:
            self._server.release()
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse_pid(os.read(fd, 64).decode(errors="replace"))


def _parse_pid(text: str) -> int | None:
    """The pid a lock or pid file holds; None when it holds nothing readable."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def pid_in_file(path: Path) -> int | None:
    try:
        return _parse_pid(path.read_text())
    except OSError:
        return None


def lock_holder(files: DaemonFiles) -> int | None:
    """The pid of the daemon holding the store's lock, or None when no daemon runs."""
    if not isinstance(files.store, Path):
        from profiler.store.server_lock import ServerLock

        return ServerLock(files.store).holder()
    try:
        fd = os.open(files.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    finally:
        os.close(fd)  # also drops our shared lock when we got one
    return None


def read_status(files: DaemonFiles) -> dict:
    """Whether a daemon runs on the store, since when, its last and next cycle."""
    holder = lock_holder(files)
    try:
        recorded = json.loads(files.status.read_text())
    except (OSError, ValueError):
        recorded = {}
    pid_file = pid_in_file(files.pid)
    status = {
        "running": holder is not None,
        "pid": holder,
        "store": files.shown_store,
        "log": str(files.log) if files.log.exists() else None,
        "stale_pid": pid_file if holder is None and pid_file else None,
    }
    if holder is not None and recorded.get("pid") == holder:
        status.update({k: recorded.get(k) for k in (
            "started_at", "host", "schedule", "phase", "activity", "next_cycle_at",
            "last_cycle", "consecutive_failures", "summary", "log")})
    elif recorded:
        status["last_cycle"] = recorded.get("last_cycle")
        status["stopped_at"] = recorded.get("stopped_at")
    return status


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
