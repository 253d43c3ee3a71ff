"""Index versions on one Chroma store: a sync builds a whole collection, then flips a pointer.

Why not sync one collection in place: two runs doing that at once (each deleting what it finds
stale, adding what it finds missing) interleave into a mixture of both chunk sets that neither
asked for, and a reader in the middle sees half an edit. Instead:

- every chunk set (ids + their metadata + embedding model) has a collection of its own, named by
  its content hash. Filling it is idempotent: whoever writes an id writes the same text, vector
  and metadata, so two runs building the same version at once simply finish it together;
- once complete (every wanted id present) the model's pointer collection (`chunks-<model>`, no
  records) gets the version's name in its metadata: one metadata write, applied atomically;
- readers resolve the pointer and read one whole version. Of two runs racing with different
  chunk sets, the last flip wins and readers see either version whole, never a mixture;
- old versions go only after a grace period, so a reader that resolved the pointer just before
  a flip finishes (and one that outlives it re-resolves on NotFound).

Vectors of kept chunks are copied from the live version, so a sync still embeds only new text.
"""

from __future__ import annotations

import time
from typing import Any

from llmops_pipelines.hashing import content_hash

LIVE = "live"  # the pointer's metadata key naming the live version's collection
GRACE_S = 3600.0  # a replaced version stays this long for readers that resolved it
ABANDONED_S = 86400.0  # a build not completed in this long died: its collection is removed


def build_id(wanted: dict[str, dict[str, Any]], embedding_model: str) -> str:
    """The content hash of exactly what a version holds (ids, metadata, model)."""
    return content_hash(embedding_model, sorted(wanted.items()))


def version_name(pointer: str, build: str) -> str:
    """`<pointer>-v<hash>` within Chroma's 63-character collection names."""
    return f"{pointer[:48].rstrip('-._')}-v{build[:12]}"


def version_metadata(pointer: str, embedding_model: str, index_version: str, build: str,
                     state: str) -> dict[str, Any]:
    """What a version collection records about itself: whose, which, complete or building."""
    return {"embedding_model": embedding_model, "index_version": index_version, "pointer": pointer,
            "build": build, "state": state, "at": time.time()}


def pointer_metadata(embedding_model: str, index_version: str, live: str) -> dict[str, Any]:
    return {"embedding_model": embedding_model, "index_version": index_version, LIVE: live}


def removable(metadata: dict[str, Any] | None, pointer: str, keep: set[str], name: str,
              now: float) -> bool:
    """A version of this pointer that no reader can still be using and no writer still filling."""
    meta = metadata or {}
    if meta.get("pointer") != pointer or name in keep:
        return False
    age = now - float(meta.get("at") or now)
    return age > (GRACE_S if meta.get("state") == "complete" else ABANDONED_S)
