"""FAQ mining: question/answer pairs from a document's FAQ section, each with its file line.

A FAQ section is a heading such as `## FAQ`, `## Frequently asked questions` or `## Q&A`; it ends at
the next heading of the same or a higher level. Inside it a question is a numbered line (`1.`,
`1)`), a `Q:` line or a deeper sub-heading, containing a question mark; the answer is every
following line up to the next question.
"""

from __future__ import annotations

import re

from llmops_pipelines.curation.records import QaDraft

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FAQ_TITLE = re.compile(r"^(?:faqs?|frequently asked questions|q\s*&\s*a|questions and answers)\b",
                       re.IGNORECASE)
_BOLD = r"(?:\*\*|__)?"
NUMBERED = re.compile(rf"^\s{{0,3}}{_BOLD}\d{{1,3}}[.)]\s+{_BOLD}\s*(?P<q>.+?){_BOLD}\s*$")
Q_LINE = re.compile(
    rf"^\s{{0,3}}(?:[-*]\s+)?{_BOLD}(?:Q|Question)\s*\d*\s*[:.)]{_BOLD}\s*(?P<q>.+?)\s*$", re.IGNORECASE)
A_PREFIX = re.compile(rf"^{_BOLD}(?:A|Answer)\s*[:.)]{_BOLD}\s*", re.IGNORECASE)
# Question marks of scripts that have their own (full-width, Arabic).
QUESTION_MARK = re.compile(r"[?\uff1f\u061f]")


def _faq_sections(lines: list[str]) -> list[tuple[int, int, int]]:
    """(first line index, end index, heading level) of every FAQ section."""
    sections = []
    for i, line in enumerate(lines):
        match = HEADING.match(line)
        if not match or not FAQ_TITLE.match(match.group(2)):
            continue
        level = len(match.group(1))
        end = next((j for j in range(i + 1, len(lines))
                    if (h := HEADING.match(lines[j])) and len(h.group(1)) <= level), len(lines))
        sections.append((i + 1, end, level))
    return sections


def _question(line: str, level: int) -> tuple[str, str] | None:
    """(question, start of its answer on the same line) if the line opens a FAQ item."""
    heading = HEADING.match(line)
    if heading:
        text = heading.group(2) if len(heading.group(1)) > level else ""
    else:
        match = NUMBERED.match(line) or Q_LINE.match(line)
        text = match.group("q") if match else ""
    mark = QUESTION_MARK.search(text)
    if not mark:
        return None
    # What follows the mark on the same line starts the answer, minus a closing bold marker.
    return text[:mark.end()].strip(" *_"), text[mark.end():].strip(" *_\t")


def mine(text: str, source_path: str) -> list[QaDraft]:
    """Every FAQ item of a document; an item with no answer keeps ground_truth None (rejected later)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    pairs: list[QaDraft] = []
    for start, end, level in _faq_sections(lines):
        current: tuple[int, str, list[str]] | None = None
        for i in range(start, end):
            opened = _question(lines[i], level)
            if opened is None:
                if current is not None and lines[i].strip():
                    current[2].append(A_PREFIX.sub("", lines[i].strip()))
                continue
            if current is not None:
                pairs.append(_pair(current, source_path))
            current = (i + 1, opened[0], [opened[1]] if opened[1] else [])
        if current is not None:
            pairs.append(_pair(current, source_path))
    return pairs


def _pair(item: tuple[int, str, list[str]], source_path: str) -> QaDraft:
    line, question, answer_lines = item
    answer = " ".join(part for part in answer_lines if part).strip()
    return QaDraft(question=question, ground_truth=answer or None, source=None,
                   source_path=source_path, line=line, origin="faq", tags="faq")
