"""Pure curation: ingest a dataset folder into documents, Q&A pairs and a rejects table."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmops_pipelines.hashing import content_hash
from llmops_pipelines.schemas import CURATED_DOCUMENTS, CURATED_QA, CURATION_REJECTS, conform

DOC_SUFFIXES = {".md", ".markdown", ".txt"}
QA_SUFFIXES = {".jsonl"}
# Files that describe a dataset rather than belong to it.
IGNORED = re.compile(r"^(readme|license|licence|copying|notice)(\.[a-z]+)?$", re.IGNORECASE)
MIN_DOC_CHARS = 40
SPLITS = (("train", 0.5), ("eval", 0.8), ("test", 1.0))
HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


@dataclass
class Curated:
    """What curation produced; ingested == kept + rejected, always."""

    documents: pd.DataFrame
    qa: pd.DataFrame
    rejects: pd.DataFrame
    data_version: str
    rule_hits: dict[str, int] = field(default_factory=dict)


def normalise(text: str) -> str:
    """NFC unicode, unix newlines, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def assign_split(group: str, seed: int = 0) -> str:
    """A split from a hash of the group, so adding rows never moves existing ones."""
    bucket = int(content_hash(f"{seed}:{group}", length=8), 16) / 0xFFFFFFFF
    return next(name for name, upper in SPLITS if bucket <= upper)


class _Collector:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs: list[dict[str, Any]] = []
        self.qa: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def reject(self, path: Path, line: int, rule: str, reason: str, raw: str = "") -> None:
        self.rejects.append({"source_path": self.rel(path), "line": line, "rule": rule,
                             "reason": reason, "raw": raw[:500]})


def _read_text(path: Path, c: _Collector) -> str | None:
    try:
        # A leading byte-order mark (Windows editors) is still UTF-8: drop it, keep the text.
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        c.reject(path, 0, "not_utf8", f"file is not UTF-8 (byte {exc.start}): re-encode it")
        return None
    if not text.strip():
        c.reject(path, 0, "empty_file", "file is empty")
        return None
    return text


def _ingest_document(path: Path, c: _Collector) -> None:
    text = _read_text(path, c)
    if text is None:
        return
    text = normalise(text)
    if len(text) < MIN_DOC_CHARS:
        c.reject(path, 1, "too_short", f"{len(text)} chars < {MIN_DOC_CHARS}", text)
        return
    heading = HEADING.search(text)
    c.docs.append({"doc_id": "",  # assigned once every file is known (_assign_doc_ids)
                   "title": heading.group(1).strip() if heading else path.stem,
                   "text": text, "source_path": c.rel(path)})


def _ingest_qa(path: Path, c: _Collector) -> None:
    text = _read_text(path, c)
    if text is None:
        return
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            c.reject(path, number, "invalid_json", f"not JSON: {exc.msg} at column {exc.colno}", raw)
            continue
        if not isinstance(record, dict):
            c.reject(path, number, "invalid_json", "a line must be a JSON object", raw)
            continue
        question = normalise(str(record.get("question") or ""))
        if not question:
            c.reject(path, number, "missing_field", "field 'question' is missing or empty", raw)
            continue
        answer = record.get("ground_truth", record.get("answer"))
        c.qa.append({
            "qa_id": str(record.get("id") or content_hash(c.rel(path), question, length=12)),
            "question": question,
            "ground_truth": normalise(str(answer)) if answer is not None else None,
            "doc_id": str(record["source"]) if record.get("source") else None,
            "source_path": c.rel(path), "line": number, "origin": "file",
        })


def _dedupe(c: _Collector) -> dict[str, int]:
    hits = {"duplicate_document": 0, "duplicate_qa_id": 0}
    seen_docs: dict[str, str] = {}
    kept_docs = []
    for doc in sorted(c.docs, key=lambda d: d["source_path"]):
        key = content_hash(doc["text"].lower())
        if key in seen_docs:
            hits["duplicate_document"] += 1
            c.rejects.append({"source_path": doc["source_path"], "line": 0,
                              "rule": "duplicate_document",
                              "reason": f"same text as {seen_docs[key]}", "raw": doc["title"]})
            continue
        seen_docs[key] = doc["source_path"]
        kept_docs.append({**doc, "content_hash": key})
    c.docs = kept_docs
    seen_qa: dict[str, str] = {}
    kept_qa = []
    for row in c.qa:
        if row["qa_id"] in seen_qa:
            hits["duplicate_qa_id"] += 1
            c.rejects.append({"source_path": row["source_path"], "line": row["line"],
                              "rule": "duplicate_qa_id",
                              "reason": f"id {row['qa_id']!r} already used at {seen_qa[row['qa_id']]}",
                              "raw": row["question"]})
            continue
        seen_qa[row["qa_id"]] = f"{row['source_path']}:{row['line']}"
        kept_qa.append(row)
    c.qa = kept_qa
    return hits


def _doc_aliases(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Names a Q&A `source` may use for a document: its id, its path, its file name or stem."""
    aliases: dict[str, str] = {}
    stems = [Path(d["source_path"]).stem for d in docs]
    for doc, stem in zip(docs, stems, strict=True):
        path = doc["source_path"]
        names = {doc["doc_id"], path, path.rsplit(".", 1)[0], Path(path).name}
        if stems.count(stem) == 1:  # a stem shared by two files would be ambiguous
            names.add(stem)
        aliases.update(dict.fromkeys(names, doc["doc_id"]))
    return aliases


def _assign_doc_ids(docs: list[dict[str, Any]]) -> None:
    """The file stem when it is unique in the dataset, else the path: short ids people recognise."""
    stems = [Path(d["source_path"]).stem for d in docs]
    for doc, stem in zip(docs, stems, strict=True):
        doc["doc_id"] = stem if stems.count(stem) == 1 else \
            doc["source_path"].rsplit(".", 1)[0].replace("/", "--")


def curate(root: Path, *, seed: int = 0) -> Curated:
    """Ingest every file under root; every file or line ends up curated or in rejects."""
    root = Path(root)
    c = _Collector(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if IGNORED.match(path.name) or path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        if suffix in DOC_SUFFIXES:
            _ingest_document(path, c)
        elif suffix in QA_SUFFIXES:
            _ingest_qa(path, c)
        else:
            c.reject(path, 0, "unsupported_file", f"no reader for '{suffix or path.name}' files")
    hits = _dedupe(c)
    _assign_doc_ids(c.docs)
    aliases = _doc_aliases(c.docs)
    kept_qa = []
    for row in c.qa:
        source = row["doc_id"]
        if source and source not in aliases:
            c.reject(root / row["source_path"], row["line"], "unknown_source",
                     f"field 'source' names {source!r}, which is no curated document",
                     row["question"])
            continue
        doc_id = aliases[source] if source else None
        # Split by source document so no document's facts leak across splits.
        kept_qa.append({**row, "doc_id": doc_id, "split": assign_split(doc_id or row["qa_id"], seed)})
    c.qa = kept_qa
    docs = pd.DataFrame(c.docs, columns=[*CURATED_DOCUMENTS.names])
    docs["split"] = [assign_split(d, seed) for d in docs["doc_id"]]
    docs["n_chars"] = docs["text"].str.len()
    qa = pd.DataFrame(c.qa, columns=[*CURATED_QA.names])
    rejects = pd.DataFrame(c.rejects, columns=CURATION_REJECTS.names)
    hits = {**hits, **rejects["rule"].value_counts().to_dict()}
    documents = conform(docs, CURATED_DOCUMENTS, name="curated_documents")
    qa_frame = conform(qa, CURATED_QA, name="curated_qa")
    return Curated(documents, qa_frame, conform(rejects, CURATION_REJECTS, name="curation_rejects"),
                   data_version(documents, qa_frame), hits)


def data_version(documents: pd.DataFrame, qa: pd.DataFrame) -> str:
    """A hash of the curated content; file positions (line numbers) do not count."""
    return content_hash(documents[["doc_id", "content_hash", "split"]].to_dict("records"),
                        qa.drop(columns=["line"]).to_dict("records"), length=12)
