"""A throwaway PostgreSQL cluster on a free 127.0.0.1 port (Debian's server binaries), for tests.

    with PostgresServer(tmp_path / "pg") as pg:
        os.environ["LLMOPS_DATABASE_URL"] = pg.url("llmops")

initdb + pg_ctl in a temp dir, trust auth on loopback only, stopped (fast) on exit. The
binaries come with Debian's postgresql-15 package: the Makefile apt-installs it when absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"),
               Path("/usr/lib/postgresql/17/bin")]
SUPERUSER = "llmops"


def pg_bin() -> Path | None:
    """The folder with initdb/pg_ctl, or None when no PostgreSQL server is installed."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root: tests running as root start the cluster as `postgres`.
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class PostgresServer:
    """initdb, start on 127.0.0.1:<free port>, create databases on demand, stop on exit."""

    def __init__(self, path: Path | None = None, *, max_connections: int = 200) -> None:
        self._prefix = _as_postgres_user()
        # As root the cluster runs as `postgres`, which cannot enter pytest's 0700 temp folders:
        # then it lives in a folder of its own under /tmp, removed on exit.
        self._own = path is None or bool(self._prefix)
        self.path = Path(tempfile.mkdtemp(prefix="llmops-pg-")) if self._own else Path(path)
        self.data = self.path / "data"
        self.socket_dir = self.path / "sock"
        self.port = _free_port()
        self.max_connections = max_connections
        folder = pg_bin()
        if folder is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl) under "
                                    f"{', '.join(map(str, PG_BIN_DIRS))}: `make install` "
                                    "apt-installs postgresql when absent")
        self.bin = folder
        self.log = self.path / "postgres.log"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._prefix, *args], check=True, capture_output=True, timeout=120)

    def __enter__(self) -> PostgresServer:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._prefix:
            os.chmod(self.path, 0o755)
            shutil.chown(self.path, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                   f"-c max_connections={self.max_connections} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "-t", "30", "stop")
        if self._own:
            shutil.rmtree(self.path, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL (psycopg2 driver)."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", SUPERUSER, name)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dagster_storage_yaml(self, database: str) -> str:
        """The `storage: postgres:` block of a dagster.yaml for this cluster."""
        return ("storage:\n  postgres:\n    postgres_db:\n"
                f"      username: {SUPERUSER}\n      password: ''\n"
                f"      hostname: 127.0.0.1\n      db_name: {database}\n      port: {self.port}\n"
                "      params: {}\n      scheme: postgresql+psycopg2\n")

