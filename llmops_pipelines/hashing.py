"""Content-addressed ids: the same content always gets the same short id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def stable_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*parts: Any, length: int = 16) -> str:
    """A short sha256 hex digest of the parts (strings as-is, anything else as stable JSON)."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else stable_json(part)
        digest.update(text.encode("utf-8"))
        # A separator keeps ("ab", "c") and ("a", "bc") apart.
        digest.update(b"\x1f")
    return digest.hexdigest()[:length]


def hash_of_ids(ids: Iterable[str], *extra: Any) -> str:
    """A version for a set of ids: order-independent."""
    return content_hash(sorted(ids), *extra)
