"""A throwaway PostgreSQL server for the tests: initdb in a temporary directory, a Unix
socket only, run as the `postgres` user when the tests run as root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's newest."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One cluster; `url(name)` names a database on it (made by `database()`)."""

    def __init__(self, bin_dir: Path, durable: bool = False):
        self.bin, self.durable = bin_dir, durable  # durable: fsync on, as a real server runs
        self.root = Path(tempfile.mkdtemp(prefix="xprof-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        # the server refuses to run as root: it runs as `postgres`, who must own its files
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        os.chmod(self.root, 0o755)

    def _as_server(self, *command: str, timeout=120) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> Server:
        self._as_server(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self) -> Server:
        options = f"-k {self.root} -c listen_addresses='' -p {self.port} -c max_connections=100"
        if not self.durable:  # the tests' server loses nothing they need when it does not sync
            options += " -c fsync=off -c full_page_writes=off"
        self._as_server(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                        "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_server(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop at once (connections cut, transactions rolled back) and start again."""
        self.stop("immediate")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"

    def database(self) -> str:
        """A new empty database on the server; its URL."""
        import psycopg

        name = f"x{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
