"""The store's tables, as an ordered list of migrations keyed on `PRAGMA user_version` (on a
server, the xprof_schema table); the same history on both backends, see dialect.py."""

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


def _migration_4(db: sqlite3.Connection) -> None:
    """Compact rows (text interned in `strings`, events keyed by their repeat, times after
    its origin) and the figures kept apart from them, made for every run; every value is
    kept. See docs/store.md."""
    from profiler.store.rows import decimal_code, keep_figures

    _execute_script(db, _COMPACT_TABLES + """
        ALTER TABLE runs ADD COLUMN basis TEXT;
        ALTER TABLE runs ADD COLUMN events_pruned_at REAL""")
    if isinstance(db, sqlite3.Connection):
        # a server store is never older than this xprof: its tables of migration 1 are empty
        db.create_function("decimal_code", 1, decimal_code, deterministic=True)
        _execute_script(db, _COPY_TO_COMPACT)
    _execute_script(db, """
        DROP TABLE events;
        DROP TABLE memory_events;
        ALTER TABLE compact_events RENAME TO events;
        ALTER TABLE compact_memory RENAME TO memory_events;
        """ + _VIEWS)
    for (run_id,) in db.execute("SELECT id FROM runs").fetchall():
        keep_figures(db, run_id)


# Migration 4's copy of the rows of before it into the compact tables.
_COPY_TO_COMPACT = """
        INSERT OR IGNORE INTO strings (text)
            SELECT name FROM events UNION SELECT op FROM events UNION SELECT category FROM events
            UNION SELECT kind FROM events UNION SELECT device FROM events UNION SELECT stream FROM events;
        INSERT OR IGNORE INTO pools (device, allocator) SELECT DISTINCT device, allocator FROM memory_events;
        INSERT INTO repeats (run_id, repeat, origin_ns)
            SELECT run_id, repeat, MIN(t) FROM (
                SELECT run_id, repeat, MIN(start_ns) AS t FROM events GROUP BY run_id, repeat
                UNION ALL SELECT run_id, repeat, MIN(ts_ns) FROM memory_events GROUP BY run_id, repeat)
            GROUP BY run_id, repeat ORDER BY run_id, repeat;
        INSERT INTO compact_events
            SELECT r.id, row_number() OVER (PARTITION BY r.id ORDER BY e.rowid) - 1, e.step,
                   n.id, o.id, c.id, k.id, d.id, s.id, e.start_ns - r.origin_ns, e.dur_ns,
                   e.dur_ns - e.self_ns, e.correlation
            FROM events e JOIN repeats r ON r.run_id = e.run_id AND r.repeat = e.repeat
            JOIN strings n ON n.text = e.name JOIN strings k ON k.text = e.kind
            JOIN strings d ON d.text = e.device LEFT JOIN strings o ON o.text = e.op
            LEFT JOIN strings c ON c.text = e.category LEFT JOIN strings s ON s.text = e.stream
            ORDER BY r.id, e.rowid;
        INSERT INTO compact_memory
            SELECT r.id, row_number() OVER (PARTITION BY r.id ORDER BY m.rowid) - 1, m.ts_ns - r.origin_ns,
                   m.bytes, m.total_allocated, m.total_reserved, m.peak_bytes_in_use,
                   decimal_code(m.fragmentation), p.id
            FROM memory_events m JOIN repeats r ON r.run_id = m.run_id AND r.repeat = m.repeat
            JOIN pools p ON p.device IS m.device AND p.allocator IS m.allocator
            ORDER BY r.id, m.rowid
"""


# The tables of migration 4, named as they are while the old ones still exist.
_COMPACT_TABLES = """
    CREATE TABLE strings (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    CREATE TABLE pools (id INTEGER PRIMARY KEY, device TEXT, allocator TEXT, UNIQUE (device, allocator));
    CREATE TABLE repeats (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        repeat INTEGER NOT NULL,
        origin_ns INTEGER NOT NULL,
        peak_allocated INTEGER,
        allocations INTEGER,
        UNIQUE (run_id, repeat)
    );
    CREATE TABLE compact_events (
        repeat_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        step INTEGER,
        name_id INTEGER NOT NULL,
        op_id INTEGER,
        category_id INTEGER,
        kind_id INTEGER NOT NULL,
        device_id INTEGER NOT NULL,
        stream_id INTEGER,
        start_ns INTEGER NOT NULL,
        dur_ns INTEGER NOT NULL,
        nested_ns INTEGER,
        correlation INTEGER,
        PRIMARY KEY (repeat_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE compact_memory (
        repeat_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts_ns INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        total_allocated INTEGER,
        total_reserved INTEGER,
        peak_bytes_in_use INTEGER,
        fragmentation_code,
        pool_id INTEGER NOT NULL,
        PRIMARY KEY (repeat_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE figures (
        repeat_id INTEGER NOT NULL,
        grouping INTEGER NOT NULL,
        step INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        time_ns INTEGER NOT NULL,
        PRIMARY KEY (repeat_id, grouping, step, key_id)
    ) WITHOUT ROWID;
    CREATE TABLE kind_totals (
        repeat_id INTEGER NOT NULL,
        kind_id INTEGER NOT NULL,
        events INTEGER NOT NULL,
        dur_ns INTEGER NOT NULL,
        PRIMARY KEY (repeat_id, kind_id)
    ) WITHOUT ROWID;
"""

# The rows as they read: names, absolute times and self time, for queries and people.
_VIEWS = """
    CREATE VIEW event_rows AS
        SELECT r.run_id, r.repeat, e.seq, e.step, n.text AS name, o.text AS op, c.text AS category,
               k.text AS kind, d.text AS device, s.text AS stream, e.start_ns + r.origin_ns AS start_ns,
               e.dur_ns, e.dur_ns - e.nested_ns AS self_ns, e.correlation
        FROM events e JOIN repeats r ON r.id = e.repeat_id
        JOIN strings n ON n.id = e.name_id JOIN strings k ON k.id = e.kind_id
        JOIN strings d ON d.id = e.device_id LEFT JOIN strings o ON o.id = e.op_id
        LEFT JOIN strings c ON c.id = e.category_id LEFT JOIN strings s ON s.id = e.stream_id;
    CREATE VIEW memory_rows AS
        SELECT r.run_id, r.repeat, m.seq, m.ts_ns + r.origin_ns AS ts_ns, m.bytes, m.total_allocated,
               m.total_reserved, m.peak_bytes_in_use, m.fragmentation_code, p.device, p.allocator
        FROM memory_events m JOIN repeats r ON r.id = m.repeat_id JOIN pools p ON p.id = m.pool_id;
    CREATE VIEW figure_rows AS
        SELECT r.run_id, r.repeat, f.grouping, f.step, k.text AS key, f.time_ns
        FROM figures f JOIN repeats r ON r.id = f.repeat_id JOIN strings k ON k.id = f.key_id
"""


def _migration_5(db: sqlite3.Connection) -> None:
    """The precision a run ran at (`dtype`), part of its configuration: the runs xprof
    profiled before it were all fp32; an import's is unknown. Devices are named alike in
    both frameworks ('gpu:N', was torch's 'cuda:N' and TensorFlow's '/device:GPU:N')."""
    _execute_script(db, """
        ALTER TABLE runs ADD COLUMN dtype TEXT;
        UPDATE runs SET dtype = 'fp32' WHERE source = 'profile';
        UPDATE runs SET device = 'gpu:' || substr(device, 6) WHERE source = 'profile' AND device LIKE 'cuda:%';
        UPDATE runs SET device = 'gpu:' || substr(device, 13)
            WHERE source = 'profile' AND device LIKE '/device:GPU:%'
        """)


def _migration_6(db: sqlite3.Connection) -> None:
    """How many examples a run's steps took where it was not its size's own batch
    (`--batch-size`; NULL: the size's own), part of its configuration."""
    _execute_script(db, "ALTER TABLE runs ADD COLUMN batch_size INTEGER")


def _migration_7(db: sqlite3.Connection) -> None:
    """The model layer an event ran for and its inputs' shapes, where the trace records
    them (torch traces: layer scopes, record_shapes); and each host's measured peaks
    (`xprof calibrate`). Older events have neither: NULL."""
    _execute_script(db, """
        ALTER TABLE events ADD COLUMN layer_id INTEGER;
        ALTER TABLE events ADD COLUMN shapes_id INTEGER;
        DROP VIEW event_rows;
        CREATE TABLE calibrations (
            id INTEGER PRIMARY KEY,
            host TEXT NOT NULL,
            fingerprint TEXT,
            device TEXT NOT NULL,
            device_name TEXT,
            framework TEXT NOT NULL,
            dtype TEXT NOT NULL,
            flops_per_s REAL,
            flops_spread REAL,
            bytes_per_s REAL,
            bytes_spread REAL,
            repeats INTEGER NOT NULL,
            detail TEXT,
            measured_at REAL NOT NULL
        );
        CREATE INDEX calibrations_by_host ON calibrations(host, device, measured_at)
        """ + _EVENT_ROWS)


_EVENT_ROWS = """;
    CREATE VIEW event_rows AS
        SELECT r.run_id, r.repeat, e.seq, e.step, n.text AS name, o.text AS op, c.text AS category,
               k.text AS kind, d.text AS device, s.text AS stream, e.start_ns + r.origin_ns AS start_ns,
               e.dur_ns, e.dur_ns - e.nested_ns AS self_ns, e.correlation, l.text AS layer, sh.text AS shapes
        FROM events e JOIN repeats r ON r.id = e.repeat_id
        JOIN strings n ON n.id = e.name_id JOIN strings k ON k.id = e.kind_id
        JOIN strings d ON d.id = e.device_id LEFT JOIN strings o ON o.id = e.op_id
        LEFT JOIN strings c ON c.id = e.category_id LEFT JOIN strings s ON s.id = e.stream_id
        LEFT JOIN strings l ON l.id = e.layer_id LEFT JOIN strings sh ON sh.id = e.shapes_id
"""

def _migration_8(db: sqlite3.Connection) -> None:
    """The bytes of kept raw traces, by sha256, for a server store (hosts share nothing
    else); a file store keeps them beside it, as before, and this table empty."""
    _execute_script(db, "CREATE TABLE artifact_blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)")


MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
              _migration_7, _migration_8]
SCHEMA_VERSION = len(MIGRATIONS)
