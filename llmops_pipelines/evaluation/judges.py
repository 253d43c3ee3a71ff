"""LLM judges (quality and groundedness, rubrics in assets/evaluators/), each run n times.

A judge scores 1-5 in JSON (response_format json_object); the score maps to 0..1. Running it
`judge_repeats` times (LLMOPS_JUDGE_REPEATS) and reporting the spread (max - min) shows a
user how much a judge's verdict moves between identical calls.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.quality import judge_score
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.prompts import Prompt, load_prompt
from llmops_pipelines.providers.base import Message


@dataclass(frozen=True)
class JudgeReply:
    text: str | None  # None when the call failed
    error: str | None = None
    cost_usd: float = 0.0


# (rubric, rendered messages, params, repeat index) -> the judge's reply.
JudgeCall = Callable[[Prompt, list[Message], dict[str, Any], int], Awaitable[JudgeReply]]


@dataclass(frozen=True)
class JudgeVerdict:
    score: Score  # mean over the scored repeats, 0..1
    spread: float  # max - min over the scored repeats; NaN with fewer than two
    cost_usd: float = 0.0
    failed_calls: int = 0  # calls that returned nothing (a re-run retries them)

    @classmethod
    def unscorable(cls, reason: str) -> JudgeVerdict:
        return cls(Score.unscorable(reason), math.nan)


@dataclass(frozen=True)
class Judges:
    """The judge model, its two rubrics and how many times each runs."""

    model: str
    repeats: int
    quality: Prompt
    groundedness: Prompt

    @classmethod
    def load(cls, evaluators_dir: Path, model: str, repeats: int = 1) -> Judges:
        return cls(model, max(1, repeats),
                   load_prompt(Path(evaluators_dir) / "quality_judge.prompty"),
                   load_prompt(Path(evaluators_dir) / "groundedness_judge.prompty"))

    @property
    def version(self) -> str:
        """Changes whenever a rubric file, the judge model or the repeat count changes."""
        return content_hash(self.model, self.repeats, self.quality.version,
                            self.groundedness.version, length=12)

    @staticmethod
    def params(prompt: Prompt) -> dict[str, Any]:
        """The rubric file's decoding parameters, structured output included."""
        keep = ("temperature", "max_tokens", "response_format")
        return {"temperature": 0.0, "max_tokens": 200,
                **{k: v for k, v in prompt.parameters.items() if k in keep}}


def context_text(contexts: Sequence[tuple[str, str]]) -> str:
    """Retrieved chunks as the groundedness judge reads them: [doc_id] text, one per line."""
    return "\n".join(f"[{doc_id}] {text}" for doc_id, text in contexts)


def aggregate(replies: Sequence[JudgeReply]) -> JudgeVerdict:
    """Mean and spread of the parsable replies; unscorable when none parsed."""
    scores = [judge_score(r.text) if r.text is not None
              else Score.unscorable(f"judge call failed: {r.error}") for r in replies]
    cost = sum(r.cost_usd for r in replies)
    failed = sum(r.text is None for r in replies)
    scored = [s.value for s in scores if s.scored]
    if not scored:
        reason = scores[0].reason if scores else "no judge reply"
        return JudgeVerdict(Score.unscorable(reason), math.nan, cost, failed)
    mean = sum(scored) / len(scored)
    spread = max(scored) - min(scored) if len(scored) >= 2 else math.nan
    reason = next(s.reason for s in scores if s.scored)
    if len(scores) > 1:
        reason += f" (mean of {len(scored)}/{len(scores)} judge runs, spread {spread:.2f})"
    return JudgeVerdict(Score(mean, reason), spread, cost, failed)


async def run_judge(prompt: Prompt, inputs: dict[str, str], repeats: int,
                    call: JudgeCall) -> JudgeVerdict:
    """Render the rubric with the row's inputs and run it `repeats` times."""
    messages = prompt.render(**inputs)
    params = Judges.params(prompt)
    return aggregate(await asyncio.gather(*(call(prompt, messages, params, i)
                                            for i in range(repeats))))
