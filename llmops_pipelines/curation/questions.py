"""The Q&A stage: normalise, length filters, PII scrub, resolve sources, unique ids and questions."""

from __future__ import annotations

import json

import numpy as np

from llmops_pipelines.curation import pii
from llmops_pipelines.curation.dedupe import jaccard, shingles
from llmops_pipelines.curation.layout import DatasetConfig
from llmops_pipelines.curation.normalise import compare_key, normalise, normalise_inline
from llmops_pipelines.curation.records import Collector, QaDraft, reject_qa
from llmops_pipelines.hashing import content_hash, stable_json


def _scrub(row: QaDraft, c: Collector, allow: tuple[str, ...]) -> None:
    before = sum(c.pii.values())
    row.question = pii.scrub(row.question, c.pii, allow)
    if row.ground_truth:
        row.ground_truth = pii.scrub(row.ground_truth, c.pii, allow)
    if row.meta:
        row.meta = json.loads(pii.scrub(stable_json(row.meta), c.pii, allow))
    if sum(c.pii.values()) > before:
        c.hits["pii_scrubbed_questions"] += 1


def _resolve(row: QaDraft, aliases: dict[str, tuple[str, ...]]) -> tuple[str, str] | None:
    """None once row.doc_id is set; else the (rule, reason) to reject the row with."""
    if row.doc_id is not None or row.source is None:
        return None
    ids = aliases.get(row.source) or aliases.get(row.source.strip()) or ()
    if len(ids) == 1:
        row.doc_id = ids[0]
        return None
    if ids:
        return "ambiguous_source", (f"field 'source' names {row.source!r}, which is ambiguous: "
                                    f"{', '.join(ids)}; name one by its id or path")
    return "unknown_source", (f"field 'source' names {row.source!r}, which is no curated "
                              "document (a document id, path, file name or unique stem)")


def clean(rows: list[QaDraft], c: Collector, config: DatasetConfig,
          aliases: dict[str, tuple[str, ...]]) -> list[QaDraft]:
    """Rows that pass every rule, in input order; hand-written rows come first, so they win ties."""
    q = config.quality
    ids: dict[str, str] = {}
    questions: dict[tuple[str | None, str], str] = {}
    per_doc: dict[str, list[tuple[np.ndarray, str]]] = {}
    kept = []
    for row in rows:
        where = f"{row.source_path}:{row.line}"
        row.question = normalise_inline(row.question)
        row.ground_truth = normalise(row.ground_truth) if row.ground_truth else None
        if row.origin in ("faq", "synthetic") and not row.ground_truth:
            # Mined and generated rows exist to carry an answer; the file rows may lack one.
            reason = ("a FAQ question with no answer below it" if row.origin == "faq" else
                      "the model's output holds no 'Q: ... A: ...' pair")
            reject_qa(c, row, f"{row.origin}_no_answer", reason)
            continue
        if len(row.question) < q.min_question_chars:
            reject_qa(c, row, "too_short", f"question has {len(row.question)} chars "
                      f"< {q.min_question_chars}")
            continue
        if len(row.question) > q.max_question_chars:
            reject_qa(c, row, "too_long", f"question has {len(row.question)} chars "
                      f"> {q.max_question_chars}")
            continue
        _scrub(row, c, config.pii_allow)
        unresolved = _resolve(row, aliases)
        if unresolved:
            reject_qa(c, row, *unresolved)
            continue
        row.qa_id = row.qa_id or content_hash(row.source_path, row.question, length=12)
        if row.qa_id in ids:
            reject_qa(c, row, "duplicate_qa_id", f"id {row.qa_id!r} already used at {ids[row.qa_id]}")
            continue
        key = (row.doc_id, compare_key(row.question))
        if key in questions:
            reject_qa(c, row, "duplicate_question", f"same question as {questions[key]}")
            continue
        grams = shingles(key[1])
        similar = next(((w, s) for g, w in per_doc.get(row.doc_id or "", [])
                        if (s := jaccard(grams, g)) >= q.near_duplicate), None)
        if row.doc_id and similar:
            reject_qa(c, row, "near_duplicate_question", f"{similar[1]:.0%} like the question at "
                      f"{similar[0]} about the same document")
            continue
        ids[row.qa_id] = questions[key] = where
        if row.doc_id:
            per_doc.setdefault(row.doc_id, []).append((grams, where))
        kept.append(row)
    return kept
