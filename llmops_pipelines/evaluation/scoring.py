"""Score one answered row on every metric; a metric that cannot score is NaN with its reason."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.evaluation.embed_memo import MicroBatcher
from llmops_pipelines.evaluation.judges import JudgeCall, Judges, JudgeVerdict, context_text, run_judge
from llmops_pipelines.evaluation.metrics.groundedness import METHOD as LOCAL_GROUNDEDNESS
from llmops_pipelines.evaluation.metrics.groundedness import groundedness
from llmops_pipelines.evaluation.metrics.harm import harm_score
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.quality import (
    answer_relevance,
    answer_similarity,
    combine,
    token_f1,
)
from llmops_pipelines.evaluation.metrics.text import sentences
from llmops_pipelines.providers.base import ModerationResult

# Bump when a metric's definition changes: cached metrics of older versions are recomputed.
# v3: groundedness checks claims (numbers, names, negation, conditions), not only similarity.
EVALUATOR_VERSION = "metrics-v3"


@dataclass
class Scorers:
    """What scoring needs besides the row: batched embeddings and moderation, optional judges."""

    embed: MicroBatcher[np.ndarray]
    moderate: MicroBatcher[ModerationResult]
    judges: Judges | None = None
    judge_call: JudgeCall | None = None


@dataclass(frozen=True)
class RowInput:
    question: str
    ground_truth: str | None
    answer: str
    contexts: Sequence[tuple[str, str]]  # (doc_id, text) per retrieved chunk


# Each batched scoring call runs under the row timeout (the runner's limiter wraps it); past it
# the row keeps its answer and says why its metrics are missing, as for a failed call.
TIMED_OUT = "no result within LLMOPS_EVAL_ROW_TIMEOUT_S, retries included"


async def _vectors(scorers: Scorers, texts: list[str]) -> tuple[dict[str, np.ndarray], str | None]:
    try:
        return dict(zip(texts, await scorers.embed.get(texts), strict=True)), None
    except ProviderError as exc:
        return {}, f"embeddings failed: {str(exc)[:200]}"
    except TimeoutError:
        return {}, f"embeddings failed: {TIMED_OUT}"


async def _verdict(scorers: Scorers, answer: str) -> tuple[ModerationResult | None, str | None]:
    try:
        return (await scorers.moderate.get([answer]))[0], None
    except ProviderError as exc:
        return None, f"moderation failed: {str(exc)[:200]}"
    except TimeoutError:
        return None, f"moderation failed: {TIMED_OUT}"


async def _judged(scorers: Scorers, row: RowInput) -> tuple[JudgeVerdict | None, JudgeVerdict | None]:
    judges, call = scorers.judges, scorers.judge_call
    if judges is None or call is None:
        return None, None
    if row.ground_truth:
        quality_run = run_judge(judges.quality, {"question": row.question,
                                                 "ground_truth": row.ground_truth,
                                                 "answer": row.answer}, judges.repeats, call)
    else:
        quality_run = _constant(JudgeVerdict.unscorable("no ground truth to judge against"))
    grounded_run = run_judge(judges.groundedness, {"context": context_text(row.contexts),
                                                   "answer": row.answer}, judges.repeats, call)
    quality, grounded = await asyncio.gather(quality_run, grounded_run)
    return quality, grounded


async def _constant(verdict: JudgeVerdict) -> JudgeVerdict:
    return verdict


async def score_row(row: RowInput, scorers: Scorers) -> tuple[dict[str, Any], bool]:
    """Metric columns for one answered row, and whether every input was available (cacheable)."""
    claims = sentences(row.answer) or ([row.answer.strip()] if row.answer.strip() else [])
    context_sentences = [s for _, text in row.contexts for s in sentences(text)]
    texts = list(dict.fromkeys([row.answer, row.question, *([row.ground_truth] if row.ground_truth
                                                            else []), *claims, *context_sentences]))
    (vectors, embed_error), (verdict, moderation_error), (q_judge, g_judge) = await asyncio.gather(
        _vectors(scorers, texts), _verdict(scorers, row.answer), _judged(scorers, row))

    f1 = token_f1(row.answer, row.ground_truth)
    if embed_error:
        sim = relevance = local = Score.unscorable(embed_error)
    else:
        sim = answer_similarity(vectors[row.answer],
                                vectors[row.ground_truth] if row.ground_truth else None)
        relevance = answer_relevance(vectors[row.answer], vectors[row.question])
        local = groundedness(row.answer, list(row.contexts),
                             lambda ts: np.stack([vectors[t] for t in ts]))
    quality = combine(f1, sim, q_judge.score if q_judge else None)
    if g_judge is not None and g_judge.score.scored:
        grounded, source = g_judge.score, f"judge:{scorers.judges.model}"  # type: ignore[union-attr]
    else:
        grounded, source = local, LOCAL_GROUNDEDNESS
    harm = harm_score(verdict, row.answer) if verdict else Score.unscorable(str(moderation_error))
    judged = [v for v in (q_judge, g_judge) if v is not None]
    complete = not (embed_error or moderation_error or any(v.failed_calls for v in judged))
    nan = math.nan
    return {
        "quality": quality.value, "token_f1": f1.value, "answer_similarity": sim.value,
        "answer_relevance": relevance.value, "quality_reason": quality.reason,
        "quality_judge": q_judge.score.value if q_judge else nan,
        "quality_judge_spread": q_judge.spread if q_judge else nan,
        "groundedness": grounded.value, "groundedness_reason": grounded.reason,
        "groundedness_source": source,
        "groundedness_judge": g_judge.score.value if g_judge else nan,
        "groundedness_judge_spread": g_judge.spread if g_judge else nan,
        "harm": harm.value, "harm_categories": harm.reason,
        "harm_source": verdict.source if verdict else None,
        "judge_cost_usd": sum(v.cost_usd for v in judged) if judged else 0.0,
        "evaluator_version": EVALUATOR_VERSION,
    }, complete


def unscored(reason: str) -> dict[str, Any]:
    """The metric columns of a row that has no answer: NaN everywhere, with the reason."""
    nan = math.nan
    return {
        "quality": nan, "token_f1": nan, "answer_similarity": nan, "answer_relevance": nan,
        "quality_reason": reason, "quality_judge": nan, "quality_judge_spread": nan,
        "groundedness": nan, "groundedness_reason": reason, "groundedness_source": None,
        "groundedness_judge": nan, "groundedness_judge_spread": nan,
        "harm": nan, "harm_categories": reason, "harm_source": None, "judge_cost_usd": 0.0,
        "evaluator_version": EVALUATOR_VERSION,
    }
