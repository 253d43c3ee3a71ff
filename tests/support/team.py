"""The team profile on real engines, for tests: PostgreSQL for Dagster and for our state, a
Chroma server, a Dask LocalCluster with worker processes, tables on a shared folder.

    with TeamDeployment(tmp_path, monkeypatch, server) as team:
        team.materialize()  # the Dagster CLI, as `make demo` runs it, on the team profile
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.chroma_server import ChromaServer
from tests.support.openai_server import FakeOpenAIServer
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
LIFECYCLE = "not key:nightly_reevaluation"  # what `make demo` materializes
PASSWORD_SENTINEL = "sentinel-pw-4242"


class TeamDeployment:
    """Starts every engine of the team profile and points the environment at them."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeOpenAIServer,
                 *, workers: int = 2) -> None:
        self.tmp_path, self.monkeypatch, self.server = tmp_path, monkeypatch, server
        self.workers = workers
        self._stack = contextlib.ExitStack()
        self.tables = tmp_path / "shared-tables"  # the folder every worker shares

    def __enter__(self) -> TeamDeployment:
        from distributed import LocalCluster

        self.pg = self._stack.enter_context(PostgresServer())
        self.pg.create_database("dagster")
        # Trust auth accepts any password: one in the URL shows whether it leaks anywhere.
        self.state_url = self.pg.create_database("llmops").replace(
            "llmops@", f"llmops:{PASSWORD_SENTINEL}@")
        self.chroma = self._stack.enter_context(ChromaServer(self.tmp_path / "chroma"))
        home = Path(os.environ["DAGSTER_HOME"])
        shutil.copy(REPO / "deploy" / "team" / "dagster.yaml", home / "dagster.yaml")
        env = {
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pg.port),
            "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USERNAME": "llmops", "DAGSTER_PG_PASSWORD": "",
            "LLMOPS_PROFILE": "team", "LLMOPS_DATABASE_URL": self.state_url,
            "LLMOPS_TABLES_URI": str(self.tables), "LLMOPS_CHROMA_URL": self.chroma.url,
            "LLMOPS_PROVIDER": "openai", "OPENAI_BASE_URL": self.server.base_url,
            "OPENAI_API_KEY": "test-key-not-secret", "LLMOPS_OPENAI_MAX_RETRIES": "2",
            "LLMOPS_FINETUNE_POLL_S": "0.01",
        }
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        # Worker processes are spawned now and inherit the environment set above.
        self.cluster = self._stack.enter_context(LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=":0"))
        self.monkeypatch.setenv("LLMOPS_DASK_SCHEDULER", self.cluster.scheduler_address)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def materialize(self, select: str = LIFECYCLE, timeout: int = 600,
                    background: bool = False) -> Any:
        args = [DAGSTER, "asset", "materialize", "-m", "llmops_pipelines.definitions",
                "--select", select]
        if background:
            return subprocess.Popen(args, cwd=REPO, env=dict(os.environ), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return subprocess.run(args, cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                              timeout=timeout)

    def worker_pids(self) -> dict[str, int]:
        """Each Dask worker's process id, by worker address."""
        from distributed import Client

        with Client(self.cluster.scheduler_address, timeout=30) as client:
            return dict(client.run(os.getpid))

    @contextlib.contextmanager
    def connect(self, database: str) -> Iterator[sa.Connection]:
        engine = sa.create_engine(self.pg.url(database))
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()
