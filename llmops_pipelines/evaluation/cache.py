"""A call cache keyed by content: a re-run re-bills nothing, and a killed run loses nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.base import ChatResult, Message, Provider
from llmops_pipelines.settings import Settings

Row = tuple[str, str, str, float]  # key, kind, JSON value, created (epoch seconds)


class CallStore(Protocol):
    """Where cached calls live: SQLite under LLMOPS_HOME, or PostgreSQL (cache_postgres.py)."""

    def fetch(self, keys: list[str]) -> list[tuple[str, str, str]]:
        """(key, kind, value) of the stored keys among `keys` (at most 500 of them)."""
        ...

    def put(self, row: Row) -> None:
        """Store one row, committed before returning."""
        ...

    def insert_absent(self, rows: list[Row]) -> None:
        """Store the rows whose key is not stored yet; the others are left as they are."""
        ...

    def count(self, kind: str | None) -> int: ...

    def close(self) -> None: ...


class SqliteCalls:
    """SQLite (WAL); one connection and a lock: many worker threads, one writer, as SQLite wants."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT, "
                           "value TEXT NOT NULL, created REAL NOT NULL)")
        self._lock = threading.Lock()

    def fetch(self, keys: list[str]) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._conn.execute(
                f"SELECT key, kind, value FROM calls WHERE key IN ({','.join('?' * len(keys))})",
                keys).fetchall()

    def put(self, row: Row) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)", row)

    def insert_absent(self, rows: list[Row]) -> None:
        with self._lock:
            self._conn.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?)", rows)

    def count(self, kind: str | None) -> int:
        with self._lock:
            if kind is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM calls WHERE kind = ?",
                                          (kind,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CallCache:
    """Cached calls by content key; each result is stored as soon as its call returns."""

    def __init__(self, path: Path | None = None, *, store: CallStore | None = None) -> None:
        if store is None:
            if path is None:
                raise TypeError("CallCache needs a SQLite path or a store")
            store = SqliteCalls(path)
        self.path = Path(path) if path is not None else None
        self._store = store
        self._lock = threading.Lock()  # guards the counters only; the store is thread-safe
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CallCache:
        """The run's cache: LLMOPS_DATABASE_URL when set, else SQLite under LLMOPS_HOME."""
        if settings.database_url:
            from llmops_pipelines.evaluation.cache_postgres import PostgresCalls

            return cls(store=PostgresCalls(settings.database_url))
        return cls(settings.cache_path)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The cached values among `keys`, in a few queries instead of one per key."""
        found = {key: json.loads(value) for key, _, value in self._fetch(keys)}
        with self._lock:
            self.hits += len(found)
            self.misses += len(set(keys)) - len(found)
        return found

    def _fetch(self, keys: list[str]) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            rows.extend(self._store.fetch(keys[start:start + 500]))
        return rows

    def adopt(self, renames: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Copy entries stored under old keys (values of `renames`) to their new keys (its keys).

        How a cache written under an older key formula stays valid: each entry found is read
        once and written under its new key; the old entry stays for older releases.
        """
        stored = {key: (kind, value) for key, kind, value in self._fetch(list(set(renames.values())))}
        copies = [(new, *stored[old], time.time()) for new, old in renames.items() if old in stored]
        if copies:
            self._store.insert_absent(copies)
        return {new: json.loads(value) for new, _, value, _ in copies}

    def count(self, kind: str | None = None) -> int:
        """Entries stored (of one kind: chat, judge, metrics, ...)."""
        return self._store.count(kind)

    def put(self, key: str, kind: str, value: dict[str, Any]) -> None:
        self._store.put((key, kind, json.dumps(value), time.time()))

    def close(self) -> None:
        self._store.close()


CallOutcome = tuple[ChatResult | None, bool, str | None]  # (result, from the cache?, error)


def cached_chat(provider: Provider, cache: CallCache, key: str, messages: list[Message],
                model: str, params: dict[str, Any], kind: str = "chat",
                legacy_key: str | None = None) -> CallOutcome:
    """A cached answer is reused; a failed call comes back as an error string, never raised."""
    hit = cache.get(key)
    if hit is None and legacy_key is not None:
        hit = cache.adopt({key: legacy_key}).get(key)
    if hit is not None:
        return ChatResult.from_dict(hit), True, None
    try:
        result = provider.chat(messages, model=model, **params)
    except LlmopsError as exc:
        return None, False, str(exc)[:500]
    cache.put(key, kind, result.to_dict())
    return result, False, None


def chat_text(provider: Provider, cache: CallCache, model: str, params: dict[str, Any],
              purpose: str) -> Callable[[list[Message]], str]:
    """A messages -> text function over cached_chat, keyed by purpose (e.g. 'synthetic-qa')."""

    def chat(messages: list[Message]) -> str:
        key = content_hash(provider.cache_namespace, purpose, messages, model, params, length=32)
        result, _, error = cached_chat(provider, cache, key, messages, model, params, purpose)
        return result.text if result else f"(call failed: {error})"

    return chat
