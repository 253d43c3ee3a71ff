"""curate(): a dataset folder to curated documents, Q&A pairs and rejects, stage by stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmops_pipelines.curation import documents, hazards, questions
from llmops_pipelines.curation.layout import discover, load_config
from llmops_pipelines.curation.pii import PII_KINDS, scrub
from llmops_pipelines.curation.readers import read_file
from llmops_pipelines.curation.records import RULES, Collector, DocDraft, QaDraft
from llmops_pipelines.curation.splits import assign_split, qa_split
from llmops_pipelines.errors import DataError
from llmops_pipelines.hashing import content_hash, stable_json
from llmops_pipelines.schemas import CURATED_DOCUMENTS, CURATED_QA, CURATION_REJECTS, conform

# Given the kept documents (split assigned), more Q&A drafts: how synthetic Q&A joins curation.
Synthesizer = Callable[[list[DocDraft]], list[QaDraft]]


@dataclass
class Curated:
    """What curation produced; ingested == documents + Q&A + rejects, always (see `accounting`)."""

    documents: pd.DataFrame
    qa: pd.DataFrame
    rejects: pd.DataFrame
    data_version: str
    rule_hits: dict[str, int] = field(default_factory=dict)
    pii_counts: dict[str, int] = field(default_factory=dict)
    accounting: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[stage] = round(seconds.get(stage, 0.0) + time.perf_counter() - started, 4)


def curate(root: Path, *, seed: int | None = None, synthesize: Synthesizer | None = None) -> Curated:
    """Ingest every file under root; every file, row or mined pair ends up curated or in rejects."""
    root = Path(root)
    if not root.is_dir():
        # A typo in LLMOPS_DATASETS_DIR must stop the run, not curate an empty dataset that
        # the index would then sync down to nothing.
        state = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"the datasets folder {root} {state}: set LLMOPS_DATASETS_DIR to the "
                        "folder holding your documents and Q&A files")
    config = load_config(root)
    seed = config.seed if seed is None else seed
    c, seconds = Collector(), dict[str, float]()
    with _timed(seconds, "read"):
        data, skipped, refused = discover(root, config)
        for rel, why in skipped:
            c.skip(rel, why)
        for rel, rule, reason in refused:
            c.unit("file")
            c.reject(rel, 0, rule, reason)
        for path, rel in data:
            read_file(path, rel, config, c)
    with _timed(seconds, "clean"):
        docs = documents.clean(c, config)
    with _timed(seconds, "dedupe"):
        docs, duplicates = documents.dedupe(docs, c, config.quality.near_duplicate)
        docs, aliases = documents.assign_ids(docs, c, duplicates)
    doc_splits = {d.doc_id: assign_split(d.doc_id, seed) for d in docs}
    # FAQ pairs were mined while reading (file lines are known there); only kept documents' count.
    for doc in docs:
        for pair in doc.faq:
            c.unit("qa")
            pair.doc_id = doc.doc_id
            c.qa.append(pair)
    if synthesize is not None:
        with _timed(seconds, "synthesize"):
            extra = synthesize([d for d in docs if doc_splits[d.doc_id] != "test"])
            c.ingested["qa"] += len(extra)
            c.qa.extend(extra)
    with _timed(seconds, "questions"):
        kept_qa = questions.clean(c.qa, c, config, aliases)
    c.hits.update(hazards.flag_rows(docs, kept_qa))
    return _frames(docs, kept_qa, c, doc_splits, seed, seconds)


def _frames(docs: list[DocDraft], qa: list[QaDraft], c: Collector, doc_splits: dict[str, str],
            seed: int, seconds: dict[str, float]) -> Curated:
    doc_rows = [{"doc_id": d.doc_id, "title": d.title, "text": d.text, "source_path": d.source_path,
                 "split": doc_splits[d.doc_id], "n_chars": len(d.text), "content_hash": d.content_hash,
                 "line": d.line, "format": d.format, "tags": d.tags,
                 "flags": ",".join(d.flags)} for d in docs]
    qa_rows = [{"qa_id": r.qa_id, "question": r.question, "ground_truth": r.ground_truth,
                "doc_id": r.doc_id, "source_path": r.source_path, "line": r.line, "origin": r.origin,
                "split": qa_split(r.doc_id, r.qa_id or "", r.ground_truth is not None, doc_splits, seed),
                "tags": r.tags, "meta": stable_json(r.meta), "flags": ",".join(r.flags)} for r in qa]
    # A rejected line may hold the very PII curation removes elsewhere.
    reject_rows = [{**r, "raw": scrub(r["raw"], c.pii)} for r in c.rejects]
    frames = (
        conform(pd.DataFrame(doc_rows, columns=CURATED_DOCUMENTS.names), CURATED_DOCUMENTS,
                name="curated_documents"),
        conform(pd.DataFrame(qa_rows, columns=CURATED_QA.names), CURATED_QA, name="curated_qa"),
        conform(pd.DataFrame(reject_rows, columns=CURATION_REJECTS.names), CURATION_REJECTS,
                name="curation_rejects"),
    )
    ingested = sum(c.ingested.values())
    kept = len(docs) + len(qa) + len(c.rejects)
    accounting = {"ingested": ingested, "documents": len(docs), "qa": len(qa),
                  "rejected": len(c.rejects), "unaccounted": ingested - kept}
    return Curated(*frames, data_version=data_version(frames[0], frames[1]),
                   rule_hits={**dict.fromkeys(RULES, 0), **c.hits},
                   pii_counts={kind: c.pii[kind] for kind in PII_KINDS},
                   accounting=accounting, skipped=c.skipped, stage_seconds=seconds)


def data_version(documents: pd.DataFrame, qa: pd.DataFrame) -> str:
    """A hash of the curated content; file positions (line numbers) do not count."""
    qa_content: list[dict[str, Any]] = qa.drop(columns=["line"]).to_dict("records")
    return content_hash(documents[["doc_id", "content_hash", "split"]].to_dict("records"),
                        qa_content, length=12)
