"""A call cache keyed by content: a re-run re-bills nothing, and a killed run loses nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.base import ChatResult, Message, Provider
from llmops_pipelines.settings import Settings


class CallCache:
    """SQLite (WAL) under LLMOPS_HOME; each result is committed as soon as its call returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection and a lock: many worker threads, one writer, as SQLite wants.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT, "
                           "value TEXT NOT NULL, created REAL NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> CallCache:
        """The run's cache: LLMOPS_DATABASE_URL when set, else SQLite under LLMOPS_HOME."""
        return cls(settings.cache_path)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The cached values among `keys`, in a few queries instead of one per key."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start:start + 500]
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT key, value FROM calls WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
            found.update((key, json.loads(value)) for key, value in rows)
        with self._lock:
            self.hits += len(found)
            self.misses += len(set(keys)) - len(found)
        return found

    def adopt(self, renames: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Copy entries stored under old keys (values of `renames`) to their new keys (its keys).

        How a cache written under an older key formula stays valid: each entry found is read
        once and written under its new key; the old entry stays for older releases.
        """
        olds = list(set(renames.values()))
        stored: dict[str, tuple[str, str]] = {}
        for start in range(0, len(olds), 500):
            chunk = olds[start:start + 500]
            with self._lock:
                stored.update((key, (kind, value)) for key, kind, value in self._conn.execute(
                    f"SELECT key, kind, value FROM calls WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall())
        copies = [(new, *stored[old], time.time()) for new, old in renames.items() if old in stored]
        if copies:
            with self._lock:
                self._conn.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?)", copies)
        return {new: json.loads(value) for new, _, value, _ in copies}

    def count(self, kind: str | None = None) -> int:
        """Entries stored (of one kind: chat, judge, metrics, ...)."""
        with self._lock:
            if kind is None:
                return self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM calls WHERE kind = ?",
                                      (kind,)).fetchone()[0]

    def put(self, key: str, kind: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)",
                               (key, kind, json.dumps(value), time.time()))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


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
