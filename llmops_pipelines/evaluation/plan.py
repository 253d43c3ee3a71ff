"""Planning a run: each row's content keys, what the cache already holds, and what the rest will cost.

A key is exactly what decides its result. An answer depends on the endpoint, the model, the
parameters and the rendered messages, which already hold the question and the retrieved text:
the index version is kept on each row as lineage but never keyed, so an edited document
re-bills only the rows that retrieve a changed chunk. Caches written before this rule (keys
salted with the index version) stay readable through `legacy_answer_key`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmops_pipelines.evaluation.budget import CHARS_PER_TOKEN
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.judges import Judges
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.base import Message
from llmops_pipelines.rag.app import chat_params
from llmops_pipelines.rag.retrieval import Retrieved


def answer_key(namespace: str, messages: Sequence[Message], model: str,
               params: dict[str, Any]) -> str:
    """The app answer's cache key; the rendered messages hold the question and retrieved context."""
    return content_hash(namespace, messages, model, params, length=32)


def legacy_answer_key(namespace: str, messages: Sequence[Message], model: str,
                      params: dict[str, Any], index_version: str) -> str:
    """The key releases before row-level invalidation used (salted with the index version)."""
    return content_hash(namespace, messages, model, params, index_version, length=32)


def metrics_key(answer: str, ground_truth: str | None, namespace: str, embedding_model: str,
                evaluator_version: str, judges_version: str | None) -> str:
    """A row's metrics: the answer's key, what it is compared with, and how it is scored."""
    return content_hash("metrics", answer, ground_truth, namespace, embedding_model,
                        evaluator_version, judges_version, length=32)


def judge_key(namespace: str, prompt_version: str, messages: Sequence[Message], model: str,
              params: dict[str, Any], repeat: int) -> str:
    """One judge call: the rubric's version, the rendered rubric (row inputs), model, run index."""
    return content_hash(namespace, "judge", prompt_version, messages, model, params, repeat,
                        length=32)


@dataclass(frozen=True, slots=True)
class RowPlan:
    order: int  # position in the output: candidates in order, questions in order
    candidate: Candidate
    qa: Any  # a curated_qa row (itertuples)
    contexts: list[Retrieved]
    params: dict[str, Any]
    key: str
    metrics_key: str
    input_tokens: int  # estimated, for the budget
    # The same row under the pre-upgrade formula: read once, copied under the new key.
    legacy_key: str | None = None
    legacy_metrics_key: str | None = None
    priced_model: str = ""  # the price table's name for the model on its endpoint

    @property
    def price_name(self) -> str:
        return self.priced_model or self.candidate.model

    @property
    def row_id(self) -> str:
        return content_hash(self.candidate.candidate_id, self.qa.qa_id, length=16)


# Per candidate, or one value for all: the cache namespace (its endpoint's) and the retrieved
# chunks per question (a candidate may set its own top_k or retrieval mode).
Namespaces = str | Callable[[Candidate], str]
Contexts = list[list[Retrieved]] | Callable[[Candidate], list[list[Retrieved]]]


def per_candidate(value: Any, candidate: Candidate) -> Any:
    return value(candidate) if callable(value) else value


def candidate_params(candidate: Candidate, defaults: dict[str, Any]) -> dict[str, Any]:
    """The chat parameters: run defaults, then the prompt file's, then the candidate's grid."""
    return {**chat_params(candidate.prompt, defaults), **candidate.chat_params}


def plan_rows(candidates: list[Candidate], qa: pd.DataFrame, contexts: Contexts,
              defaults: dict[str, Any], index_version: str, namespace: Namespaces,
              scoring_key: Callable[[str, Any], str],
              priced: Callable[[Candidate], str] | None = None) -> Iterator[RowPlan]:
    """Every question x candidate, rendered once to key it (messages are not kept: 100k rows).

    `index_version` only names the legacy keys a cache built before the upgrade holds.
    """
    rows = list(qa.itertuples(index=False))
    order = 0
    for candidate in candidates:
        params = candidate_params(candidate, defaults)
        space = per_candidate(namespace, candidate)
        price_name = priced(candidate) if priced else candidate.model
        for row, ctx in zip(rows, per_candidate(contexts, candidate), strict=True):
            messages = candidate.render(row, ctx)
            key = answer_key(space, messages, candidate.model, params)
            legacy = legacy_answer_key(space, messages, candidate.model, params, index_version)
            tokens = sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN
            yield RowPlan(order, candidate, row, ctx, params, key, scoring_key(key, row), tokens,
                          legacy, scoring_key(legacy, row), price_name)
            order += 1


def estimate_usd(plans: Sequence[RowPlan], pricing: Pricing, judges: Judges | None, *,
                 answers: bool = True) -> tuple[float, int, int]:
    """(dollars, input tokens, output tokens) at most: answers at max_tokens, and/or judge calls."""
    usd, tokens_in, tokens_out = 0.0, 0, 0
    for plan in plans:
        out = int(plan.params.get("max_tokens", 256))
        if answers:
            usd += pricing.price(plan.price_name).cost(plan.input_tokens, out)
            tokens_in, tokens_out = tokens_in + plan.input_tokens, tokens_out + out
        if judges is None:
            continue
        for prompt in (judges.quality, judges.groundedness):
            # The rubric plus the row text it quotes (the context, the answer at its longest).
            quoted = len(prompt.template) // CHARS_PER_TOKEN + plan.input_tokens + out
            judged = int(Judges.params(prompt)["max_tokens"])
            usd += judges.repeats * pricing.price(judges.model).cost(quoted, judged)
            tokens_in += judges.repeats * quoted
            tokens_out += judges.repeats * judged
    return usd, tokens_in, tokens_out
