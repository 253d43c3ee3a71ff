"""Named reader cursors in the database: every host running the monitoring asset shares one."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from llmops_pipelines.state.tables import cursors


def load_cursor(engine: sa.Engine, name: str) -> int:
    """The saved value of cursor `name` (0 before the first save)."""
    with engine.connect() as conn:
        value = conn.scalar(sa.select(cursors.c.value).where(cursors.c.name == name))
    return int(value or 0)


def save_cursor(engine: sa.Engine, name: str, value: int) -> None:
    """Store cursor `name` (insert or update, committed)."""
    statement = insert(cursors).values(name=name, value=value, updated_at=time.time())
    with engine.begin() as conn:
        conn.execute(statement.on_conflict_do_update(
            index_elements=[cursors.c.name],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at}))
