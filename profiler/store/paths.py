"""Where xprof keeps its data: `--db`, else `$XPROF_DB`, else the user data directory."""

from __future__ import annotations

import os
from pathlib import Path

DB_ENV = "XPROF_DB"


def default_db_path() -> Path | str:
    """A path, or a PostgreSQL URL (kept as text) where $XPROF_DB is one."""
    if os.environ.get(DB_ENV):
        value = os.environ[DB_ENV]
        return value if value.startswith(("postgresql://", "postgres://")) else Path(value).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("xprof", appauthor=False)) / "xprof.db"
