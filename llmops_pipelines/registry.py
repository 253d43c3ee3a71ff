"""The deployment registry: SQLite under LLMOPS_HOME, one transaction per change, full history."""

from __future__ import annotations

import getpass
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.hashing import content_hash

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
"""


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    candidate_id: str
    prompt_name: str
    prompt_version: str
    model: str
    params: str
    index_version: str
    data_version: str
    summary: dict[str, Any]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Registry:
    """Aliases (champion, challenger) over immutable deployments, with who/when/why."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # executescript commits on its own, so the schema is created outside _tx.
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.executescript(SCHEMA)

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
        deployment_id = "dep-" + content_hash(summary["candidate_id"], versions.get("index", ""),
                                              versions.get("data", ""), length=12)
        conn.execute(
            "INSERT OR IGNORE INTO deployments VALUES (?,?,?,?,?,?,?,?,?,?)",
            (deployment_id, summary["candidate_id"], summary.get("prompt_name"),
             summary.get("prompt_version"), summary.get("model"), summary.get("params", "{}"),
             versions.get("index", ""), versions.get("data", ""),
             json.dumps(summary, default=float), time.time()))
        return deployment_id

    def promote(self, summary: dict[str, Any], versions: dict[str, str], *, reason: str,
                alias: str = "champion", actor: str | None = None) -> str:
        """Register the candidate and move the alias to it, atomically."""
        with self._tx() as conn:
            deployment_id = self.register(conn, summary, versions)
            previous = conn.execute("SELECT deployment_id FROM aliases WHERE alias = ?",
                                    (alias,)).fetchone()
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                         (alias, deployment_id, time.time()))
            conn.execute("INSERT INTO history (at, action, alias, deployment_id, "
                         "previous_deployment_id, actor, reason) VALUES (?,?,?,?,?,?,?)",
                         (time.time(), "promote", alias, deployment_id,
                          previous[0] if previous else None, actor or _actor(), reason))
        return deployment_id

    def record(self, action: str, summary: dict[str, Any] | None, versions: dict[str, str], *,
               reason: str, actor: str | None = None) -> None:
        """Log a decision that moved no alias (a rejected candidate), with its evidence."""
        with self._tx() as conn:
            deployment_id = self.register(conn, summary, versions) if summary else None
            conn.execute("INSERT INTO history (at, action, alias, deployment_id, "
                         "previous_deployment_id, actor, reason) VALUES (?,?,?,?,?,?,?)",
                         (time.time(), action, None, deployment_id, None, actor or _actor(),
                          reason))

    def rollback(self, alias: str = "champion", *, reason: str = "rollback") -> str:
        """Point the alias back at the deployment it held before its last promotion."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT deployment_id, previous_deployment_id FROM history WHERE alias = ? "
                "AND action IN ('promote', 'rollback') ORDER BY id DESC LIMIT 1",
                (alias,)).fetchone()
            if not row or not row[1]:
                raise LlmopsError(f"alias {alias!r} has no previous deployment to roll back to")
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                         (alias, row[1], time.time()))
            conn.execute("INSERT INTO history (at, action, alias, deployment_id, "
                         "previous_deployment_id, actor, reason) VALUES (?,?,?,?,?,?,?)",
                         (time.time(), "rollback", alias, row[1], row[0], _actor(), reason))
            return row[1]

    def get(self, alias: str = "champion") -> Deployment | None:
        with closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute(
                "SELECT d.* FROM aliases a JOIN deployments d USING (deployment_id) "
                "WHERE a.alias = ?", (alias,)).fetchone()
        if row is None:
            return None
        return Deployment(*row[:8], summary=json.loads(row[8]), created_at=row[9])

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        with closing(sqlite3.connect(self.path)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM history ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [dict(r) for r in rows]
