"""Conversation datasets (JSONL, one conversation a line): validate, reject with file:line, split.

A line: {"conversation_id", "turns": [{"role", "content"}, ...], "expected", "retention",
"expected_doc_id"}; turns alternate user/assistant and end on the user's last question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmops_pipelines.curation.records import REJECT_RAW_CHARS
from llmops_pipelines.curation.splits import assign_split
from llmops_pipelines.errors import DataError
from llmops_pipelines.hashing import content_hash

FILE = "conversations.jsonl"
REQUIRED = ("conversation_id", "turns", "expected")
ROLES = ("user", "assistant")
COLUMNS = ["conversation_id", "split", "turns", "question", "expected", "retention",
           "expected_doc_id", "source_path", "line"]
REJECT_COLUMNS = ["source_path", "line", "rule", "reason", "raw"]


@dataclass
class Curated:
    """The kept conversations, one row each, and one reject per bad line."""

    conversations: pd.DataFrame
    rejects: pd.DataFrame
    data_version: str
    errors: list[str] = field(default_factory=list)  # "file:line: reason", as in rejects


def _problem(obj: Any) -> tuple[str, str] | None:
    """(rule, reason) for a parsed line that is not a conversation, else None."""
    if not isinstance(obj, dict):
        return "invalid_json", f"expected a JSON object, found {type(obj).__name__}"
    for name in REQUIRED:
        if name not in obj or obj[name] in (None, "", []):
            return "missing_field", f"field {name!r} is missing or empty"
    if not isinstance(obj["conversation_id"], str):
        return "wrong_type", "field 'conversation_id' must be a string"
    if not isinstance(obj["expected"], str):
        return "wrong_type", "field 'expected' must be a string"
    turns = obj["turns"]
    if not isinstance(turns, list):
        return "wrong_type", "field 'turns' must be a list of {role, content} objects"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return "wrong_type", f"turns[{i}] must be an object with 'role' and 'content'"
        if turn.get("role") not in ROLES:
            return "wrong_role", f"turns[{i}].role={turn.get('role')!r}: expected one of {ROLES}"
        if not isinstance(turn.get("content"), str) or not turn["content"].strip():
            return "missing_field", f"turns[{i}].content must be non-empty text"
        expected_role = ROLES[i % 2]
        if turn["role"] != expected_role:
            return "wrong_role", (f"turns[{i}].role={turn['role']!r}: expected {expected_role!r} "
                                  "(turns alternate, starting with the user)")
    if turns[-1]["role"] != "user":
        return "last_turn_not_user", (f"turns[{len(turns) - 1}].role='assistant': the last turn "
                                      "must be the user's question to answer")
    retention = obj.get("retention", [])
    if not isinstance(retention, list) or not all(isinstance(r, str) for r in retention):
        return "wrong_type", "field 'retention' must be a list of strings"
    doc = obj.get("expected_doc_id")
    if doc is not None and not isinstance(doc, str):
        return "wrong_type", "field 'expected_doc_id' must be a string"
    return None


def read(path: Path, seed: int = 0) -> Curated:
    """Validate a conversations file; a file that cannot be decoded at all raises DataError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:1: not UTF-8 text ({exc.reason} at byte {exc.start}): save "
                        "the conversations file as UTF-8 JSONL") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read the conversations file: {exc}") from exc
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue

        def reject(rule: str, reason: str, line: int = number, raw: str = raw) -> None:
            rejects.append({"source_path": str(path), "line": line, "rule": rule,
                            "reason": reason, "raw": raw[:REJECT_RAW_CHARS]})
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            reject("invalid_json", f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        problem = _problem(obj)
        if problem:
            reject(*problem)
            continue
        cid = obj["conversation_id"].strip()
        if cid in seen:
            reject("duplicate_conversation_id", f"conversation_id {cid!r} already used at "
                                                f"{path}:{seen[cid]}")
            continue
        seen[cid] = number
        turns = [{"role": t["role"], "content": t["content"].strip()} for t in obj["turns"]]
        rows.append({"conversation_id": cid, "split": assign_split(f"conversation:{cid}", seed),
                     "turns": json.dumps(turns, ensure_ascii=False),
                     "question": turns[-1]["content"], "expected": obj["expected"].strip(),
                     "retention": [r.strip() for r in obj.get("retention", []) if r.strip()],
                     "expected_doc_id": obj.get("expected_doc_id"),
                     "source_path": str(path), "line": number})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    bad = pd.DataFrame(rejects, columns=REJECT_COLUMNS)
    version = content_hash(frame[["conversation_id", "turns", "expected"]].to_dict("records"),
                           length=12)
    return Curated(frame, bad, version,
                   [f"{r['source_path']}:{r['line']}: {r['rule']}: {r['reason']}" for r in rejects])


def curate(folder: Path, seed: int = 0) -> Curated:
    """The dataset folder's conversations.jsonl; none there: an empty set (no rejects)."""
    path = folder / FILE
    if not path.exists():
        return Curated(pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=REJECT_COLUMNS), "none")
    return read(path, seed)


def turns_of(row: Any) -> list[dict[str, str]]:
    """The recorded turns of a curated row (stored as JSON text in the table)."""
    return list(json.loads(row["turns"] if isinstance(row, dict) else row.turns))
