"""Pure RAG logic: markdown-aware chunking, content-addressed ids, sync plans, retrieval metrics."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from llmops_pipelines.hashing import content_hash, hash_of_ids
from llmops_pipelines.schemas import RAG_CHUNKS, conform

SECTION = re.compile(r"^(#{1,6})\s+(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class ChunkConfig:
    """Chunker settings; part of every chunk id, so a change re-chunks everything."""

    max_tokens: int = 160
    overlap_paragraphs: int = 0

    def key(self) -> str:
        return f"md-v1:{self.max_tokens}:{self.overlap_paragraphs}"


def approx_tokens(text: str) -> int:
    """~4 characters a token: the fallback when no tokenizer is given."""
    return max(1, len(text) // 4)


def _sections(text: str) -> Iterable[tuple[str, str]]:
    """(heading path, body) per markdown section; text before any heading has path ''."""
    path: list[tuple[int, str]] = []
    marks = list(SECTION.finditer(text))
    if not marks or marks[0].start() > 0:
        yield "", text[: marks[0].start() if marks else len(text)]
    for i, mark in enumerate(marks):
        level, title = len(mark.group(1)), mark.group(2).strip()
        path = [p for p in path if p[0] < level] + [(level, title)]
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        yield " > ".join(t for _, t in path), text[mark.end():end]


def _pack(paragraphs: list[str], budget: int, count: Callable[[str], int],
          overlap: int) -> list[str]:
    chunks: list[list[str]] = []
    current: list[str] = []
    for para in paragraphs:
        if current and count("\n\n".join([*current, para])) > budget:
            chunks.append(current)
            current = current[-overlap:] if overlap else []
            # The carried-over overlap must leave room for the new paragraph.
            while current and count("\n\n".join([*current, para])) > budget:
                current = current[1:]
        current.append(para)
    if current:
        chunks.append(current)
    return ["\n\n".join(c) for c in chunks]


def chunk_documents(documents: pd.DataFrame, config: ChunkConfig = ChunkConfig(),
                    count_tokens: Callable[[str], int] = approx_tokens) -> pd.DataFrame:
    """Chunks with their heading path as context; ids hash doc id, text and config."""
    rows = []
    for doc in documents.itertuples(index=False):
        position = 0
        for heading, body in _sections(doc.text):
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
            # The heading path travels in the chunk text: the embedder sees what it is about.
            context = heading or doc.title
            if not context.startswith(doc.title):
                context = f"{doc.title} > {context}"

            # The budget covers the whole chunk text, heading line included.
            def count(piece: str, prefix: str = f"{context}\n") -> int:
                return count_tokens(prefix + piece)

            for piece in _pack(paragraphs, config.max_tokens, count,
                               config.overlap_paragraphs):
                text = f"{context}\n{piece}"
                rows.append({"chunk_id": content_hash(doc.doc_id, text, config.key()),
                             "doc_id": doc.doc_id, "title": doc.title, "heading": heading,
                             "position": position, "text": text})
                position += 1
    frame = pd.DataFrame(rows, columns=RAG_CHUNKS.names)
    # Two identical chunks in one document would collide on id: keep the first.
    return conform(frame.drop_duplicates("chunk_id"), RAG_CHUNKS, name="rag_chunks")


@dataclass(frozen=True)
class SyncPlan:
    """What an index sync must do: only the difference between wanted and present ids."""

    to_add: list[str]
    to_delete: list[str]
    unchanged: int


def plan_sync(wanted: Iterable[str], present: Iterable[str]) -> SyncPlan:
    wanted_set, present_set = set(wanted), set(present)
    return SyncPlan(sorted(wanted_set - present_set), sorted(present_set - wanted_set),
                    len(wanted_set & present_set))


def index_version(chunk_ids: Iterable[str], embedding_model: str) -> str:
    """Same chunks embedded by the same model = same index version."""
    return hash_of_ids(chunk_ids, embedding_model)
