"""One validity run: plant variants in the sources, score them offline (and with judges), report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from llmops_pipelines.evaluation.judges import JudgeCall, Judges
from llmops_pipelines.evaluation.validity.corpus import Source
from llmops_pipelines.evaluation.validity.judged import judge_scores, sample
from llmops_pipelines.evaluation.validity.measure import (
    Embed,
    frame,
    offline_scores,
    per_kind,
    per_metric,
)
from llmops_pipelines.evaluation.validity.planting import Variant, corpus_entities, plant

# "groundedness" is the shipped scorer; "groundedness_embedding_only" the rule it replaced
# (cosine and bare numbers, EVALUATOR_VERSION metrics-v2), kept to show before and after.
GROUNDEDNESS_MODES = {"groundedness": True, "groundedness_embedding_only": False}


@dataclass(frozen=True)
class ValidityRun:
    variants: list[Variant]
    scores: pd.DataFrame  # one row per metric x variant
    kinds: pd.DataFrame  # per metric and kind
    metrics: pd.DataFrame  # per metric


def run(sources: Sequence[Source], embed: Embed, *, extra_entities: Sequence[str] = (),
        judges: Judges | None = None, judge_call: JudgeCall | None = None,
        judge_per_kind: int = 25) -> ValidityRun:
    """Plant, score and report; the judges score `judge_per_kind` variants of each kind."""
    texts = [t for s in sources for _, t in s.contexts]
    variants = plant(sources, corpus_entities(texts, extra_entities))
    scored = offline_scores(variants, embed, GROUNDEDNESS_MODES)
    if judges is not None and judge_call is not None:
        scored += judge_scores(sample(variants, judge_per_kind), judges, judge_call)
    scores = frame(scored)
    return ValidityRun(variants, scores, per_kind(scores), per_metric(scores))
