"""Content fingerprints of watched files and folders, and the sensor cursor that remembers them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.hashing import content_hash

_BLOCK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (a touch without an edit changes nothing)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _visible(relative: Path) -> bool:
    # Editors' swap and lock files (.x.swp, .~lock) and .git are not content.
    return not any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def fingerprint(root: Path, entries: Iterable[str] = (), variable: str = "") -> dict[str, str]:
    """Relative posix path -> digest for every visible file under root, or under the named
    entries of root (files or folders; a missing entry is simply not there yet)."""
    if not root.is_dir():
        raise SettingsError(f"{variable or 'watched folder'}={root}: not a directory")
    tops = [root / e for e in entries] or [root]
    files: dict[str, str] = {}
    for top in tops:
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            relative = path.relative_to(root)
            if path.is_file() and _visible(relative):
                files[relative.as_posix()] = file_digest(path)
    return files


@dataclass(frozen=True)
class Snapshot:
    """What a sensor saw on one tick: every file's digest, one hash over all of them, and how
    many changes the sensor has acted on (so a revert to old content is a new change)."""

    files: dict[str, str]
    seq: int = 0

    @property
    def hash(self) -> str:
        return content_hash(sorted(self.files.items()), length=16)

    def changed_since(self, before: Snapshot | None) -> list[str]:
        """Paths added, removed or edited since `before` (all of them when there was none)."""
        old = before.files if before else {}
        keys = set(old) | set(self.files)
        return sorted(k for k in keys if old.get(k) != self.files.get(k))

    def next_of(self, before: Snapshot | None) -> Snapshot:
        """This snapshot as the change after `before`."""
        return Snapshot(self.files, (before.seq if before else 0) + 1)

    @property
    def run_key(self) -> str:
        # Content hash + change number: a re-evaluated tick never launches twice, while
        # editing a file back to an earlier content still launches.
        return f"{self.hash}-{self.seq}"

    def to_cursor(self) -> str:
        return json.dumps({"hash": self.hash, "seq": self.seq, "files": self.files}, sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Snapshot | None:
        """The snapshot a cursor holds; None for a first tick or a cursor of another format."""
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
        except json.JSONDecodeError:
            return None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            return None
        seq = data.get("seq")
        return cls(dict(files), seq if isinstance(seq, int) else 0)
