"""Retention: pruning old runs' raw events and kept traces (their figures stay), and
giving the space back."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


class Retention:
    """Mixed into Store: what `xprof prune` and the daemon's retention do."""

    def prune(self, older_than_s: float, keep_last: int, dry_run: bool = False) -> dict:
        """Prune the raw events of runs older than `older_than_s`, keeping those of the
        `keep_last` newest runs of each configuration (see prune_events). Returns what
        went (or would go), the runs, and the store's bytes before and after."""
        runs = self.runs_to_prune(time.time() - older_than_s, keep_last)
        ids = [run["id"] for run in runs]
        before = self.file_bytes()
        gone = self.raw_counts(ids) if dry_run or not ids else self.prune_events(ids)
        if not dry_run and not ids:
            self.reclaim_space()  # the pages a prune cut short left free, if any
        return {"files_left": [], **gone, "run_ids": ids, "dry_run": dry_run, "store_bytes_before": before,
                "store_bytes_after": before if dry_run else self.file_bytes(),
                "wal_bytes": self.file_bytes(["-wal"])}

    def file_bytes(self, suffixes=("", "-wal")) -> int | None:
        """The size on disk of the store's file and its write-ahead log, or of those named; a
        server database's size (it has no log of its own to name)."""
        if self.url:
            return self._rows("SELECT pg_database_size(current_database())")[0][0] if "" in suffixes else 0
        if self.path is None:
            return None
        paths = [self.path.with_name(self.path.name + suffix) for suffix in suffixes]
        return sum(path.stat().st_size for path in paths if path.exists())

    def prune_events(self, run_ids: list[str]) -> dict:
        """Remove the raw events, memory events and kept raw traces of runs, keeping the
        runs, their steps and their figures; then give the space back. Returns what went:
        {"runs", "events", "memory_events", "artifact_bytes"}."""
        from profiler.store.store import StoreError

        gone = {"runs": len(run_ids), "events": 0, "memory_events": 0, "artifact_bytes": 0, "files_left": []}
        marks = ", ".join("?" * len(run_ids))
        traces = [self.artifact_file(path) for path, in self.connection.execute(
            f"SELECT path FROM artifacts WHERE run_id IN ({marks}) AND kind = 'trace'", run_ids)]
        traces = [path for path in traces if self.owns(path)]  # another store's files are never touched
        for directory in {path.parent for path in traces if path.exists()}:
            if not _writable(directory):
                raise StoreError(f"cannot remove the raw traces in {directory}: permission denied "
                                 "(nothing was pruned)")
        with self.transaction() as conn:
            for run_id in run_ids:
                repeat_ids = [r[0] for r in conn.execute("SELECT id FROM repeats WHERE run_id = ?", (run_id,))]
                marks = ", ".join("?" * len(repeat_ids))
                for table in ("events", "memory_events"):
                    gone[table] += conn.execute(f"DELETE FROM {table} WHERE repeat_id IN ({marks})",
                                                repeat_ids).rowcount
                gone["artifact_bytes"] += conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM artifacts"
                                                       " WHERE run_id = ? AND kind = 'trace'", (run_id,)).fetchone()[0]
                conn.execute("DELETE FROM artifacts WHERE run_id = ? AND kind = 'trace'", (run_id,))
                self.set_run_columns(conn, run_id, events_pruned_at=time.time())
            conn.execute("DELETE FROM artifact_blobs WHERE sha256 NOT IN (SELECT sha256 FROM artifacts)")
        for path in traces:  # after the commit: a failed prune leaves every file its row names
            try:
                path.unlink(missing_ok=True)
                if path.parent.is_dir() and not any(path.parent.iterdir()):
                    path.parent.rmdir()
            except OSError as error:
                gone["files_left"].append(f"{path}: {error.strerror}")
        self.reclaim_space()
        return gone

    def reclaim_space(self) -> None:
        """Give freed pages back to the file system. A store made before incremental vacuum
        was on is rewritten once (VACUUM, beside readers in WAL mode), then freed pages
        go back as they come. A server's autovacuum does this on its own."""
        from profiler.store.store import StoreError, busy_timeout_ms

        if self.url:
            return
        try:
            if self.connection.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # INCREMENTAL
                self.connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self.connection.execute("VACUUM")
            # executescript steps the pragma to its end; execute frees one page only
            self.connection.executescript("PRAGMA incremental_vacuum;")
            # a reader holding the log would make TRUNCATE wait the busy timeout: ask once,
            # and leave the log to the next checkpoint when it is held (prune says so)
            self.connection.execute("PRAGMA busy_timeout = 0")
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as error:
            raise StoreError(self.describe(error)) from None
        finally:
            self.connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")



def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)
