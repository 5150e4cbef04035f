"""The store's tables, as an ordered list of migrations keyed on `PRAGMA user_version`."""

from __future__ import annotations

import sqlite3


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    # not executescript(): it COMMITs first, breaking the migration's transaction
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migration_1(db: sqlite3.Connection) -> None:
    """Runs, their steps, trace events, memory events, telemetry samples, artifacts."""
    _execute_script(
        db,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            framework TEXT NOT NULL,
            framework_version TEXT,
            workload TEXT,
            mode TEXT,
            execution TEXT,
            size TEXT,
            device TEXT,
            host TEXT,
            fingerprint TEXT,
            env TEXT,
            started_at REAL NOT NULL,
            finished_at REAL,
            error TEXT,
            source TEXT NOT NULL,
            source_path TEXT,
            content_sha256 TEXT,
            label TEXT,
            batch_id TEXT,
            steps_requested INTEGER,
            repeats INTEGER,
            warmup_steps INTEGER,
            pid INTEGER,
            step_ms_median REAL,
            kernel_count INTEGER NOT NULL DEFAULT 0,
            memory_event_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs(id),
            repeat INTEGER NOT NULL,
            step INTEGER NOT NULL,
            wall_ns INTEGER NOT NULL,
            profiled INTEGER NOT NULL,
            start_ns INTEGER,
            peak_bytes INTEGER,
            reserved_bytes INTEGER
        );
        CREATE TABLE kernels (
            run_id TEXT NOT NULL REFERENCES runs(id),
            repeat INTEGER NOT NULL,
            step INTEGER,
            name TEXT NOT NULL,
            op TEXT,
            category TEXT,
            kind TEXT NOT NULL,
            device TEXT NOT NULL,
            stream TEXT,
            start_ns INTEGER NOT NULL,
            dur_ns INTEGER NOT NULL,
            self_ns INTEGER,
            correlation INTEGER
        );
        CREATE TABLE memory_events (
            run_id TEXT NOT NULL REFERENCES runs(id),
            repeat INTEGER NOT NULL,
            ts_ns INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            total_allocated INTEGER,
            total_reserved INTEGER,
            peak_bytes_in_use INTEGER,
            fragmentation REAL,
            device TEXT,
            allocator TEXT
        );
        CREATE TABLE samples (
            ts_ns INTEGER NOT NULL,
            run_id TEXT,
            source TEXT NOT NULL,
            device TEXT NOT NULL,
            utilization_pct REAL,
            memory_used_bytes INTEGER,
            memory_total_bytes INTEGER,
            power_w REAL,
            sm_clock_mhz REAL,
            temperature_c REAL,
            cpu_pct REAL,
            rss_bytes INTEGER
        );
        CREATE TABLE artifacts (
            run_id TEXT NOT NULL REFERENCES runs(id),
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            summary TEXT
        );
        CREATE INDEX runs_by_workload ON runs(workload, framework, mode, started_at);
        CREATE INDEX runs_by_status ON runs(status);
        CREATE INDEX steps_by_run ON steps(run_id, repeat, step);
        CREATE INDEX kernels_by_run ON kernels(run_id, kind, step);
        CREATE INDEX memory_by_run ON memory_events(run_id, ts_ns);
        CREATE INDEX samples_by_ts ON samples(ts_ns);
        CREATE INDEX artifacts_by_run ON artifacts(run_id);
        """
    )


def _migration_2(db: sqlite3.Connection) -> None:
    """Store-wide facts that are not rows of a run, such as how far telemetry has been
    downsampled."""
    _execute_script(db, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")


def _migration_3(db: sqlite3.Connection) -> None:
    """The `kernels` table holds every trace event (framework ops, runtime calls, device
    kernels, copies): it is `events`, and a run's count of them `event_count`. Renames
    keep every row."""
    _execute_script(
        db,
        """
        ALTER TABLE kernels RENAME TO events;
        DROP INDEX kernels_by_run;
        CREATE INDEX events_by_run ON events(run_id, kind, step);
        ALTER TABLE runs RENAME COLUMN kernel_count TO event_count
        """
    )


MIGRATIONS = [_migration_1, _migration_2, _migration_3]
SCHEMA_VERSION = len(MIGRATIONS)
