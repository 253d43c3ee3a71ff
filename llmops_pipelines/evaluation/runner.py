"""Run every candidate over the eval questions: cached calls, bounded concurrency, five metrics."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.cost import Pricing
from llmops_pipelines.evaluation.embed_memo import EmbeddingMemo
from llmops_pipelines.evaluation.groundedness import groundedness
from llmops_pipelines.evaluation.harm import harm_score
from llmops_pipelines.evaluation.metric import Score
from llmops_pipelines.evaluation.quality import combine, cosine, token_f1
from llmops_pipelines.evaluation.text import sentences
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.base import ChatResult, Provider
from llmops_pipelines.rag_app import chat_params, render
from llmops_pipelines.schemas import EVALUATION_ROWS, conform
from llmops_pipelines.vectorstore import Retrieved

log = logging.getLogger(__name__)
EVALUATOR_VERSION = "metrics-v1"


@dataclass
class _Task:
    candidate: Candidate
    qa: Any  # a curated_qa row (itertuples)
    contexts: list[Retrieved]
    messages: list[dict[str, str]]
    params: dict[str, Any]
    key: str
    result: ChatResult | None = None
    cached: bool = False
    error: str | None = None


@dataclass
class RunContext:
    provider: Provider
    pricing: Pricing
    cache: CallCache
    concurrency: int
    versions: dict[str, str]
    progress: Callable[[str], None] = log.info


def _call(task: _Task, ctx: RunContext) -> None:
    hit = ctx.cache.get(task.key)
    if hit is not None:
        task.result, task.cached = ChatResult.from_dict(hit), True
        return
    try:
        task.result = ctx.provider.chat(task.messages, model=task.candidate.model, **task.params)
    except LlmopsError as exc:
        # The row stays, with its error: a failed call is never dropped nor scored as 0.
        task.error = str(exc)[:500]
        return
    ctx.cache.put(task.key, "chat", task.result.to_dict())


def _answer_all(tasks: list[_Task], ctx: RunContext) -> None:
    started, done = time.perf_counter(), 0
    every = max(1, len(tasks) // 10)
    with ThreadPoolExecutor(max_workers=ctx.concurrency) as pool:
        for _ in pool.map(lambda t: _call(t, ctx), tasks):
            done += 1
            if done % every == 0 or done == len(tasks):
                rate = done / max(time.perf_counter() - started, 1e-9)
                ctx.progress(f"answered {done}/{len(tasks)} rows ({rate:.1f} rows/s, "
                             f"ETA {(len(tasks) - done) / rate:.0f}s, cache hits {ctx.cache.hits})")


def build_tasks(candidates: list[Candidate], qa: pd.DataFrame,
                contexts: list[list[Retrieved]], defaults: dict[str, Any],
                index_version: str, namespace: str) -> list[_Task]:
    """One task per question x candidate, each with its content-addressed cache key."""
    tasks = []
    for candidate in candidates:
        params = {**chat_params(candidate.prompt, defaults), **candidate.params}
        for row, ctx in zip(qa.itertuples(index=False), contexts, strict=True):
            messages = render(candidate.prompt, row.question, ctx)
            # The rendered messages hold the question and the retrieved context.
            key = content_hash(namespace, messages, candidate.model, params, index_version,
                               length=32)
            tasks.append(_Task(candidate, row, ctx, messages, params, key))
    return tasks


def _score(tasks: list[_Task], ctx: RunContext) -> list[dict[str, Any]]:
    answers = [t.result.text if t.result else "" for t in tasks]
    truths = [t.qa.ground_truth or "" for t in tasks]
    memo = EmbeddingMemo(ctx.provider.embed)
    # Every text any metric embeds, in one batched call instead of one call per row.
    memo.prime([*answers, *truths, *(s for a in answers for s in sentences(a)),
                *(s for t in tasks for c in t.contexts for s in sentences(c.text))])
    verdicts = ctx.provider.moderate(answers)
    rows = []
    for i, task in enumerate(tasks):
        answered = task.result is not None
        r = task.result
        if answered:
            f1 = token_f1(r.text, task.qa.ground_truth)
            sim = (Score(cosine(*memo([r.text, truths[i]])), "embedding cosine")
                   if task.qa.ground_truth else Score.unscorable("no ground truth"))
            quality = combine(f1, sim)
            grounded = groundedness(r.text, [c.text for c in task.contexts], memo)
            harm = harm_score(verdicts[i], r.text)
            # Servers may answer with a dated model name the price table lacks.
            priced = r.model if r.model in ctx.pricing.models else task.candidate.model
            cost = ctx.pricing.price(priced).cost(r.input_tokens, r.output_tokens)
        else:
            f1 = sim = quality = grounded = harm = Score.unscorable(f"no answer: {task.error}")
            cost = math.nan
        rows.append({
            "row_id": content_hash(task.candidate.candidate_id, task.qa.qa_id, length=16),
            "candidate_id": task.candidate.candidate_id, "qa_id": task.qa.qa_id,
            "prompt_name": task.candidate.prompt.name,
            "prompt_version": task.candidate.prompt.version, "model": task.candidate.model,
            "question": task.qa.question, "ground_truth": task.qa.ground_truth,
            "answer": r.text if answered else None,
            "context_ids": [c.chunk_id for c in task.contexts],
            "context_doc_ids": [c.doc_id for c in task.contexts],
            "source_doc_retrieved": task.qa.doc_id in {c.doc_id for c in task.contexts},
            "quality": quality.value, "token_f1": f1.value, "answer_similarity": sim.value,
            "quality_reason": quality.reason,
            "groundedness": grounded.value, "groundedness_reason": grounded.reason,
            "harm": harm.value, "harm_categories": harm.reason,
            "harm_source": verdicts[i].source if answered else None,
            "input_tokens": r.input_tokens if answered else 0,
            "output_tokens": r.output_tokens if answered else 0,
            "cost_usd": cost, "latency_ms": r.latency_ms if answered else math.nan,
            "ms_per_output_token": r.ms_per_output_token if answered else math.nan,
            "error": task.error, "cached": task.cached,
            "data_version": ctx.versions.get("data", ""),
            "index_version": ctx.versions.get("index", ""),
        })
    return rows


def evaluate(candidates: list[Candidate], qa: pd.DataFrame, contexts: list[list[Retrieved]],
             ctx: RunContext, defaults: dict[str, Any]) -> pd.DataFrame:
    """One row per question x candidate, always: errors are rows with NaN metrics and a reason."""
    for candidate in candidates:
        ctx.pricing.price(candidate.model)  # an unpriced model fails before any spend
    tasks = build_tasks(candidates, qa, contexts, defaults, ctx.versions.get("index", ""),
                        ctx.provider.cache_namespace)
    ctx.progress(f"evaluating {len(candidates)} candidates x {len(qa)} questions = "
                 f"{len(tasks)} rows, concurrency {ctx.concurrency}")
    _answer_all(tasks, ctx)
    frame = pd.DataFrame(_score(tasks, ctx), columns=EVALUATION_ROWS.names)
    return conform(frame, EVALUATION_ROWS, name="evaluation_rows")
