"""Synthetic Q&A (off unless LLMOPS_SYNTHETIC_QA > 0): one question per passage, by the chat model.

Rows are marked origin 'synthetic' and flow through every Q&A rule; curate() only offers
documents outside the test split, so a synthetic row never lands in test.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from llmops_pipelines.curation.pipeline import Synthesizer
from llmops_pipelines.curation.records import DocDraft, QaDraft
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Message

PAIR = re.compile(r"^\s*(?:\*\*)?Q(?:uestion)?\s*[:.)]\s*(?:\*\*)?\s*(?P<q>.+?)\s*\n+"
                  r"\s*(?:\*\*)?A(?:nswer)?\s*[:.)]\s*(?:\*\*)?\s*(?P<a>.+?)\s*$", re.DOTALL)
PASSAGE_CHARS = 1200


def passages(text: str, limit: int, size: int = PASSAGE_CHARS) -> list[str]:
    """Up to `limit` passages of whole paragraphs, each about `size` characters."""
    out, current = [], ""
    for paragraph in text.split("\n\n"):
        if current and len(current) + len(paragraph) > size:
            out.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}".strip()
    if current:
        out.append(current)
    return [p[:size * 2] for p in out[:limit]]


def parse_pair(reply: str) -> tuple[str, str] | None:
    """(question, answer) from a 'Q: ... / A: ...' reply; None when the reply has another shape."""
    match = PAIR.match(reply.strip())
    if not match or "?" not in match.group("q"):
        return None
    return match.group("q").strip(), match.group("a").strip()


def synthesizer(chat: Callable[[list[Message]], str], prompt: Prompt, per_doc: int,
                model: str) -> Synthesizer:
    """A Synthesizer for curate(): per document, one question per passage, up to per_doc."""

    def run(docs: list[DocDraft]) -> list[QaDraft]:
        rows = []
        for doc in docs:
            for i, passage in enumerate(passages(doc.text, per_doc)):
                reply = chat(prompt.render(title=doc.title, passage=passage))
                pair = parse_pair(reply)
                # An unparsable reply still becomes a row: curation rejects it, with the reply.
                question, answer = pair if pair else (reply.strip()[:300] or "(empty reply)", None)
                rows.append(QaDraft(
                    question=question, ground_truth=answer, source=None, doc_id=doc.doc_id,
                    source_path=doc.source_path, line=doc.line, origin="synthetic", tags="synthetic",
                    meta={"model": model, "passage": i, "prompt_version": prompt.version}))
        return rows

    return run
