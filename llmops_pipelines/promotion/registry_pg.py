"""The deployment registry on PostgreSQL: every worker and server sees one champion.

Same operations and step_hook points as the SQLite Registry. A change is one transaction
that first takes LOCK TABLE aliases IN SHARE ROW EXCLUSIVE MODE: that mode conflicts with
itself, so concurrent promotions and rollbacks queue (each then reads the alias as the one
before it left it), while readers (get, history, serving) never wait. A row lock (SELECT
... FOR UPDATE) would not do: the first promotion of an alias has no row to lock yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from llmops_pipelines.promotion.registry_rules import (
    Deployment,
    RegistryApi,
    deployment_values,
    history_item,
    rollback_target,
    to_json,
)
from llmops_pipelines.promotion.registry_rules import (
    actor as default_actor,
)
from llmops_pipelines.state.engine import masked, shared_engine
from llmops_pipelines.state.tables import aliases, deployment_rows, deployments, history


class PostgresRegistry(RegistryApi):
    """Aliases over immutable deployments in the shared database, with who/when/why."""

    def __init__(self, url: str, *, step_hook: Callable[[str], None] | None = None,
                 read_only: bool = False) -> None:
        self.where = masked(url)  # for messages; the password never leaves the URL
        self._step = step_hook or (lambda _step: None)
        self.read_only = read_only
        # read_only (`llmops status`): no migration either; a database never migrated reads empty.
        self._engine = shared_engine(url, migrate=not read_only)

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self._engine.begin() as conn:
            conn.execute(sa.text("LOCK TABLE aliases IN SHARE ROW EXCLUSIVE MODE"))
            yield conn

    @contextmanager
    def _reader(self) -> Iterator[sa.Connection | None]:
        with self._engine.connect() as conn:
            if self.read_only and not sa.inspect(conn).has_table("aliases"):
                yield None
                return
            yield conn

    def register(self, conn: sa.Connection, summary: dict[str, Any],
                 versions: dict[str, str]) -> str:
        values = deployment_values(summary, versions)
        conn.execute(insert(deployments).values(values).on_conflict_do_nothing())
        return str(values[0])

    def _history(self, conn: sa.Connection, **values: Any) -> None:
        conn.execute(sa.insert(history).values(at=time.time(), **values))

    def _point(self, conn: sa.Connection, alias: str, deployment_id: str) -> None:
        statement = insert(aliases).values(alias=alias, deployment_id=deployment_id,
                                           updated_at=time.time())
        conn.execute(statement.on_conflict_do_update(
            index_elements=[aliases.c.alias],
            set_={"deployment_id": statement.excluded.deployment_id,
                  "updated_at": statement.excluded.updated_at}))

    def promote_once(self, summary: dict[str, Any], versions: dict[str, str], *, reason: str,
                     alias: str = "champion", actor: str | None = None,
                     rows: list[dict[str, Any]] | None = None,
                     metrics: dict[str, Any] | None = None) -> tuple[str, bool]:
        with self._tx() as conn:
            deployment_id = self.register(conn, summary, versions)
            previous = conn.scalar(sa.select(aliases.c.deployment_id)
                                   .where(aliases.c.alias == alias))
            if previous == deployment_id:
                return deployment_id, False  # another run promoted it first
            if rows is not None:
                statement = insert(deployment_rows).values(deployment_id=deployment_id,
                                                           rows=to_json(rows))
                conn.execute(statement.on_conflict_do_update(
                    index_elements=[deployment_rows.c.deployment_id],
                    set_={"rows": statement.excluded.rows}))
            self._step("registered")
            self._point(conn, alias, deployment_id)
            self._step("alias-moved")
            self._history(conn, action="promote", alias=alias, deployment_id=deployment_id,
                          previous_deployment_id=previous, actor=actor or default_actor(),
                          reason=reason,
                          metrics=to_json(metrics if metrics is not None else summary))
            self._step("history-written")
        return deployment_id, True

    def record(self, action: str, summary: dict[str, Any] | None, versions: dict[str, str], *,
               reason: str, actor: str | None = None, metrics: dict[str, Any] | None = None) -> None:
        with self._engine.begin() as conn:  # moves no alias: needs no alias lock
            deployment_id = self.register(conn, summary, versions) if summary else None
            evidence = metrics if metrics is not None else summary
            self._history(conn, action=action, alias=None, deployment_id=deployment_id,
                          previous_deployment_id=None, actor=actor or default_actor(),
                          reason=reason, metrics=to_json(evidence) if evidence is not None else None)

    def rollback(self, alias: str = "champion", *, reason: str = "rollback",
                 actor: str | None = None) -> str:
        with self._tx() as conn:
            moves = conn.execute(sa.select(history.c.action, history.c.deployment_id)
                                 .where(history.c.alias == alias,
                                        history.c.action.in_(("promote", "rollback")))
                                 .order_by(history.c.id))
            current, target = rollback_target(alias, ((str(a), str(d)) for a, d in moves))
            self._point(conn, alias, target)
            self._step("alias-moved")
            self._history(conn, action="rollback", alias=alias, deployment_id=target,
                          previous_deployment_id=current, actor=actor or default_actor(),
                          reason=reason, metrics=None)
            return target

    def _one(self, query: sa.Select[Any]) -> Deployment | None:
        with self._reader() as conn:
            row = conn.execute(query).first() if conn is not None else None
        return Deployment.from_row(row) if row is not None else None

    def get(self, alias: str = "champion") -> Deployment | None:
        return self._one(sa.select(deployments).join(
            aliases, aliases.c.deployment_id == deployments.c.deployment_id)
            .where(aliases.c.alias == alias))

    def find(self, key: str) -> Deployment | None:
        return self._one(sa.select(deployments).where(
            sa.or_(deployments.c.deployment_id == key, deployments.c.candidate_id == key))
            .order_by(deployments.c.created_at.desc()).limit(1))

    def rows(self, deployment_id: str) -> list[dict[str, Any]] | None:
        with self._reader() as conn:
            value = None if conn is None else conn.scalar(
                sa.select(deployment_rows.c.rows)
                .where(deployment_rows.c.deployment_id == deployment_id))
        return json.loads(value) if value else None

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        query = (sa.select(history, deployments.c.candidate_id)
                 .join(deployments, deployments.c.deployment_id == history.c.deployment_id,
                       isouter=True)
                 .order_by(history.c.id.desc()).limit(limit))
        with self._reader() as conn:
            if conn is None:
                return []
            return [history_item(dict(r._mapping)) for r in conn.execute(query)]

