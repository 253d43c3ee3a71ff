"""Pure RAG logic: markdown-aware chunking, content-addressed ids, sync plans, index versions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmops_pipelines.errors import DataError
from llmops_pipelines.hashing import content_hash, hash_of_ids
from llmops_pipelines.schemas import RAG_CHUNKS, conform

SECTION = re.compile(r"^(#{1,6})\s+(.+)$", re.MULTILINE)
# Finer and finer boundaries for a paragraph over budget: lines (list items, spec rows),
# sentences, words; a single "word" over budget (a URL, a blob) is cut by characters.
SPLIT_LEVELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n"), "\n"),
    (re.compile(r"(?<=[.!?;:])\s+"), " "),
    (re.compile(r"\s+"), " "),
)
CHUNK_METADATA = ("doc_id", "title", "heading", "position", "doc_version")

Count = Callable[[str], int]


@dataclass(frozen=True)
class ChunkConfig:
    """Chunker settings; part of every chunk id, so a change re-chunks everything.

    max_tokens bounds the whole chunk text (heading line included) in the tokens of the
    count function given to chunk_documents: the embedding model's tokenizer when it has one.
    overlap_paragraphs repeats that many trailing units (paragraphs, or pieces of a split
    paragraph) of a chunk at the start of the next one, within the budget.
    """

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


def _hard_split(text: str, budget: int, count: Count) -> list[str]:
    """The longest prefixes within budget, by binary search (token counts grow with length)."""
    pieces = []
    while text:
        low, high = 1, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if count(text[:mid]) <= budget:
                low = mid
            else:
                high = mid - 1
        pieces.append(text[:low].strip() or text[:low])
        text = text[low:].lstrip()
    return pieces


def split_paragraph(text: str, budget: int, count: Count, level: int = 0) -> list[str]:
    """A paragraph as pieces within budget: whole if it fits, else by lines, sentences, words."""
    if count(text) <= budget:
        return [text]
    for depth in range(level, len(SPLIT_LEVELS)):
        pattern, joiner = SPLIT_LEVELS[depth]
        parts = [p.strip() for p in pattern.split(text) if p.strip()]
        if len(parts) < 2:
            continue
        pieces: list[str] = []
        current = ""
        for part in parts:
            joined = f"{current}{joiner}{part}" if current else part
            if count(joined) <= budget:
                current = joined
                continue
            if current:
                pieces.append(current)
            current = ""
            if count(part) <= budget:
                current = part
            else:
                pieces.extend(split_paragraph(part, budget, count, depth + 1))
        if current:
            pieces.append(current)
        return pieces
    return _hard_split(text, budget, count)


def _pack(paragraphs: list[str], budget: int, count: Count, overlap: int) -> list[str]:
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
                    count_tokens: Count = approx_tokens) -> pd.DataFrame:
    """Chunks with their heading path as context; ids hash doc id, text and config."""
    rows = []
    for doc in documents.itertuples(index=False):
        position = 0
        # Which version of its document a chunk came from (curation's hash when there is one).
        doc_version = getattr(doc, "content_hash", None) or content_hash(doc.text)
        for heading, body in _sections(doc.text):
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
            if not paragraphs:
                continue
            # The heading path travels in the chunk text: the embedder sees what it is about.
            context = heading or doc.title
            if not context.startswith(doc.title):
                context = f"{doc.title} > {context}"

            # The budget covers the whole chunk text, heading line included.
            def count(piece: str, prefix: str = f"{context}\n") -> int:
                return count_tokens(prefix + piece)

            if count("x") > config.max_tokens:
                raise DataError(
                    f"document {doc.doc_id!r}: the heading path {context!r} alone fills the "
                    f"{config.max_tokens}-token chunk budget; raise max_tokens "
                    "(LLMOPS_CHUNK_TOKENS) or shorten the headings")
            units = [piece for para in paragraphs
                     for piece in split_paragraph(para, config.max_tokens, count)]
            for piece in _pack(units, config.max_tokens, count, config.overlap_paragraphs):
                text = f"{context}\n{piece}"
                rows.append({"chunk_id": content_hash(doc.doc_id, text, config.key()),
                             "doc_id": doc.doc_id, "title": doc.title, "heading": heading,
                             "position": position, "text": text, "doc_version": doc_version})
                position += 1
    frame = pd.DataFrame(rows, columns=RAG_CHUNKS.names)
    # Two identical chunks in one document would collide on id: keep the first.
    return conform(frame.drop_duplicates("chunk_id"), RAG_CHUNKS, name="rag_chunks")


def chunk_metadata(chunks: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """What the index stores beside each chunk's vector, by chunk id."""
    frame = chunks.set_index("chunk_id")
    return {chunk_id: {"doc_id": r.doc_id, "title": r.title or "", "heading": r.heading or "",
                       "position": int(r.position), "doc_version": r.doc_version or ""}
            for chunk_id, r in zip(frame.index, frame.itertuples(index=False), strict=True)}


@dataclass(frozen=True)
class SyncPlan:
    """What an index sync must do: only the difference between wanted and present ids.

    to_update lists kept chunks whose metadata moved (a new position or document version
    after an edit elsewhere in the document): updated in place, never re-embedded.
    """

    to_add: list[str]
    to_delete: list[str]
    unchanged: int
    to_update: list[str] = field(default_factory=list)


def plan_sync(wanted: Iterable[str], present: Iterable[str]) -> SyncPlan:
    wanted_set, present_set = set(wanted), set(present)
    return SyncPlan(sorted(wanted_set - present_set), sorted(present_set - wanted_set),
                    len(wanted_set & present_set))


def metadata_updates(wanted: Mapping[str, Mapping[str, Any]],
                     present: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Ids in both whose stored metadata differs from the wanted metadata."""
    return sorted(i for i in wanted.keys() & present.keys()
                  if dict(present[i] or {}) != dict(wanted[i]))


def index_version(chunk_ids: Iterable[str], embedding_model: str) -> str:
    """Same chunks embedded by the same model = same index version."""
    return hash_of_ids(chunk_ids, embedding_model)
