"""The deployment registry: SQLite under LLMOPS_HOME, one transaction per change, full history."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_pipelines.promotion.registry_rules import (
    Deployment,
    RegistryApi,
    deployment_values,
    history_item,
    rollback_target,
)
from llmops_pipelines.promotion.registry_rules import (
    actor as _actor,
)
from llmops_pipelines.promotion.registry_rules import (
    to_json as _json,
)

if TYPE_CHECKING:
    from llmops_pipelines.settings import Settings

__all__ = ["Deployment", "Registry", "RegistryApi"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
  deployment_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL, prompt_name TEXT,
  prompt_version TEXT, model TEXT, params TEXT, index_version TEXT, data_version TEXT,
  summary TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS aliases (
  alias TEXT PRIMARY KEY, deployment_id TEXT NOT NULL REFERENCES deployments, updated_at REAL);
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, action TEXT NOT NULL, alias TEXT,
  deployment_id TEXT, previous_deployment_id TEXT, actor TEXT, reason TEXT);
-- Per-question metrics of a deployment's evaluation: a later candidate is paired with them.
CREATE TABLE IF NOT EXISTS deployment_rows (
  deployment_id TEXT PRIMARY KEY REFERENCES deployments, rows TEXT NOT NULL);
"""
_HISTORY = ("INSERT INTO history (at, action, alias, deployment_id, previous_deployment_id, actor, "
            "reason, metrics) VALUES (?,?,?,?,?,?,?,?)")


class Registry(RegistryApi):
    """Aliases (champion, challenger) over immutable deployments, with who/when/why."""

    def __init__(self, path: Path, *, step_hook: Callable[[str], None] | None = None,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        # Called between the statements of a change; tests kill the process there to prove
        # that a change lands whole or not at all.
        self._step = step_hook or (lambda _step: None)
        # read_only: `llmops status`/`history` write nothing, so they work on a read-only home
        # (a missing registry reads as empty instead of being created).
        self.read_only = read_only
        if read_only:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # executescript commits on its own, so the schema is created outside _tx.
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.executescript(SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(history)")}
            if "metrics" not in columns:  # registries written before history kept metrics
                conn.execute("ALTER TABLE history ADD COLUMN metrics TEXT")
                conn.commit()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> RegistryApi:
        """The run's registry: PostgreSQL at LLMOPS_DATABASE_URL when set, else SQLite."""
        if settings.database_url:
            from llmops_pipelines.promotion.registry_pg import PostgresRegistry

            return PostgresRegistry(settings.database_url, **kwargs)
        # Read only: settings.home, not registry_path, which would create the folder.
        path = settings.home / "registry.sqlite" if kwargs.get("read_only") \
            else settings.registry_path
        return cls(path, **kwargs)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front: a crash mid-change rolls back whole.
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def register(self, conn: sqlite3.Connection, summary: dict[str, Any],
                 versions: dict[str, str]) -> str:
        values = deployment_values(summary, versions)
        conn.execute("INSERT OR IGNORE INTO deployments VALUES (?,?,?,?,?,?,?,?,?,?)", values)
        deployment_id: str = values[0]
        return deployment_id

    def promote_once(self, summary: dict[str, Any], versions: dict[str, str], *, reason: str,
                     alias: str = "champion", actor: str | None = None,
                     rows: list[dict[str, Any]] | None = None,
                     metrics: dict[str, Any] | None = None) -> tuple[str, bool]:
        """As promote, but an alias already on this deployment is left alone: (id, moved)."""
        with self._tx() as conn:
            deployment_id = self.register(conn, summary, versions)
            previous = conn.execute("SELECT deployment_id FROM aliases WHERE alias = ?",
                                    (alias,)).fetchone()
            if previous and previous[0] == deployment_id:
                # Another run promoted it first (two runs decided at once): nothing to do.
                return deployment_id, False
            if rows is not None:
                conn.execute("INSERT OR REPLACE INTO deployment_rows VALUES (?, ?)",
                             (deployment_id, _json(rows)))
            self._step("registered")
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                         (alias, deployment_id, time.time()))
            self._step("alias-moved")
            conn.execute(_HISTORY, (time.time(), "promote", alias, deployment_id,
                                    previous[0] if previous else None, actor or _actor(), reason,
                                    _json(metrics if metrics is not None else summary)))
            self._step("history-written")
        return deployment_id, True

    def record(self, action: str, summary: dict[str, Any] | None, versions: dict[str, str], *,
               reason: str, actor: str | None = None, metrics: dict[str, Any] | None = None) -> None:
        """Log a decision that moved no alias (a rejected candidate), with its evidence."""
        with self._tx() as conn:
            deployment_id = self.register(conn, summary, versions) if summary else None
            evidence = metrics if metrics is not None else summary
            conn.execute(_HISTORY, (time.time(), action, None, deployment_id, None,
                                    actor or _actor(), reason,
                                    _json(evidence) if evidence is not None else None))

    def rollback(self, alias: str = "champion", *, reason: str = "rollback",
                 actor: str | None = None) -> str:
        """Point the alias at the champion before the current one, walking back through history."""
        with self._tx() as conn:
            current, target = rollback_target(alias, conn.execute(
                "SELECT action, deployment_id FROM history WHERE alias = ? AND action IN "
                "('promote', 'rollback') ORDER BY id", (alias,)))
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                         (alias, target, time.time()))
            self._step("alias-moved")
            conn.execute(_HISTORY, (time.time(), "rollback", alias, target, current,
                                    actor or _actor(), reason, None))
            return target

    def get(self, alias: str = "champion") -> Deployment | None:
        """The deployment an alias points at, or None."""
        return self._one("SELECT d.* FROM aliases a JOIN deployments d USING (deployment_id) "
                         "WHERE a.alias = ?", (alias,))

    def find(self, key: str) -> Deployment | None:
        """A deployment by id or candidate id (the newest one registered for that candidate)."""
        return self._one("SELECT * FROM deployments WHERE deployment_id = ? OR candidate_id = ? "
                         "ORDER BY created_at DESC LIMIT 1", (key, key))

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for reading; None when a read-only registry does not exist yet."""
        if not self.read_only:
            with closing(sqlite3.connect(self.path)) as conn:
                yield conn
            return
        if not self.path.exists():
            yield None
            return
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            conn.execute("SELECT 1 FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL database on read-only media cannot create its -shm file; nothing can be
            # writing it there either, so it may be read as immutable.
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
        with closing(conn):
            yield conn

    def _one(self, sql: str, args: tuple[Any, ...]) -> Deployment | None:
        with self._reader() as conn:
            row = conn.execute(sql, args).fetchone() if conn is not None else None
        if row is None:
            return None
        return Deployment.from_row(row)

    def rows(self, deployment_id: str) -> list[dict[str, Any]] | None:
        """The per-question evaluation rows kept with a deployment, if any."""
        with self._reader() as conn:
            row = None if conn is None else conn.execute(
                "SELECT rows FROM deployment_rows WHERE deployment_id = ?",
                (deployment_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` events first; metrics decoded from JSON."""
        with self._reader() as conn:
            if conn is None:
                return []
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT h.*, d.candidate_id FROM history h LEFT JOIN deployments d "
                                "USING (deployment_id) ORDER BY h.id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [history_item(dict(r)) for r in rows]
