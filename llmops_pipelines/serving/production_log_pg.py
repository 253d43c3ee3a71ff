"""The production log as a PostgreSQL table: every `llmops serve` host appends to one log.

The monitoring cursor is the last row id read. A BIGSERIAL id is taken when the INSERT
runs, not when it commits, so two concurrent appenders can commit out of order (id 8 after
id 9); a reader that saw 9 and saved it would skip 8 forever. Appenders therefore take one
transaction-scoped advisory lock before inserting: id allocation and commit are serialised,
ids become visible in order, and `id > cursor` misses nothing. It costs a queue of appends
(each a one-row insert of a few kB: thousands per second), far below what the model serves;
the reader needs no lock and never blocks a writer.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmops_pipelines.serving.log_records import (
    EXCHANGE,
    KnownIds,
    LogWindow,
    ServedLookup,
    encode,
)
from llmops_pipelines.state.engine import masked, shared_engine
from llmops_pipelines.state.tables import production_log

APPEND_LOCK = 0x6C6C6D6F70730002  # "llmops" + 2: only appenders of this log take it
_BATCH = 5000  # rows per read: a long-unread log is read in bounded pieces


class PostgresProductionLog:
    """Appends from many request threads and hosts; read by row id."""

    cursor_unit = "ids"

    def __init__(self, url: str) -> None:
        self.where = f"{masked(url)} (table production_log)"
        self._engine = shared_engine(url)

    def append(self, record: dict[str, Any]) -> None:
        """Insert one record, committed before returning (a crash loses only unanswered ones)."""
        kind = record.get("type")
        with self._engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
            conn.execute(sa.insert(production_log).values(
                kind=kind, record=encode(record),
                exchange_id=str(record.get("id")) if kind == EXCHANGE else None))

    def read_since(self, cursor: int) -> LogWindow:
        """Every record with id > cursor, validated as the file log's lines are."""
        window = LogWindow(start=cursor, end=cursor)
        with self._engine.connect() as conn:
            while True:
                rows = conn.execute(sa.select(production_log.c.id, production_log.c.record)
                                    .where(production_log.c.id > window.end)
                                    .order_by(production_log.c.id).limit(_BATCH)).all()
                for row_id, raw in rows:
                    window.add(str(raw), {"path": self.where, "line": row_id})
                if rows:
                    window.end = int(rows[-1][0])
                if len(rows) < _BATCH:
                    return window

    def version(self) -> str:
        """The last row id: it grows with every append."""
        with self._engine.connect() as conn:
            return str(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(production_log.c.id),
                                                              0))))

    def served_ids(self) -> ServedLookup:
        return _ServedRows(self._engine)


class _ServedRows(KnownIds):
    """Exchange ids this process served, else looked up in the table (another host's)."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__()
        self._engine = engine

    def _look_up(self, exchange_id: str) -> bool:
        with self._engine.connect() as conn:
            return conn.scalar(sa.select(sa.literal(1)).where(
                production_log.c.exchange_id == exchange_id,
                production_log.c.kind == EXCHANGE).limit(1)) is not None
