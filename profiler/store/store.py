"""The store, a SQLite file or a PostgreSQL server: opening it, its transactions, and
every write to its tables."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

from profiler.errors import UserError
from profiler.processes import host_name, process_alive_since
from profiler.store import rows as compact
from profiler.store.dialect import (MIGRATION_LOCK, VERSION_TABLE, PostgresConnection, describe_postgres, is_url,
                                    postgres_errors, shown_url, spool_dir)
from profiler.store.queries import Queries
from profiler.store.retention import Retention
from profiler.store.schema import MIGRATIONS, SCHEMA_VERSION
from profiler.traces.events import EventColumns, MemoryColumns, MemoryEvent, StepTiming, TraceEvent

# How long a writer waits for another one before giving up; XPROF_BUSY_TIMEOUT_MS overrides.
DEFAULT_BUSY_TIMEOUT_MS = 10_000
RUN_STATUSES = ("running", "ok", "failed", "interrupted")
# meta key: telemetry samples before this time (ns) have been downsampled
DOWNSAMPLED_UNTIL = "samples_downsampled_until_ns"
# What makes two runs comparable; a change here is named when runs are compared.
FINGERPRINT_KEYS = ("hostname", "cpu_model", "logical_cores", "framework_version", "threads",
                    "device_name", "driver_version", "cuda_driver_version", "cuda", "cudnn",
                    "cuda_build", "gpus")


class StoreError(UserError, RuntimeError):
    """A store that cannot be opened or written: unwritable, locked, newer, corrupt."""


def busy_timeout_ms() -> int:
    text = os.environ.get("XPROF_BUSY_TIMEOUT_MS")
    if text is None:
        return DEFAULT_BUSY_TIMEOUT_MS
    try:
        return max(int(text), 0)
    except ValueError:
        raise StoreError(f"XPROF_BUSY_TIMEOUT_MS={text!r}: expected a whole number of milliseconds") from None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def fingerprint(env: dict) -> str:
    """A short hash of the environment facts that make two runs comparable."""
    stable = {k: env.get(k) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


class Store(Retention, Queries):
    """One SQLite file, or one PostgreSQL database (`url`; `path` is then the URL as shown,
    without a password). Open with `Store.open(path or URL)`; all writes are transactions.
    The reads analysis and the views need come from `Queries`."""

    def __init__(self, connection, path, url: str | None = None):
        self.connection = connection
        self.path = path
        self.url = url
        self.errors = postgres_errors() if url else (sqlite3.Error,)
        self._db = None

    @property
    def db(self):
        """sqlite-utils over the same connection, made on first use: importing it pulls
        in pandas where pandas is installed (half a second), which `xprof import` and
        `diff` have no use for."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.connection)
        return self._db

    @classmethod
    def open(cls, path, create: bool = True, notice: Callable[[str], None] | None = None) -> Store:
        """The store at `path`, made or upgraded as needed; `notice` is told of a
        migration before it starts and when it is done, since a large store takes a while."""
        if is_url(str(path)):
            return cls._open_server(str(path), create, notice)
        path = Path(path).resolve()  # artifact paths stored from it do not hang on the cwd
        if path.is_dir():
            raise StoreError(f"store path {path} is a directory, not a database file")
        if not path.exists():
            if not create:
                raise StoreError(f"no store at {path} (run `xprof run` first, or pass --db)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create store directory {path.parent}: {error.strerror}") from None
        try:
            store = cls(_connect(path), path)
            # Look before touching anything: a newer store or another program's
            # database is refused exactly as it is (no WAL switch, no tables added).
            store.check_is_ours()
            if store.schema_version() == 0:  # a new file: pages freed by `prune` go back at once
                store.connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            store.connection.execute("PRAGMA journal_mode = WAL")
            store.connection.execute("PRAGMA synchronous = NORMAL")
            store.connection.execute("PRAGMA foreign_keys = ON")
            # Each multi-row INSERT inside a transaction keeps a statement journal (to
            # undo that statement alone); in memory rather than in a temp file.
            store.connection.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as error:
            raise StoreError(_describe(path, error)) from None
        store.migrate(notice)
        return store

    @classmethod
    def _open_server(cls, url: str, create: bool, notice) -> Store:
        try:
            store = cls(PostgresConnection(url), shown_url(url), url)
        except postgres_errors() as error:
            raise StoreError(describe_postgres(url, error)) from None
        except ImportError:
            raise StoreError("a PostgreSQL store needs psycopg (pip install 'psycopg[binary]')") from None
        store.check_is_ours()
        if not create and store.schema_version() == 0:
            store.close()
            raise StoreError(f"no xprof store in {store.path} yet (run `xprof run --db URL` first)")
        store.migrate(notice)
        return store

    @classmethod
    def in_memory(cls) -> Store:
        """A store that lives as long as the object: for tests and throwaway analysis."""
        store = cls(_connect(":memory:"), None)
        store.connection.execute("PRAGMA foreign_keys = ON")
        store.migrate()
        return store

    def check_is_ours(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this "
                f"xprof understands ({SCHEMA_VERSION}); upgrade xprof"
            )
        if version == 0:
            tables = [r[0] for r in self._rows(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
                if self.url else
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            if tables:
                raise StoreError(f"{self.path} is another program's {'PostgreSQL' if self.url else 'SQLite'}"
                                 f" database (tables: {', '.join(tables[:5])}), not an xprof store")

    def close(self) -> None:
        self.connection.close()

    # -- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        if not self.url:
            return self.connection.execute("PRAGMA user_version").fetchone()[0]
        # the catalog lists every table, whatever the role may read (information_schema
        # shows only those it has a grant on)
        if self._rows("SELECT to_regclass(?)", (VERSION_TABLE,))[0][0] is None:
            return 0
        row = self._rows(f"SELECT version FROM {VERSION_TABLE}")
        return row[0][0] if row else 0

    def _set_schema_version(self, number: int) -> None:
        if not self.url:
            self.connection.execute(f"PRAGMA user_version = {number}")
            return
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
        self.connection.execute(f"DELETE FROM {VERSION_TABLE}")
        self.connection.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (number,))

    def migrate(self, notice: Callable[[str], None] | None = None) -> None:
        """Apply the migrations this store has not had, each in its own transaction. The
        version is read again inside it: another process may have just applied it."""
        started = time.monotonic()
        try:
            self.check_is_ours()
            version = self.schema_version()
            existing = version > 0
            applied = False
            if existing and version < SCHEMA_VERSION and notice:
                notice(f"upgrading store {self.path} from schema {version} to {SCHEMA_VERSION}, once "
                       f"({_size_text(self.file_bytes())}; about 5 s per 100 MB, then it is rewritten)")
            for number in range(self.schema_version() + 1, SCHEMA_VERSION + 1):
                with self.transaction():
                    if self.url:  # SQLite's BEGIN IMMEDIATE already keeps other writers out
                        self.connection.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                    if self.schema_version() < number:
                        MIGRATIONS[number - 1](self.connection)
                        self._set_schema_version(number)
                        applied = True
        except self.errors as error:
            raise StoreError(self.describe(error)) from None
        if applied and existing and self.path is not None:
            self.reclaim_space()  # the rows a migration rewrote leave their old pages free
            if notice:
                notice(f"upgraded store {self.path} in {time.monotonic() - started:.1f} s, "
                       f"now {_size_text(self.file_bytes())}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT, rolled back on any error: all or nothing."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except self.errors as error:
            raise StoreError(self.describe(error)) from None
        try:
            yield self.connection
        except self.errors as error:  # a read-only file, a full disk, a corrupt page, a lost server
            self._rollback()
            raise StoreError(self.describe(error)) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.connection.execute("COMMIT")
        except self.errors as error:
            self._rollback()
            raise StoreError(self.describe(error)) from None

    def _rollback(self) -> None:
        """ROLLBACK, where there is still a connection to say it on (a server that went
        away rolled the transaction back itself)."""
        try:
            self.connection.execute("ROLLBACK")
        except self.errors:
            if not self.url:
                raise

    def describe(self, error: BaseException) -> str:
        """One line for a failure of this store."""
        return describe_postgres(self.url, error) if self.url else _describe(self.path, error)

    @contextmanager
    def savepoint(self, conn, name: str) -> Iterator[None]:
        """A nested part of the caller's transaction, undone alone when it raises."""
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            raise
        finally:
            conn.execute(f"RELEASE {name}")

    # -- runs ---------------------------------------------------------------------

    def create_run(self, **columns) -> str:
        with self.transaction() as conn:
            return self.insert_run(conn, **columns)

    def insert_run(self, conn, **columns) -> str:
        """A new runs row inside the caller's transaction; returns its id. An `env` dict
        is stored as JSON, with its fingerprint."""
        run_id = columns.pop("id", None) or new_run_id()
        row = {"id": run_id, "status": "running", "started_at": time.time(), "pid": os.getpid(),
               "host": host_name()}
        row.update(_run_columns(columns))
        names = ", ".join(row)
        conn.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
        return run_id

    def set_run_columns(self, conn, run_id: str, **columns) -> None:
        """Columns of a run, inside the caller's transaction; an `env` dict is stored as
        JSON, with its fingerprint."""
        row = _run_columns(columns)
        assignments = ", ".join(f"{name} = ?" for name in row)
        conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*row.values(), run_id))

    def update_run(self, run_id: str, **columns) -> None:
        """set_run_columns in a transaction of its own."""
        with self.transaction() as conn:
            self.set_run_columns(conn, run_id, **columns)

    def finish_run(self, run_id: str, status: str, error: str | None = None, **columns) -> None:
        """The run's final status, and the figures analysis reads kept from its events."""
        assert status in RUN_STATUSES
        with self.transaction() as conn:
            self.keep_figures(conn, run_id)
            self.set_run_columns(conn, run_id, status=status, error=error, finished_at=time.time(),
                                 **columns)

    def mark_orphaned_runs(self) -> int:
        """Runs left `running` by a process of this host that no longer exists (killed,
        power loss) become `interrupted`; finished runs are never touched."""
        orphans = [run["id"] for run in self.running_runs()
                   if run["host"] == host_name()
                   and not process_alive_since(run["pid"], run["started_at"])]
        for run_id in orphans:
            self.finish_run(run_id, "interrupted", "interrupted: its xprof process is gone")
        return len(orphans)

    # -- events -------------------------------------------------------------------

    def add_steps(self, conn, run_id: str, steps: Iterable[StepTiming]) -> None:
        conn.executemany(
            "INSERT INTO steps (run_id, repeat, step, wall_ns, profiled, start_ns, peak_bytes,"
            " reserved_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((run_id, s.repeat, s.step, s.wall_ns, int(s.profiled), s.start_ns, s.peak_bytes,
              s.reserved_bytes) for s in steps),
        )

    def add_events(self, conn, run_id: str, repeat: int,
                   events: EventColumns | Iterable[TraceEvent], classify=None) -> int:
        """Store events of a repeat after those it has; `classify(event)`, when given, sets
        their category. It is called once per distinct (name, kind, op)."""
        if not isinstance(events, EventColumns):
            events = EventColumns.of(events)
        return compact.add_events(conn, run_id, repeat, events, classify)

    def keep_figures(self, conn, run_id: str) -> None:
        """Make the figures analysis reads of a run from its events, inside the caller's
        transaction: finishing a run and importing a trace do."""
        compact.keep_figures(conn, run_id)

    def add_memory(self, conn, run_id: str, repeat: int,
                   events: MemoryColumns | Iterable[MemoryEvent]) -> int:
        if not isinstance(events, MemoryColumns):
            events = MemoryColumns.of(events)
        return compact.add_memory(conn, run_id, repeat, events)

    def add_artifact(self, conn, run_id: str, kind: str, path: Path, sha256: str,
                     size: int, summary: dict | None = None) -> None:
        """A kept file of a run; a server store keeps its bytes too (by sha256, once), so
        that whoever reads the run needs nothing from the host that made it."""
        conn.execute(
            "INSERT INTO artifacts (run_id, kind, path, sha256, bytes, summary) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, kind, str(path), sha256, size, json.dumps(summary) if summary else None),
        )
        if self.url:
            conn.execute("INSERT INTO artifact_blobs (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
                         (sha256, Path(path).read_bytes()))

    def artifacts_dir(self) -> Path:
        """Raw traces live beside the database, in `<db name>.artifacts/<run id>/`; a server
        store's pass through (and come back to) a folder of the user cache directory."""
        if self.url:
            return spool_dir(self.url)
        if self.path is None:
            raise StoreError("an in-memory store keeps no artifacts")
        return self.path.with_name(self.path.name + ".artifacts")

    def artifact_file(self, stored: str) -> Path:
        """Where an artifact row's file is: `<run id>/<file>` in this store's artifacts
        directory where it is there (so a copy of a store reads its own copies), else the
        row's own path (stores before schema 4 kept paths relative to where the run was made)."""
        path = Path(stored)
        own = self.artifacts_dir() / path.parent.name / path.name
        if self.url and not own.exists():
            self._fetch_artifact(stored, own)
        return own if own.exists() or not path.is_absolute() else path

    def _fetch_artifact(self, stored: str, target: Path) -> None:
        """A server store's kept file, written to `target` (whole, or not at all)."""
        rows = self._rows("SELECT b.data FROM artifacts a JOIN artifact_blobs b ON b.sha256 = a.sha256"
                          " WHERE a.path = ? LIMIT 1", (stored,))
        if not rows:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.part")
        partial.write_bytes(rows[0][0])
        partial.replace(target)

    def owns(self, path: Path) -> bool:
        """Whether a file lies in this store's artifacts directory: the only files prune removes."""
        return self.artifacts_dir().resolve() in path.resolve().parents

    # -- telemetry ----------------------------------------------------------------

    def add_calibration(self, **columns) -> None:
        """One measured peak of a host's device (see `xprof calibrate`)."""
        names = ", ".join(columns)
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO calibrations ({names}) VALUES ({', '.join('?' * len(columns))})",
                         tuple(columns.values()))

    def add_samples(self, samples, run_id: str | None = None) -> None:
        readings = [dict(asdict(s), run_id=run_id) for s in samples]
        if readings and self.url:
            columns = list(readings[0])
            with self.transaction() as conn:
                compact.insert_rows(conn, "samples", columns, (tuple(r.values()) for r in readings), len(readings))
        elif readings:
            with self.transaction():
                self.db["samples"].insert_all(readings)

    def downsample_samples(self, keep_raw_s: float, bucket_s: float) -> int:
        """Telemetry older than `keep_raw_s` becomes one mean row per source, device, run
        and `bucket_s` window. Each call reads only the samples aged past the cutoff since
        the call before (a watermark in `meta`), so it costs the same on a year of history.
        Returns the number of raw rows replaced."""
        bucket_ns = int(bucket_s * 1e9)
        cutoff = (time.time_ns() - int(keep_raw_s * 1e9)) // bucket_ns * bucket_ns
        with self.transaction() as conn:
            done = int(self.meta(DOWNSAMPLED_UNTIL) or 0)
            if cutoff <= done:
                return 0
            window = (done, cutoff)
            means = conn.execute(
                "SELECT (ts_ns / ?) * ?, run_id, source, device, avg(utilization_pct), "
                "CAST(avg(memory_used_bytes) AS INTEGER), max(memory_total_bytes), avg(power_w), "
                "avg(sm_clock_mhz), avg(temperature_c), avg(cpu_pct), CAST(avg(rss_bytes) AS INTEGER) "
                "FROM samples WHERE ts_ns >= ? AND ts_ns < ? GROUP BY 1, run_id, source, device",
                (bucket_ns, bucket_ns, *window)).fetchall()
            replaced = conn.execute("DELETE FROM samples WHERE ts_ns >= ? AND ts_ns < ?", window).rowcount
            conn.executemany(
                "INSERT INTO samples (ts_ns, run_id, source, device, utilization_pct, "
                "memory_used_bytes, memory_total_bytes, power_w, sm_clock_mhz, temperature_c, "
                "cpu_pct, rss_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", means)
            self.set_meta(conn, DOWNSAMPLED_UNTIL, str(cutoff))
        return replaced

    def set_meta(self, conn, key: str, value: str) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def _size_text(size: int | None) -> str:
    return f"{(size or 0) / 2**20:.1f} MiB"


def _connect(path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000, isolation_level=None,
                                 check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    return connection


def _run_columns(columns: dict) -> dict:
    """Run columns as stored: an `env` dict becomes JSON and sets the fingerprint."""
    if isinstance(columns.get("env"), dict):
        env = columns["env"]
        columns = {**columns, "env": json.dumps(env, sort_keys=True), "fingerprint": fingerprint(env)}
    return columns


def _describe(path, error: sqlite3.Error) -> str:
    text = str(error)
    if "locked" in text or "busy" in text:
        return f"store {path} is locked by another process (still locked after {busy_timeout_ms() / 1000:g} s)"
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return f"cannot write store {path}: {text} (check the path and its permissions)"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not an xprof store (SQLite says: {text})"
    return f"store {path}: {text}"
