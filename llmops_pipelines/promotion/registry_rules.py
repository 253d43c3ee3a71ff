"""What both registries (SQLite, PostgreSQL) share: the records, ids and the rollback rule."""

from __future__ import annotations

import getpass
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.hashing import content_hash


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    candidate_id: str
    prompt_name: str
    prompt_version: str
    model: str
    params: str
    index_version: str
    data_version: str
    summary: dict[str, Any]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Deployment:
        """From a `deployments` row in column order (summary stored as JSON)."""
        names = [f.name for f in fields(cls)]
        return cls(**dict(zip(names[:8], row[:8], strict=True)), summary=json.loads(row[8]),
                   created_at=row[9])


def actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def to_json(value: Any) -> str:
    # JSON has no NaN: an unscored metric is stored as null, never as a made-up number.
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return None
        return v
    return json.dumps(clean(value), default=float)


def deployment_values(summary: dict[str, Any], versions: dict[str, str]) -> tuple[Any, ...]:
    """A `deployments` row; its id is a content hash, so registering twice is one deployment."""
    deployment_id = "dep-" + content_hash(summary["candidate_id"], versions.get("index", ""),
                                          versions.get("data", ""), length=12)
    return (deployment_id, summary["candidate_id"], summary.get("prompt_name"),
            summary.get("prompt_version"), summary.get("model"), summary.get("params", "{}"),
            versions.get("index", ""), versions.get("data", ""), to_json(summary), time.time())


def rollback_target(alias: str, moves: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """(current, target) from the alias's (action, deployment_id) moves, oldest first.

    Replay: a promotion pushes, a rollback pops. Repeated rollbacks therefore walk back
    A <- B <- C instead of toggling between the last two.
    """
    stack: list[str] = []
    for action, deployment_id in moves:
        if action == "promote":
            stack.append(deployment_id)
        elif stack:
            stack.pop()
    if len(stack) < 2:
        raise LlmopsError(f"alias {alias!r} has no previous deployment to roll back to")
    return stack[-1], stack[-2]


def history_item(row: dict[str, Any]) -> dict[str, Any]:
    item = dict(row)
    item["metrics"] = json.loads(item["metrics"]) if item["metrics"] else None
    return item


class RegistryApi(ABC):
    """What callers use of a registry, whichever database it lives in (registry.py, registry_pg.py)."""

    read_only: bool

    def promote(self, summary: dict[str, Any], versions: dict[str, str], *, reason: str,
                alias: str = "champion", actor: str | None = None,
                rows: list[dict[str, Any]] | None = None,
                metrics: dict[str, Any] | None = None) -> str:
        """Register the candidate and move the alias to it, atomically, with its evidence."""
        deployment_id, moved = self.promote_once(summary, versions, reason=reason, alias=alias,
                                                 actor=actor, rows=rows, metrics=metrics)
        if not moved:
            raise LlmopsError(f"{summary['candidate_id']} ({deployment_id}) already is "
                              f"the {alias}")
        return deployment_id

    @abstractmethod
    def promote_once(self, summary: dict[str, Any], versions: dict[str, str], *, reason: str,
                     alias: str = "champion", actor: str | None = None,
                     rows: list[dict[str, Any]] | None = None,
                     metrics: dict[str, Any] | None = None) -> tuple[str, bool]:
        """As promote, but an alias already on this deployment is left alone: (id, moved)."""

    @abstractmethod
    def record(self, action: str, summary: dict[str, Any] | None, versions: dict[str, str], *,
               reason: str, actor: str | None = None,
               metrics: dict[str, Any] | None = None) -> None:
        """Log a decision that moved no alias (a rejected candidate), with its evidence."""

    @abstractmethod
    def rollback(self, alias: str = "champion", *, reason: str = "rollback",
                 actor: str | None = None) -> str:
        """Point the alias at the champion before the current one, walking back through history."""

    @abstractmethod
    def get(self, alias: str = "champion") -> Deployment | None:
        """The deployment an alias points at, or None."""

    @abstractmethod
    def find(self, key: str) -> Deployment | None:
        """A deployment by id or candidate id (the newest one registered for that candidate)."""

    @abstractmethod
    def rows(self, deployment_id: str) -> list[dict[str, Any]] | None:
        """The per-question evaluation rows kept with a deployment, if any."""

    @abstractmethod
    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` events first; metrics decoded from JSON."""
