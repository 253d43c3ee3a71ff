"""The call cache on PostgreSQL: many worker processes and hosts share one table of answers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from llmops_pipelines.state.engine import shared_engine
from llmops_pipelines.state.tables import calls

Row = tuple[str, str, str, float]


class PostgresCalls:
    """A CallStore over the process's pooled engine: each thread checks out its own connection."""

    def __init__(self, url: str) -> None:
        self._engine = shared_engine(url)

    def fetch(self, keys: list[str]) -> list[tuple[str, str, str]]:
        if not keys:
            return []
        with self._engine.connect() as conn:
            result = conn.execute(sa.select(calls.c.key, calls.c.kind, calls.c.value)
                                  .where(calls.c.key.in_(keys)))
            return [(r.key, r.kind, r.value) for r in result]

    def put(self, row: Row) -> None:
        # Insert-if-absent, never replace: two workers that both missed the same key both paid
        # for it already; the first answer stored stays, and the second writer does not fail.
        self.insert_absent([row])

    def insert_absent(self, rows: list[Row]) -> None:
        values = [{"key": k, "kind": kind, "value": v, "created": t} for k, kind, v, t in rows]
        # One transaction per call, committed on return: a killed worker loses nothing stored.
        with self._engine.begin() as conn:
            conn.execute(insert(calls).on_conflict_do_nothing(index_elements=[calls.c.key]),
                         values)

    def count(self, kind: str | None) -> int:
        query = sa.select(sa.func.count()).select_from(calls)
        if kind is not None:
            query = query.where(calls.c.kind == kind)
        with self._engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def close(self) -> None:
        # The engine is the process's, shared with the other users of this database; its pool
        # closes with the process (state.engine.dispose_all closes it sooner).
        pass
