"""The production log's records and their validation, whichever store holds them."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

EXCHANGE, FEEDBACK = "exchange", "feedback"
_REQUIRED = {EXCHANGE: ("id", "at", "question", "answer", "contexts", "model"),
             FEEDBACK: ("id", "at", "rating")}


@dataclass
class LogWindow:
    """The complete records after a cursor, bad lines with their reasons, and the next cursor."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    end: int = 0

    def add(self, raw: bytes | str, where: dict[str, Any]) -> None:
        """One stored record: kept as an exchange or feedback, or rejected with its reason."""
        text = raw if isinstance(raw, str) else raw[:300].decode("utf-8", "replace")
        where = {**where, "raw": text[:300]}
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.rejects.append({**where, "reason": f"not JSON: {exc}"})
            return
        kind = record.get("type") if isinstance(record, dict) else None
        missing = [k for k in _REQUIRED.get(str(kind), ()) if k not in record]
        if kind not in _REQUIRED or missing:
            reason = f"unknown record type {kind!r}" if kind not in _REQUIRED \
                else f"missing fields {missing}"
            self.rejects.append({**where, "reason": reason})
            return
        (self.exchanges if kind == EXCHANGE else self.feedback).append(record)


def encode(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=float)


class ServedLookup(Protocol):
    """Exchange ids served so far (by any process writing the same log)."""

    def add(self, exchange_id: str) -> None: ...

    def __contains__(self, exchange_id: object) -> bool: ...


class KnownIds:
    """Ids this process served, else looked up in the log (served before a restart, or by
    another process writing the same log); found ids are remembered."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, exchange_id: str) -> None:
        with self._lock:
            self._ids.add(exchange_id)

    def __contains__(self, exchange_id: object) -> bool:
        with self._lock:
            if exchange_id in self._ids:
                return True
        found = self._look_up(str(exchange_id))
        if found:
            self.add(str(exchange_id))
        return found

    def _look_up(self, exchange_id: str) -> bool:
        raise NotImplementedError


class LogStore(Protocol):
    """A production log: the JSONL file under LLMOPS_HOME, or the table in LLMOPS_DATABASE_URL."""

    where: str  # for messages and the serve banner (a database URL with its password masked)
    cursor_unit: str  # "bytes" (file offset) or "ids" (last row id)

    def append(self, record: dict[str, Any]) -> None: ...

    def read_since(self, cursor: int) -> LogWindow: ...

    def version(self) -> str: ...

    def served_ids(self) -> ServedLookup: ...
