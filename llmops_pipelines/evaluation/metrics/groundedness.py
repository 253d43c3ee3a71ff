"""Groundedness (local heuristic): the share of answer sentences the retrieved context supports.

A sentence counts as supported when its embedding is close to some context sentence AND
every number it states appears in the context. No offline NLI model ships on the package
registries, so this is a labelled heuristic; an LLM judge replaces it when one is configured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.text import is_abstention, numbers, sentences

SUPPORT_THRESHOLD = 0.6
METHOD = "local-embedding-support-v1"


def groundedness(answer: str, contexts: Sequence[str],
                 embed: Callable[[Sequence[str]], np.ndarray],
                 threshold: float = SUPPORT_THRESHOLD) -> Score:
    """Supported answer sentences / all answer sentences, with the unsupported ones as reason."""
    if not answer.strip():
        return Score.unscorable("empty answer: no claim to check")
    if is_abstention(answer):
        return Score(1.0, "abstained: claims nothing beyond the context")
    claims = sentences(answer) or [answer.strip()]
    context_sentences = [s for c in contexts for s in sentences(c)]
    if not context_sentences:
        return Score(0.0, "no context was retrieved, so no claim is supported")
    context_numbers = set().union(*(numbers(c) for c in contexts))
    vectors = embed([*claims, *context_sentences])
    similarity = vectors[: len(claims)] @ vectors[len(claims):].T
    unsupported = []
    for claim, best in zip(claims, similarity.max(axis=1), strict=True):
        missing = numbers(claim) - context_numbers
        if best < threshold or missing:
            why = f"numbers {sorted(missing)} not in context" if missing else f"best match {best:.2f}"
            unsupported.append(f"{claim[:80]!r} ({why})")
    supported = len(claims) - len(unsupported)
    reason = f"{supported}/{len(claims)} sentences supported"
    if unsupported:
        reason += "; unsupported: " + "; ".join(unsupported[:3])
    return Score(supported / len(claims), reason)
