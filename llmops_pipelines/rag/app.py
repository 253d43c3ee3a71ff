"""The application under test and in production: retrieve top-k, render the prompt, chat.

Evaluation and serving call these same functions, so what is scored is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Message, Provider
from llmops_pipelines.rag.retrieval import MODES, BM25Index, Retrieved, hybrid, lexical_search

if TYPE_CHECKING:  # only a type here: rendering a prompt (fine-tune data) needs no chromadb
    from llmops_pipelines.rag.vectorstore import ChromaIndex

# How deep each retriever looks before hybrid fusion picks the top k.
HYBRID_DEPTH = 20


def retrieve(provider: Provider, index: ChromaIndex, questions: Sequence[str], k: int, *,
             mode: str, lexical: BM25Index | None = None) -> list[list[Retrieved]]:
    """Top-k chunks per question by vector, BM25 or hybrid search (the run's LLMOPS_RETRIEVAL).

    Questions are embedded in one batch; BM25 runs over `lexical`, or over the collection's own
    chunks when none is given.
    """
    if not questions:
        return []
    if mode not in MODES:
        raise ValueError(f"retrieval mode {mode!r}: expected one of {MODES}")
    if mode == "bm25":
        return lexical_search(lexical or index.lexical(), questions, k)
    depth = k if mode == "vector" else max(k, HYBRID_DEPTH)
    dense = index.query(provider.embed(list(questions)), depth)
    if mode == "vector":
        return dense
    return hybrid(dense, lexical_search(lexical or index.lexical(), questions, depth), k)


def retrieve_all_modes(provider: Provider, index: ChromaIndex, questions: Sequence[str], k: int,
                       lexical: BM25Index) -> dict[str, list[list[Retrieved]]]:
    """Top-k per question for every mode, embedding the questions once (retrieval evaluation)."""
    if not questions:
        return {mode: [] for mode in MODES}
    dense = index.query(provider.embed(list(questions)), max(k, HYBRID_DEPTH))
    sparse = lexical_search(lexical, questions, max(k, HYBRID_DEPTH))
    return {"vector": [hits[:k] for hits in dense], "bm25": [hits[:k] for hits in sparse],
            "hybrid": hybrid(dense, sparse, k)}


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
