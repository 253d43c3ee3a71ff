"""The production log: one JSON line per served exchange or feedback, appended, read by cursor.

JSONL because it is appended by the server one line at a time and read incrementally by the
monitoring asset from a byte offset; a line is complete only once its newline is written.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from llmops_pipelines.serving.log_records import (
    EXCHANGE,
    FEEDBACK,
    KnownIds,
    LogStore,
    LogWindow,
    ServedLookup,
    encode,
)
from llmops_pipelines.settings import Settings

__all__ = ["EXCHANGE", "FEEDBACK", "LogStore", "LogWindow", "ProductionLog", "ServedIds",
           "read_since"]


class ProductionLog:
    """Appends records from many request threads without interleaving lines."""

    cursor_unit = "bytes"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @staticmethod
    def from_settings(settings: Settings) -> LogStore:
        """The log `llmops serve` writes: the table in LLMOPS_DATABASE_URL when set, else JSONL."""
        if settings.database_url:
            from llmops_pipelines.serving.production_log_pg import PostgresProductionLog

            return PostgresProductionLog(settings.database_url)
        return ProductionLog(settings.production_log_path)

    def read_since(self, cursor: int) -> LogWindow:
        return read_since(self.path, cursor)

    def version(self) -> str:
        """Changes whenever a record is appended: an append-only file's size."""
        return str(self.path.stat().st_size if self.path.exists() else 0)

    def served_ids(self) -> ServedLookup:
        return ServedIds(self.path)

    def append(self, record: dict[str, Any]) -> None:
        line = (encode(record) + "\n").encode("utf-8")
        with self._lock:
            # One write on an O_APPEND descriptor: a reader never sees half of a line that a
            # later line follows, and a crash loses at most the unterminated tail.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class ServedIds(KnownIds):
    """The exchange ids in the production log: feedback may rate only what was served.

    The log is the record, so ids served before a restart (or by another process writing the
    same log) count; it is read incrementally from where the last lookup stopped.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self._offset = Path(path), 0

    def _look_up(self, exchange_id: str) -> bool:
        with self._lock:
            self._catch_up()
            return exchange_id in self._ids

    def _catch_up(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            if self._offset > self.path.stat().st_size:  # rotated: read the new file whole
                self._offset = 0
            f.seek(self._offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a line still being written: read it next time
                self._offset += len(raw)
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue  # monitoring reports unreadable lines; here they rate nothing
                if isinstance(record, dict) and record.get("type") == EXCHANGE:
                    self._ids.add(str(record.get("id")))


def read_since(path: Path, offset: int) -> LogWindow:
    """Records from byte `offset` to the last complete line; a truncated log restarts at 0."""
    path = Path(path)
    if not path.exists():
        return LogWindow(start=0, end=0)
    size = path.stat().st_size
    if offset > size:  # rotated or truncated: read the new file from its start
        offset = 0
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    complete = data[: data.rfind(b"\n") + 1]
    window = LogWindow(start=offset, end=offset + len(complete))
    line_no = 1 + _lines_before(path, offset)
    for i, raw in enumerate(complete.splitlines()):
        window.add(raw, {"path": str(path), "line": line_no + i})
    return window


def _lines_before(path: Path, offset: int) -> int:
    # Only for error messages (file:line); the log is read in chunks, so this stays cheap.
    if offset == 0:
        return 0
    count = 0
    with path.open("rb") as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(1 << 20, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count
