"""Input that is kept but dangerous downstream, and input too big or too deep to parse safely."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from llmops_pipelines.curation.records import DocDraft, QaDraft
from llmops_pipelines.prompts import injection_hits

# OWASP CSV injection: a cell a spreadsheet would evaluate starts with = + - @ (or a tab or
# carriage return before one). A plain signed number ("-5", "+40") is data, not a formula.
FORMULA_START = re.compile(r"^[\t\r\n ]*[=+\-@\uff1d\uff0b\uff0d\uff20]")
NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?$")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def formula_cell(value: Any) -> bool:
    """True for a cell a spreadsheet would run as a formula (=cmd|..., =HYPERLINK(...), +, -, @)."""
    if not isinstance(value, str) or not FORMULA_START.match(value):
        return False
    return not NUMBER.match(value.strip())


def too_deep(text: str, limit: int) -> int | None:
    """The 1-based line where JSON nesting first goes deeper than limit, else None.

    Counted on the text with its strings blanked, without parsing: json.loads itself recurses
    and dies (RecursionError) on a few thousand levels.
    """
    if text.count("[") + text.count("{") <= limit:
        return None
    bare = _STRINGS.sub(lambda m: " " * len(m.group(0)), text)
    codes = np.frombuffer(bare.encode("utf-32-le"), dtype=np.uint32)
    step = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
    over = np.flatnonzero(np.cumsum(step) > limit)
    if not len(over):
        return None
    return bare.count("\n", 0, int(over[0])) + 1


def flag_rows(docs: list[DocDraft], qa: list[QaDraft]) -> dict[str, int]:
    """Flag prompt-injection text on kept rows; the rows flagged per rule (csv_formula included)."""
    for doc in docs:
        if injection_hits(f"{doc.title}\n{doc.text}") and "prompt_injection" not in doc.flags:
            doc.flags.append("prompt_injection")
    for row in qa:
        if injection_hits(row.question) and "prompt_injection" not in row.flags:
            row.flags.append("prompt_injection")
    rows: list[DocDraft | QaDraft] = [*docs, *qa]
    return {rule: sum(rule in r.flags for r in rows) for rule in ("csv_formula", "prompt_injection")}
