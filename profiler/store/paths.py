"""Where xprof keeps its data: `--db`, else `$XPROF_DB`, else the user data directory."""

from __future__ import annotations

import os
from pathlib import Path

DB_ENV = "XPROF_DB"


def default_db_path() -> Path:
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("xprof", appauthor=False)) / "xprof.db"
