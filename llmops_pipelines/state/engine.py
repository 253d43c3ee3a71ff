"""One SQLAlchemy engine per database URL and process, checked and migrated when first opened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from llmops_pipelines.errors import LlmopsError

VARIABLE = "LLMOPS_DATABASE_URL"
_engines: dict[str, sa.Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def parse_url(url: str | Path) -> URL:
    """A SQLAlchemy URL; a bare path means a SQLite file."""
    text = str(url)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        return make_url(text)
    except ArgumentError as exc:
        raise LlmopsError(f"{VARIABLE}: not a database URL ({exc}); expected e.g. "
                          "postgresql+psycopg2://user@db:5432/llmops") from None


def masked(url: str | Path) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return parse_url(url).render_as_string(hide_password=True)
    except LlmopsError:
        return "<unparseable URL>"


def is_postgres(url: str | Path) -> bool:
    return parse_url(url).get_backend_name() == "postgresql"


def _scrub(message: str, url: URL) -> str:
    # Drivers do not echo the password today; the message is scrubbed anyway, since it ends up
    # in run logs that the whole team reads.
    first = message.strip().splitlines()[0] if message.strip() else message
    return first.replace(url.password, "***") if url.password else first


def create_engine(url: str | Path) -> sa.Engine:
    """A pooled engine (pool_pre_ping: a restarted server is reconnected), checked by connecting.

    Raises LlmopsError naming LLMOPS_DATABASE_URL (password masked) when the driver is
    missing or the server cannot be reached.
    """
    parsed = parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise LlmopsError(f"{VARIABLE}={shown}: no driver for it ({_scrub(str(exc), parsed)}); "
                          "install psycopg2-binary or use postgresql+psycopg2://") from None
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        detail = _scrub(str(exc.orig) if exc.orig is not None else str(exc), parsed)
        raise LlmopsError(f"{VARIABLE}={shown}: cannot connect ({detail}); is the server up "
                          "and the URL right?") from None
    return engine


def shared_engine(url: str, *, migrate: bool = True) -> sa.Engine:
    """The process's engine for a PostgreSQL `url`, created, checked and (unless told not to:
    read-only commands write nothing) migrated once; threads share its pool."""
    from llmops_pipelines.state.migrations import migrate as apply_migrations

    if not is_postgres(url):
        raise LlmopsError(f"{VARIABLE}={masked(url)}: shared state needs PostgreSQL "
                          "(postgresql+psycopg2://...); unset it to keep state in SQLite "
                          "under LLMOPS_HOME")
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_engine(url)
        if migrate and url not in _migrated:
            apply_migrations(engine)
            _migrated.add(url)
        return engine


def _after_fork_in_child() -> None:
    # A forked worker must not use its parent's pooled sockets (two processes on one
    # connection corrupt its protocol): drop them without closing them for the parent. The
    # lock may have been held by a parent thread that does not exist here: a new one.
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def dispose_all() -> None:
    """Close every pooled connection (tests; a forked child must not reuse its parent's)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
