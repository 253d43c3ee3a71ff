"""Groundedness (local heuristic): the share of answer sentences the retrieved context supports.

A sentence is supported when some context sentence matches it (embedding cosine, or nearly
all its content words with a weaker cosine) AND none of the claim checks in `claims` finds
it contradicting the best-matching context sentence: a number (units converted), a name,
something the context says does not exist, a negation, a comparison or condition word.
No offline NLI model ships on the package registries, so this is a labelled heuristic
(METHOD); a configured LLM judge replaces it. `python -m bench validity` measures how often
it is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from llmops_pipelines.evaluation.metrics.claims import Finding, Passage, find_problem, overlap
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.text import is_abstention, numbers, sentences

SUPPORT_THRESHOLD = 0.6
# Support by shared words: a short claim ("About 10 minutes.") embeds far from the long
# sentence that states it, but shares its content words; the claim checks still apply.
LEXICAL_SUPPORT = 0.75
LEXICAL_MIN_COSINE = 0.35
CANDIDATES = 3  # context sentences (by cosine) the claim is aligned with
NEARBY = 8  # context sentences (by cosine) that must state the claim's numbers
METHOD = "local-heuristic-claims-v1"  # was "local-embedding-support-v1" (embedding + numbers)

Context = str | tuple[str, str]


def passages(contexts: Sequence[Context]) -> list[Passage]:
    """Context sentences labelled by chunk: '<doc_id>#<n>' for the n-th retrieved chunk."""
    out: list[Passage] = []
    for n, context in enumerate(contexts, start=1):
        doc_id, text = context if isinstance(context, tuple) else ("context", context)
        out.extend(Passage(f"{doc_id}#{n}", s) for s in sentences(text))
    return out


def _embedding_only(claim: str, best: float, threshold: float, context_numbers: set[str]) -> str | None:
    # The v1 rule, kept for comparison (claim_checks=False): cosine and bare numbers only.
    missing = numbers(claim) - context_numbers
    if best < threshold or missing:
        return f"numbers {sorted(missing)} not in context" if missing else f"best match {best:.2f}"
    return None


def _judge_claim(claim: str, scores: np.ndarray, context: list[Passage], threshold: float,
                 raw: list[str]) -> Finding | None:
    order = [int(i) for i in np.argsort(-scores)]
    top, nearby = order[:CANDIDATES], [context[i] for i in order[:NEARBY]]
    # Of the closest sentences, the one sharing most words is the one the claim restates.
    aligned = max(top, key=lambda i: overlap(claim, context[i].text) + float(scores[i]))
    best = float(scores[top[0]])
    # A claim may join two sentences ("within 30 days ...; a USD 150 charge ..."): shared
    # words are counted against the closest few together.
    shared = overlap(claim, " ".join(context[i].text for i in top))
    if best < threshold and not (shared >= LEXICAL_SUPPORT and best >= LEXICAL_MIN_COSINE):
        return Finding("unsupported", f"best match {best:.2f}")
    return find_problem(claim, context[aligned], nearby, context, raw)


def groundedness(answer: str, contexts: Sequence[Context],
                 embed: Callable[[Sequence[str]], np.ndarray],
                 threshold: float = SUPPORT_THRESHOLD, claim_checks: bool = True) -> Score:
    """Supported answer sentences / all answer sentences; the reason names each failing one."""
    if not answer.strip():
        return Score.unscorable("empty answer: no claim to check")
    if is_abstention(answer):
        return Score(1.0, "abstained: claims nothing beyond the context")
    claims = sentences(answer) or [answer.strip()]
    context = passages(contexts)
    if not context:
        return Score(0.0, "no context was retrieved, so no claim is supported")
    vectors = embed([*claims, *(p.text for p in context)])
    similarity = vectors[: len(claims)] @ vectors[len(claims):].T
    raw = [c[1] if isinstance(c, tuple) else c for c in contexts]
    context_numbers = set().union(*(numbers(text) for text in raw))
    failing = []
    for claim, scores in zip(claims, similarity, strict=True):
        if claim_checks:
            finding = _judge_claim(claim, scores, context, threshold, raw)
            if finding is not None:
                failing.append(f"{finding.verdict}: {claim[:80]!r} ({finding.detail})")
        elif (why := _embedding_only(claim, float(scores.max()), threshold, context_numbers)):
            failing.append(f"unsupported: {claim[:80]!r} ({why})")
    supported = len(claims) - len(failing)
    reason = f"{supported}/{len(claims)} sentences supported"
    if failing:
        reason += "; " + "; ".join(failing[:3])
    return Score(supported / len(claims), reason)
