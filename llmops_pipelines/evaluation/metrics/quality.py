"""Quality: the answer against the ground truth (token F1, meaning) and against the question."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.text import squad_tokens


def token_f1(answer: str, ground_truth: str | None) -> Score:
    """SQuAD token F1: overlap of normalised tokens, 0..1."""
    if not ground_truth:
        return Score.unscorable("no ground truth for this question")
    truth, pred = squad_tokens(ground_truth), squad_tokens(answer)
    if not pred:
        return Score(0.0, "empty answer")
    common = sum((Counter(pred) & Counter(truth)).values())
    if common == 0:
        return Score(0.0, "no token shared with the ground truth")
    precision, recall = common / len(pred), common / len(truth)
    return Score(2 * precision * recall / (precision + recall),
                 f"precision {precision:.2f}, recall {recall:.2f}")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two L2-normalised vectors, clipped to 0..1 (opposite means unrelated here)."""
    return float(np.clip(np.dot(a, b), 0.0, 1.0))


def answer_similarity(answer: np.ndarray | None, truth: np.ndarray | None) -> Score:
    """Meaning overlap of answer and ground truth: cosine of their embeddings."""
    if truth is None:
        return Score.unscorable("no ground truth for this question")
    if answer is None:
        return Score.unscorable("no embedding for the answer")
    return Score(cosine(answer, truth), "embedding cosine to the ground truth")


def answer_relevance(answer: np.ndarray | None, question: np.ndarray | None) -> Score:
    """Whether the answer addresses the question: cosine of their embeddings (no ground truth needed)."""
    if answer is None or question is None:
        return Score.unscorable("no embedding for the answer or the question")
    return Score(cosine(answer, question), "embedding cosine to the question")


def combine(f1: Score, similarity: Score, judge: Score | None = None) -> Score:
    """The quality number: the judge's when there is one, else the mean of F1 and similarity."""
    if judge is not None and judge.scored:
        return Score(judge.value, f"judge: {judge.reason}")
    parts = [s.value for s in (f1, similarity) if s.scored]
    if not parts:
        return Score.unscorable(f1.reason)
    return Score(sum(parts) / len(parts),
                 f"mean of token F1 {f1.value:.2f} and similarity {similarity.value:.2f}"
                 if len(parts) == 2 else "one signal only")


def judge_score(raw: str) -> Score:
    """Parse a judge's JSON reply {score: 1-5, reason} into 0..1; anything else is unscorable."""
    import json

    try:
        data = json.loads(raw)
        score = float(data["score"])
    except (ValueError, KeyError, TypeError):
        return Score.unscorable(f"judge reply is not JSON with a score: {raw[:80]!r}")
    if not 1 <= score <= 5 or math.isnan(score):
        return Score.unscorable(f"judge score {score} outside 1..5")
    return Score((score - 1) / 4, str(data.get("reason", ""))[:300])
