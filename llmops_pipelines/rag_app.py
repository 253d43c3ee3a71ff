"""The application under test and in production: retrieve top-k, render the prompt, chat.

Evaluation and serving call these same functions, so what is scored is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Message, Provider
from llmops_pipelines.retrieval import MODES, BM25Index, reciprocal_rank_fusion
from llmops_pipelines.settings import Settings
from llmops_pipelines.vectorstore import ChromaIndex, Retrieved

# How deep each retriever looks before hybrid fusion picks the top k.
HYBRID_DEPTH = 20


@dataclass(frozen=True)
class RagAnswer:
    answer: str
    contexts: list[Retrieved]
    messages: list[Message]


def retrieve(provider: Provider, index: ChromaIndex, questions: Sequence[str], k: int, *,
             mode: str | None = None, lexical: BM25Index | None = None) -> list[list[Retrieved]]:
    """Top-k chunks per question by vector, BM25 or hybrid search (LLMOPS_RETRIEVAL by default).

    Questions are embedded in one batch; BM25 runs over `lexical`, or over the collection's own
    chunks when none is given.
    """
    if not questions:
        return []
    mode = mode or Settings.from_env().retrieval
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


def lexical_search(lexical: BM25Index, questions: Sequence[str], k: int) -> list[list[Retrieved]]:
    """Top-k chunks per question by BM25 score."""
    return [[Retrieved(lexical.ids[i], lexical.doc_ids[i], lexical.texts[i], score)
             for i, score in lexical.search(q, k)] for q in questions]


def hybrid(dense: Sequence[Sequence[Retrieved]], sparse: Sequence[Sequence[Retrieved]],
           k: int) -> list[list[Retrieved]]:
    """Reciprocal rank fusion of two rankings per question; the score is the fused RRF score."""
    out = []
    for vector_hits, lexical_hits in zip(dense, sparse, strict=True):
        by_id = {r.chunk_id: r for r in [*lexical_hits, *vector_hits]}
        fused = reciprocal_rank_fusion([[r.chunk_id for r in vector_hits],
                                        [r.chunk_id for r in lexical_hits]], k)
        out.append([Retrieved(i, by_id[i].doc_id, by_id[i].text, score) for i, score in fused])
    return out


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
