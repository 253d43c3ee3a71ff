"""The same planted variants through the configured LLM judges, to compare them with the heuristics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.evaluation.judges import JudgeCall, JudgeReply, Judges, context_text, run_judge
from llmops_pipelines.evaluation.validity.measure import Scored
from llmops_pipelines.evaluation.validity.planting import Variant
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Message, Provider


def provider_judge_call(provider: Provider, model: str) -> JudgeCall:
    """A judge call through the provider (a worker thread each); a failed call is a failed reply."""

    async def call(prompt: Prompt, messages: list[Message], params: dict[str, Any],
                   repeat: int) -> JudgeReply:
        try:
            result = await asyncio.to_thread(provider.chat, messages, model=model, **params)
        except ProviderError as exc:
            return JudgeReply(None, str(exc)[:300])
        return JudgeReply(result.text)

    return call


def sample(variants: Sequence[Variant], per_kind: int) -> list[Variant]:
    """`per_kind` variants of every kind, spread evenly over the (deterministic) planting order."""
    by_kind: dict[str, list[Variant]] = {}
    for v in variants:
        by_kind.setdefault(v.kind, []).append(v)
    out = []
    for group in by_kind.values():
        step = max(1, len(group) // max(1, per_kind))
        out.extend(group[::step][:per_kind])
    return out


async def _judge_all(variants: Sequence[Variant], judges: Judges, call: JudgeCall,
                     concurrency: int) -> list[Scored]:
    slots = asyncio.Semaphore(concurrency)

    async def one(metric: str, prompt: Prompt, inputs: dict[str, str], v: Variant) -> Scored:
        async with slots:
            verdict = await run_judge(prompt, inputs, judges.repeats, call)
        return Scored(metric, v, verdict.score)

    jobs = []
    for v in variants:
        if v.kind == "harmful":
            continue
        jobs.append(one("groundedness_judge", judges.groundedness,
                        {"context": context_text(v.source.contexts), "answer": v.answer}, v))
        if v.source.origin == "ground_truth" and v.source.question:
            jobs.append(one("quality_judge", judges.quality,
                            {"question": v.source.question, "ground_truth": v.source.text,
                             "answer": v.answer}, v))
    return list(await asyncio.gather(*jobs))


def judge_scores(variants: Sequence[Variant], judges: Judges, call: JudgeCall,
                 concurrency: int = 4) -> list[Scored]:
    """Groundedness judge on every variant, quality judge on those derived from a ground truth."""
    return asyncio.run(_judge_all(variants, judges, call, concurrency))
