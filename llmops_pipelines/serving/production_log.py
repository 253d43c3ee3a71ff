"""The production log: one JSON line per served exchange or feedback, appended, read by cursor.

JSONL because it is appended by the server one line at a time and read incrementally by the
monitoring asset from a byte offset; a line is complete only once its newline is written.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXCHANGE, FEEDBACK = "exchange", "feedback"
_REQUIRED = {EXCHANGE: ("id", "at", "question", "answer", "contexts", "model"),
             FEEDBACK: ("id", "at", "rating")}


class ProductionLog:
    """Appends records from many request threads without interleaving lines."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, default=float) + "\n").encode("utf-8")
        with self._lock:
            # One write on an O_APPEND descriptor: a reader never sees half of a line that a
            # later line follows, and a crash loses at most the unterminated tail.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


@dataclass
class LogWindow:
    """The complete records after a cursor, bad lines with their reasons, and the next cursor."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    end: int = 0


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
        where = {"path": str(path), "line": line_no + i, "raw": raw[:300].decode("utf-8", "replace")}
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            window.rejects.append({**where, "reason": f"not JSON: {exc}"})
            continue
        kind = record.get("type") if isinstance(record, dict) else None
        missing = [k for k in _REQUIRED.get(str(kind), ()) if k not in record]
        if kind not in _REQUIRED or missing:
            reason = f"unknown record type {kind!r}" if kind not in _REQUIRED \
                else f"missing fields {missing}"
            window.rejects.append({**where, "reason": reason})
            continue
        (window.exchanges if kind == EXCHANGE else window.feedback).append(record)
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
