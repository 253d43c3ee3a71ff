"""Rows on their way through curation, and the collector that makes every input unit accountable."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REJECT_RAW_CHARS = 500
# Every rule, so the metadata shows the ones that hit nothing too. pii_* rules change rows
# (count = rows scrubbed); FLAGS keep rows and name themselves in the row's `flags` (count =
# rows flagged); the others reject them.
FLAGS = ("csv_formula", "prompt_injection")
RULES = ("not_utf8", "empty_file", "unsupported_file", "invalid_json", "malformed_csv",
         "missing_field", "too_short", "too_long", "too_large", "too_deep", "symlink_outside",
         "broken_symlink", "duplicate_document", "near_duplicate_document",
         "duplicate_id", "faq_no_answer", "synthetic_no_answer", "unknown_source",
         "ambiguous_source", "duplicate_qa_id", "duplicate_question", "near_duplicate_question",
         "pii_scrubbed_documents", "pii_scrubbed_questions", *FLAGS)


@dataclass
class QaDraft:
    """One question as read (from a file, a FAQ section or a model), before checks and splits."""

    question: str
    ground_truth: str | None
    source: str | None  # what the row says its document is: an id, a path or a file stem
    source_path: str
    line: int
    origin: str = "file"  # file | faq | synthetic
    qa_id: str | None = None
    tags: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    doc_id: str | None = None
    flags: list[str] = field(default_factory=list)  # FLAGS rules the row hit (kept, flagged)


@dataclass
class DocDraft:
    """One document as read: a whole text file, a CSV row or a JSON object."""

    title: str
    text: str
    source_path: str
    line: int  # 0 for a whole file, else the row's or object's first line
    format: str  # markdown | text | csv | json | jsonl
    key: str | None = None  # the record's id within a multi-document file
    tags: str = ""
    faq: list[QaDraft] = field(default_factory=list)
    pii_hits: int = 0  # personal fields replaced while reading the record
    doc_id: str = ""
    content_hash: str = ""
    duplicate_of: DocDraft | None = None  # the kept document this rejected one repeats
    flags: list[str] = field(default_factory=list)  # FLAGS rules the row hit (kept, flagged)


@dataclass
class Collector:
    """Every input unit (file, row, line, mined pair) ends as exactly one kept row or one reject."""

    docs: list[DocDraft] = field(default_factory=list)
    qa: list[QaDraft] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ingested: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)  # replacements per PII kind

    def unit(self, kind: str) -> None:
        """Count one unit entering curation (kind: document or qa)."""
        self.ingested[kind] += 1

    def reject(self, source_path: str, line: int, rule: str, reason: str, raw: str = "") -> None:
        """Record why a unit was not kept; the rule's hit counter goes up with it."""
        self.hits[rule] += 1
        self.rejects.append({"source_path": source_path, "line": line, "rule": rule,
                             "reason": reason, "raw": raw[:REJECT_RAW_CHARS]})

    def skip(self, source_path: str, reason: str) -> None:
        """A file that is not data (README, prompts, datasets.yaml): listed, never ingested."""
        self.skipped.append({"source_path": source_path, "reason": reason})


def reject_doc(c: Collector, doc: DocDraft, rule: str, reason: str) -> None:
    """Reject a document draft at its own file and line."""
    c.reject(doc.source_path, doc.line, rule, reason, doc.text or doc.title)


def reject_qa(c: Collector, row: QaDraft, rule: str, reason: str) -> None:
    """Reject a Q&A draft at its own file and line."""
    c.reject(row.source_path, row.line, rule, reason, row.question)
