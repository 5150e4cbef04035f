"""The store owns the schema and every SQL statement: migrations, writes, the reads
analysis and the views need, raw-trace artifacts. Of xprof it imports only traces,
processes and errors."""

from profiler.store.paths import default_db_path
from profiler.store.queries import EventsPruned, RunNotFound
from profiler.store.store import Store, StoreError

__all__ = ["Store", "StoreError", "RunNotFound", "EventsPruned", "default_db_path", "open_store"]


def open_store(db_path=None, create: bool = True, notice=None) -> Store:
    """The store at `db_path`, else at $XPROF_DB, else in the user data directory;
    `notice` hears of a schema upgrade (see Store.open)."""
    return Store.open(db_path or default_db_path(), create=create, notice=notice)
