"""Leak-free splits: a hash of the group (the source document) picks the split, for every row alike."""

from __future__ import annotations

from llmops_pipelines.hashing import content_hash

SPLITS = (("train", 0.5), ("eval", 0.8), ("test", 1.0))
# Questions without a reference answer can be neither trained on nor scored for quality.
UNLABELED = "unlabeled"
SPLIT_NAMES = (*(name for name, _ in SPLITS), UNLABELED)


def assign_split(group: str, seed: int = 0) -> str:
    """A split from a hash of the group, so adding rows never moves existing ones."""
    bucket = int(content_hash(f"{seed}:{group}", length=8), 16) / 0xFFFFFFFF
    return next(name for name, upper in SPLITS if bucket <= upper)


def qa_split(doc_id: str | None, qa_id: str, labeled: bool, doc_splits: dict[str, str],
             seed: int = 0) -> str:
    """The row's document's split; a row without a document is its own group; no answer: unlabeled."""
    if not labeled:
        return UNLABELED
    return doc_splits[doc_id] if doc_id else assign_split(qa_id, seed)
