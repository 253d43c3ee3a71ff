"""Numbered schema migrations, kept in the repo and applied in one transaction at first open.

Each step is frozen DDL: once released it never changes (a database migrated by it must
stay valid); a schema change is a new step appended below, and the same change in tables.py.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

# Any constant both sides agree on: every process migrating this database queues on it.
MIGRATION_LOCK = 0x6C6C6D6F70730001  # "llmops" + 1

MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "call cache, registry, production log, cursors", (
        "CREATE TABLE calls (key TEXT PRIMARY KEY, kind TEXT, value TEXT NOT NULL, "
        "created DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE deployments (deployment_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL, "
        "prompt_name TEXT, prompt_version TEXT, model TEXT, params TEXT, index_version TEXT, "
        "data_version TEXT, summary TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE aliases (alias TEXT PRIMARY KEY, deployment_id TEXT NOT NULL "
        "REFERENCES deployments, updated_at DOUBLE PRECISION)",
        "CREATE TABLE history (id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, "
        "action TEXT NOT NULL, alias TEXT, deployment_id TEXT, previous_deployment_id TEXT, "
        "actor TEXT, reason TEXT, metrics TEXT)",
        "CREATE TABLE deployment_rows (deployment_id TEXT PRIMARY KEY REFERENCES deployments, "
        "rows TEXT NOT NULL)",
        "CREATE TABLE production_log (id BIGSERIAL PRIMARY KEY, kind TEXT, exchange_id TEXT, "
        "record TEXT NOT NULL)",
        "CREATE INDEX production_log_exchange_id ON production_log (exchange_id)",
        "CREATE TABLE cursors (name TEXT PRIMARY KEY, value BIGINT NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL)",
    )),
]


def migrate(engine: sa.Engine) -> list[int]:
    """Apply the steps this database lacks; returns their numbers (empty when up to date).

    One transaction: a failed step leaves the previous version whole. The advisory lock makes
    two workers opening a new database at once take turns (the second sees the steps done);
    being transaction-scoped, it is released by the commit or by a crash.
    """
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER "
                             "PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION "
                             "NOT NULL)"))
        done = set(conn.scalars(sa.text("SELECT version FROM schema_version")))
        applied = []
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                conn.execute(sa.text(statement))
            conn.execute(sa.text("INSERT INTO schema_version VALUES (:v, :n, :t)"),
                         {"v": version, "n": name, "t": time.time()})
            applied.append(version)
        return applied


def current_version(engine: sa.Engine) -> int:
    """The newest step applied (0 for a database never migrated)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("schema_version"):
            return 0
        return int(conn.scalar(sa.text("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
                   or 0)
