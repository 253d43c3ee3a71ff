"""The application under test and in production: retrieve top-k, render the prompt, chat.

Evaluation and serving call these same functions, so what is scored is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Message, Provider
from llmops_pipelines.vectorstore import ChromaIndex, Retrieved


@dataclass(frozen=True)
class RagAnswer:
    answer: str
    contexts: list[Retrieved]
    messages: list[Message]


def retrieve(provider: Provider, index: ChromaIndex, questions: Sequence[str],
             k: int) -> list[list[Retrieved]]:
    """Top-k chunks per question, embedding all questions in one batch."""
    return index.query(provider.embed(list(questions)), k) if questions else []


def render(prompt: Prompt, question: str, contexts: Sequence[Retrieved]) -> list[Message]:
    """The prompt's messages for a question and its retrieved chunks."""
    return prompt.render(question=question,
                         context=[{"doc_id": c.doc_id, "text": c.text} for c in contexts])


def chat_params(prompt: Prompt, defaults: dict[str, Any]) -> dict[str, Any]:
    """Temperature and max_tokens: the prompt file's parameters override the run defaults."""
    params = {"temperature": 0.0, **defaults}
    for key in ("temperature", "max_tokens"):
        if key in prompt.parameters:
            params[key] = prompt.parameters[key]
    return params
