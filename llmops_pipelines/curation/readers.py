"""File readers: bytes to document and Q&A drafts; a file that cannot be read becomes a reject."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from llmops_pipelines.curation import faq
from llmops_pipelines.curation.hazards import too_deep
from llmops_pipelines.curation.layout import RECORD_SUFFIXES, TEXT_SUFFIXES, DatasetConfig
from llmops_pipelines.curation.records import Collector, DocDraft
from llmops_pipelines.curation.tabular import route_records

HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


def read_text(path: Path, rel: str, c: Collector, max_bytes: int | None = None) -> str | None:
    """The file as text, or None after a too_large / not_utf8 / empty_file reject."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        c.reject(rel, 1, "too_large", f"file has {size} bytes > {max_bytes} (datasets.yaml "
                 "quality.max_file_bytes): split it or raise the limit")
        return None
    try:
        # A leading byte-order mark (Windows editors) is still UTF-8: drop it, keep the text.
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        c.reject(rel, line, "not_utf8", f"file is not UTF-8 (byte {exc.start}, line {line}): "
                 "re-encode it as UTF-8")
        return None
    if not text.strip():
        c.reject(rel, 0, "empty_file", "file is empty")
        return None
    return text


def read_document_file(path: Path, rel: str, fmt: str, config: DatasetConfig, c: Collector) -> None:
    """A .md/.txt file is one document; its FAQ section, if any, is mined for Q&A pairs."""
    c.unit("document")
    text = read_text(path, rel, c, config.quality.max_file_bytes)
    if text is None:
        return
    heading = HEADING.search(text)
    c.docs.append(DocDraft(
        title=heading.group(1).strip() if heading else path.stem, text=text, source_path=rel,
        line=0, format=fmt, faq=faq.mine(text, rel) if config.faq else []))


def _csv_records(text: str, rel: str, c: Collector) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    records, last_line = [], 0
    while True:
        start = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            last_line = reader.line_num
            c.unit("qa_or_document")
            c.reject(rel, start, "malformed_csv", f"CSV syntax error: {exc}")
            continue
        last_line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines separate nothing in CSV
        if header is None:
            header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(row)]
            if len(set(header)) != len(header):
                c.unit("file")
                c.reject(rel, start, "malformed_csv", f"header repeats a column name: {header}")
                return []
            continue
        if len(row) != len(header):
            c.unit("qa_or_document")
            c.reject(rel, start, "malformed_csv",
                     f"expected {len(header)} fields ({', '.join(header)}), found {len(row)}",
                     ",".join(row))
            continue
        records.append((start, {h: (v.strip() or None) for h, v in zip(header, row, strict=True)}))
    return records


def _deep(rel: str, line: int, limit: int, c: Collector, raw: str = "") -> None:
    c.reject(rel, line, "too_deep", f"JSON nested deeper than {limit} levels (datasets.yaml "
             "quality.max_json_depth)", raw)


def _json_records(text: str, rel: str, c: Collector, limit: int) -> list[tuple[int, Any]] | None:
    deep_at = too_deep(text, limit)
    if deep_at is not None:
        c.unit("file")
        _deep(rel, deep_at, limit, c)
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        c.unit("file")
        c.reject(rel, exc.lineno, "invalid_json", f"not JSON: {exc.msg} at column {exc.colno}")
        return None
    if not isinstance(value, list):
        return [(1, value)]
    # Re-scan the array to learn each element's line: json.loads keeps no positions.
    decoder, items = json.JSONDecoder(), []
    index, line, counted = text.index("[") + 1, 1, 0
    for _ in value:
        while text[index] in " \t\r\n,":
            index += 1
        line += text.count("\n", counted, index)
        counted = index
        item, index = decoder.raw_decode(text, index)
        items.append((line, item))
    return items


def _jsonl_records(text: str, rel: str, c: Collector, limit: int) -> list[tuple[int, Any]]:
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if too_deep(raw, limit) is not None:
            c.unit("qa_or_document")
            _deep(rel, number, limit, c, raw)
            continue
        try:
            records.append((number, json.loads(raw)))
        except json.JSONDecodeError as exc:
            c.unit("qa_or_document")
            c.reject(rel, number, "invalid_json", f"not JSON: {exc.msg} at column {exc.colno}", raw)
    return records


def read_record_file(path: Path, rel: str, fmt: str, config: DatasetConfig, c: Collector) -> None:
    """CSV rows, a JSON object or array, JSON lines: Q&A when records have a question, else documents."""
    text = read_text(path, rel, c, config.quality.max_file_bytes)
    if text is None:
        c.unit("file")
        return
    depth = config.quality.max_json_depth
    records: list[tuple[int, Any]] | None
    if fmt == "csv":
        records = _csv_records(text, rel, c)
    elif fmt == "json":
        records = _json_records(text, rel, c, depth)
        if records is None:
            return
    else:
        records = _jsonl_records(text, rel, c, depth)
    if not records and not any(r["source_path"] == rel for r in c.rejects):
        # A header without rows, `[]`, blank lines: the file must not vanish without a trace.
        c.unit("file")
        c.reject(rel, 1, "empty_file", f"no records in this {fmt.upper()} file (a header or an "
                 "empty array only)", text)
        return
    route_records(records, rel, fmt, config.rule_for(rel), c, single=fmt == "json" and
                  len(records) == 1 and not text.lstrip().startswith("["))


def read_file(path: Path, rel: str, config: DatasetConfig, c: Collector) -> None:
    """Dispatch on the suffix; an unknown suffix is a reject, not a silent skip."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        read_document_file(path, rel, TEXT_SUFFIXES[suffix], config, c)
    elif suffix in RECORD_SUFFIXES:
        read_record_file(path, rel, RECORD_SUFFIXES[suffix], config, c)
    else:
        c.unit("file")
        c.reject(rel, 0, "unsupported_file", f"no reader for '{suffix or path.name}' files "
                 f"(supported: {', '.join(sorted({*TEXT_SUFFIXES, *RECORD_SUFFIXES}))})")
