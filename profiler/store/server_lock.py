"""One daemon per (host, server store): a PostgreSQL session advisory lock held on a
connection of its own, which the server drops when the daemon's connection goes."""

from __future__ import annotations

import os
import zlib

from profiler.errors import UserError
from profiler.processes import host_name
from profiler.store.dialect import (
    PostgresConnection,
    describe_postgres,
    postgres_errors,
)

LOCK_CLASS = 0x7870  # "xp": advisory locks are (class, object) pairs of int4 per database
APPLICATION = "xprof-daemon"


class LockLost(UserError):
    """The daemon's lock went with its connection and another daemon holds it now."""


def _host_key(host: str) -> int:
    """A host name as a signed int4."""
    return zlib.crc32(host.encode()) - (1 << 31)


class ServerLock:
    def __init__(self, url: str, host: str | None = None):
        self.url, self.host = url, host or host_name()
        self._conn: PostgresConnection | None = None

    def _connect(self) -> PostgresConnection:
        from profiler.store.store import StoreError

        try:
            return PostgresConnection(self.url)
        except postgres_errors() as error:
            raise StoreError(describe_postgres(self.url, error)) from None

    def acquire(self) -> int | None:
        """None when this process now holds the lock; else the holder's pid (-1: unknown)."""
        conn = self._connect()
        # the pid where `daemon status` and `stop` find it (application_name keeps 63 bytes:
        # no host name in it, which is the lock's key already)
        conn.execute("SELECT set_config('application_name', ?, false)", (f"{APPLICATION}:{os.getpid()}",))
        if conn.execute("SELECT pg_try_advisory_lock(?, ?)", (LOCK_CLASS, _host_key(self.host))).fetchone()[0]:
            self._conn = conn
            return None
        holder = self._holder(conn)
        conn.close()
        return holder or -1

    def holder(self) -> int | None:
        """The pid of the daemon of this host holding the lock, or None when none does."""
        conn = self._connect()
        try:
            return self._holder(conn)
        finally:
            conn.close()

    def _holder(self, conn: PostgresConnection) -> int | None:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = ? AND l.objid = ? AND l.granted"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_CLASS, _host_key(self.host) & 0xFFFFFFFF)).fetchone()
        if row is None:
            return None
        pid = str(row[0]).rsplit(":", 1)[-1]
        return int(pid) if pid.isdigit() else -1

    def keep(self) -> None:
        """Hold the lock again where the server dropped it with the connection (a restart);
        LockLost where another daemon of this host took it meanwhile."""
        if self._conn is not None and not self._conn.raw.broken and not self._conn.raw.closed:
            try:
                self._conn.raw.execute("SELECT 1")
                return
            except postgres_errors():
                pass
        self.release()
        holder = self.acquire()
        if holder is not None:
            raise LockLost(f"the server dropped this daemon's lock (a restart?) and another daemon of host "
                           f"{self.host} (pid {holder if holder > 0 else 'unknown'}) holds it now: stopping")

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # a closed session holds no lock
            self._conn = None
