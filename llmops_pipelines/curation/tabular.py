"""Records (CSV rows, JSON objects) to Q&A or document drafts, by field names or datasets.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.curation import pii
from llmops_pipelines.curation.hazards import formula_cell
from llmops_pipelines.curation.layout import FileRule
from llmops_pipelines.curation.records import Collector, DocDraft, QaDraft

QUESTION_FIELDS = ("question",)
ANSWER_FIELDS = ("ground_truth", "answer", "reference", "expected_answer", "expected")
SOURCE_FIELDS = ("source", "doc_id", "document_id", "source_doc", "doc")
QA_ID_FIELDS = ("id", "qa_id")
# The first of these with a non-empty value is a document's text / title / id.
TEXT_FIELDS = ("text", "content", "body", "document", "passage", "article", "description",
               "abstract", "summary")
TITLE_FIELDS = ("title", "name", "subject", "heading")
DOC_ID_FIELDS = ("id", "doc_id", "uid", "key", "slug", "sku")


def _key(record: dict[str, Any], names: tuple[str, ...], explicit: str | None) -> str | None:
    """The record's field for a role: the configured name, else the first known name (any case)."""
    lowered = {str(k).lower(): k for k in record}
    for name in (explicit,) if explicit else names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _tags(value: Any) -> str:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return ",".join(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))


def _formula_flags(record: dict[str, Any], fmt: str) -> list[str]:
    # Kept and flagged: the cell is data here, a formula only once a spreadsheet opens an export.
    return ["csv_formula"] if fmt == "csv" and any(map(formula_cell, record.values())) else []


def _qa(line: int, record: dict[str, Any], rel: str, fmt: str, rule: FileRule,
        c: Collector) -> None:
    c.unit("qa")
    q_key = _key(record, QUESTION_FIELDS, rule.question)
    if q_key is None or not str(record.get(q_key) or "").strip():
        c.reject(rel, line, "missing_field", f"field '{rule.question or 'question'}' is missing or "
                 "empty", json.dumps(record, ensure_ascii=False, default=str))
        return
    a_key = _key(record, ANSWER_FIELDS, rule.answer)
    s_key = _key(record, SOURCE_FIELDS, rule.source)
    id_key = _key(record, QA_ID_FIELDS, rule.id)
    tags_key = _key(record, ("tags",), None)
    used = {q_key, a_key, s_key, id_key, tags_key}
    answer = record.get(a_key) if a_key else None
    flags = _formula_flags(record, fmt)
    meta = pii.scrub_record({k: v for k, v in record.items() if k not in used and _present(v)}, c.pii)
    c.qa.append(QaDraft(
        question=str(record[q_key]), ground_truth=str(answer) if _present(answer) else None,
        source=str(record[s_key]) if s_key and _present(record[s_key]) else None,
        source_path=rel, line=line, qa_id=str(record[id_key]) if id_key and _present(record[id_key])
        else None, tags=_tags(record.get(tags_key) if tags_key else None), meta=meta, flags=flags))


def _field_line(name: str, value: Any) -> str:
    if isinstance(value, dict | list):
        block = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=10**6).rstrip()
        return f"{name}:\n" + "\n".join(f"  {line}" for line in block.split("\n"))
    return f"{name}: {value}"


def render_record(record: dict[str, Any], title_key: str | None, text_key: str | None) -> str:
    """Title heading, the other fields as `name: value` lines, then the text field as the body."""
    parts = []
    if title_key and _present(record.get(title_key)):
        parts.append(f"# {record[title_key]}")
    fields = [_field_line(str(k), v) for k, v in record.items()
              if k not in (title_key, text_key) and _present(v)]
    if fields:
        parts.append("\n".join(fields))
    if text_key and _present(record.get(text_key)):
        parts.append(str(record[text_key]))
    return "\n\n".join(parts)


def _document(line: int, index: int, record: dict[str, Any], rel: str, fmt: str, rule: FileRule,
              c: Collector, single: bool) -> None:
    c.unit("document")
    text_key = _key(record, TEXT_FIELDS, rule.text)
    if rule.text and text_key is None:
        c.reject(rel, line, "missing_field", f"field '{rule.text}' (datasets.yaml `text`) is missing",
                 json.dumps(record, ensure_ascii=False, default=str))
        return
    flags = _formula_flags(record, fmt)
    # Personal fields go before rendering, so a name never reaches the text, the title or an id.
    before = sum(c.pii.values())
    record = pii.scrub_record(record, c.pii)
    title_key = _key(record, TITLE_FIELDS, rule.title)
    id_key = _key(record, DOC_ID_FIELDS, rule.id)
    key = None if single else str(record[id_key]) if id_key and _present(record[id_key]) else str(index)
    title = str(record[title_key]) if title_key and _present(record[title_key]) else \
        Path(rel).stem + (f" {key}" if key else "")
    c.docs.append(DocDraft(title=title, text=render_record(record, title_key, text_key),
                           source_path=rel, line=line, format=fmt, key=key,
                           tags=_tags(record.get(_key(record, ("tags",), None) or "")),
                           pii_hits=sum(c.pii.values()) - before, flags=flags))


def route_records(records: list[tuple[int, Any]], rel: str, fmt: str, rule: FileRule,
                  c: Collector, *, single: bool = False) -> None:
    """A file whose records carry a question field (or kind: qa) is Q&A; otherwise documents."""
    objects = [r for _, r in records if isinstance(r, dict)]
    is_qa = rule.kind == "qa" or (rule.kind is None and any(
        _key(r, QUESTION_FIELDS, rule.question) for r in objects))
    for index, (line, record) in enumerate(records, start=1):
        if not isinstance(record, dict):
            c.unit("qa" if is_qa else "document")
            c.reject(rel, line, "invalid_json" if fmt != "csv" else "malformed_csv",
                     f"a record must be a JSON object, found {type(record).__name__}",
                     json.dumps(record, default=str))
        elif is_qa:
            _qa(line, record, rel, fmt, rule, c)
        else:
            _document(line, index, record, rel, fmt, rule, c, single)
