"""Supported sources for the planted-error benchmark: context sentences and ground truths.

A document becomes chunks at its `##` headings (labelled `doc#n`, as the groundedness reason
names them); every plain sentence of a chunk is a supported source with the whole document as
its context, and every Q&A ground truth is one with its source document as context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.metrics.text import sentences

_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
_MARKUP = re.compile(r"\*\*|__|`")


@dataclass(frozen=True)
class Source:
    """One statement the context supports, with that context and (for ground truths) the question."""

    source_id: str
    text: str
    origin: str  # "context" (copied from a chunk) or "ground_truth"
    doc_id: str
    contexts: tuple[tuple[str, str], ...]  # (doc_id, chunk text) in document order
    question: str | None = None


def chunks(text: str) -> list[str]:
    """A Markdown document cut at its headings; the heading stays with its section."""
    starts = [m.start() for m in _HEADING.finditer(text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    parts = [text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    return [p for p in parts if len(p.split()) >= 4]


def _claims(chunk: str) -> list[str]:
    # Statements only: no headings, table rows, questions or label-only fragments.
    out = []
    for line in chunk.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "|")):
            continue
        for sentence in sentences(_MARKUP.sub("", line)):
            if sentence.endswith("?") or len(sentence.split()) < 5 or sentence.endswith(":"):
                continue
            out.append(sentence)
    return out


def document_sources(docs: Mapping[str, str]) -> list[Source]:
    """Every statement of every document, each with its document's chunks as the context."""
    out = []
    for doc_id, text in sorted(docs.items()):
        parts = chunks(text)
        contexts = tuple((doc_id, c) for c in parts)
        for n, chunk in enumerate(parts, start=1):
            for i, claim in enumerate(_claims(chunk)):
                out.append(Source(f"{doc_id}#{n}.{i}", claim, "context", doc_id, contexts))
    return out


def qa_sources(pairs: Iterable[Mapping[str, str]], docs: Mapping[str, str]) -> list[Source]:
    """Ground truths with their source document's chunks; a pair naming no known document is skipped."""
    out = []
    for pair in pairs:
        doc_id, truth = pair.get("source", ""), (pair.get("ground_truth") or "").strip()
        if doc_id not in docs or not truth:
            continue
        contexts = tuple((doc_id, c) for c in chunks(docs[doc_id]))
        out.append(Source(f"qa:{pair.get('id')}", truth, "ground_truth", doc_id, contexts,
                          pair.get("question")))
    return out


def read_docs(folder: Path) -> dict[str, str]:
    """`<doc-id>.md` files of a folder, by file stem."""
    files = sorted(Path(folder).glob("*.md"))
    if not files:
        raise DataError("no Markdown documents found", path=str(folder))
    return {p.stem: p.read_text(encoding="utf-8") for p in files}


def read_qa(path: Path) -> list[dict[str, str]]:
    """qa.jsonl rows; a line that is not a JSON object is an error naming the line."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc}", path=str(path), line=n) from exc
        if not isinstance(row, dict):
            raise DataError("expected a JSON object", path=str(path), line=n)
        rows.append(row)
    return rows


def project_sources(datasets_dir: Path) -> list[Source]:
    """The project's own benchmark sources: datasets/docs/*.md and datasets/qa.jsonl."""
    docs = read_docs(Path(datasets_dir) / "docs")
    qa = Path(datasets_dir) / "qa.jsonl"
    return [*document_sources(docs), *(qa_sources(read_qa(qa), docs) if qa.exists() else [])]
