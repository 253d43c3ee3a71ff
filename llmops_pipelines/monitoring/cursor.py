"""Where the monitoring asset stopped reading the production log: a file, or a database row.

With LLMOPS_DATABASE_URL the cursor is a row of `cursors`, since the asset may run on any of
the team's hosts; it is a row id of the log table. Without it, a JSON file under
LLMOPS_HOME holding a byte offset of the JSONL log (as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops_pipelines.monitoring.production import load_cursor, save_cursor
from llmops_pipelines.settings import Settings
from llmops_pipelines.state import cursors
from llmops_pipelines.state.engine import shared_engine

NAME = "production_monitoring"


@dataclass(frozen=True)
class MonitorCursor:
    settings: Settings
    name: str = NAME

    def load(self) -> int:
        """The cursor the last successful run saved (0 before the first)."""
        if self.settings.database_url:
            return cursors.load_cursor(shared_engine(self.settings.database_url), self.name)
        return load_cursor(self._path())

    def save(self, value: int) -> None:
        if self.settings.database_url:
            cursors.save_cursor(shared_engine(self.settings.database_url), self.name, value)
        else:
            save_cursor(self._path(), value)

    def _path(self) -> Path:
        return self.settings.home / "monitoring" / "cursor.json"
