"""Score planted variants with the metrics and report, per metric and kind, how often each is right.

A metric *flags* an answer when its own verdict says the answer is wrong: groundedness below
full support, the harm lexicon firing, token F1 / similarity / quality below the threshold that
keeps false alarms on supported answers at 5 % (they have no verdict of their own). Detection
is the share of planted variants flagged, a false alarm a supported variant flagged, and the
gap the mean score of supported variants minus that of the kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmops_pipelines.evaluation.metrics.groundedness import groundedness
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.quality import cosine, token_f1
from llmops_pipelines.evaluation.metrics.text import sentences
from llmops_pipelines.evaluation.validity.planting import CONTRADICTIONS, Variant
from llmops_pipelines.providers.harm_lexicon import lexicon_verdict

Embed = Callable[[Sequence[str]], np.ndarray]
FALSE_ALARM_BUDGET = 0.05  # for metrics without a verdict of their own
COLUMNS = ["variant_id", "metric", "kind", "label", "origin", "doc_id", "answer", "value",
           "flagged", "reason"]


@dataclass(frozen=True)
class Scored:
    """One metric's verdict on one variant (value oriented so that higher means better)."""

    metric: str
    variant: Variant
    score: Score


def _vectors(texts: Sequence[str], embed: Embed) -> dict[str, np.ndarray]:
    unique = list(dict.fromkeys(texts))
    return dict(zip(unique, embed(unique), strict=True)) if unique else {}


def offline_scores(variants: Sequence[Variant], embed: Embed,
                   groundedness_modes: dict[str, bool] | None = None) -> list[Scored]:
    """Groundedness (each mode: name -> claim checks on/off), token F1, similarity, quality, harm."""
    modes = groundedness_modes or {"groundedness": True}
    texts = [t for v in variants for t in (v.answer, *sentences(v.answer),
                                           *(s for _, c in v.source.contexts for s in sentences(c)))]
    texts += [v.source.text for v in variants if v.source.origin == "ground_truth"]
    vectors = _vectors(texts, embed)

    def lookup(ts: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[t] for t in ts])

    out = []
    for v in variants:
        if v.kind != "harmful":
            for name, checks in modes.items():
                out.append(Scored(name, v, groundedness(v.answer, v.source.contexts, lookup,
                                                        claim_checks=checks)))
        if v.source.origin == "ground_truth" and v.kind != "harmful":
            f1 = token_f1(v.answer, v.source.text)
            sim = Score(cosine(vectors[v.answer], vectors[v.source.text]), "embedding cosine")
            out += [Scored("token_f1", v, f1), Scored("answer_similarity", v, sim),
                    Scored("quality", v, Score((f1.value + sim.value) / 2, "mean of F1 and similarity"))]
        verdict = lexicon_verdict(v.answer)
        out.append(Scored("harm", v, Score(0.0 if verdict.flagged else 1.0,
                                           ", ".join(verdict.categories) or "clean")))
    return out


# Metrics whose verdict is "anything below full marks": the value says the answer is not clean.
_VERDICT = {"harm": 1.0}


def _is_verdict_metric(metric: str) -> bool:
    return metric.startswith("groundedness") or metric.endswith("_judge") or metric in _VERDICT


def frame(scored: Sequence[Scored]) -> pd.DataFrame:
    """One row per metric x variant, with the metric's flag (see the module docstring)."""
    rows = [{"variant_id": s.variant.variant_id, "metric": s.metric, "kind": s.variant.kind,
             "label": s.variant.label, "origin": s.variant.source.origin,
             "doc_id": s.variant.source.doc_id, "answer": s.variant.answer,
             "value": s.score.value, "reason": s.score.reason} for s in scored]
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "flagged"])
    out["flagged"] = False
    for metric, group in out.groupby("metric"):
        threshold = 1.0 if _is_verdict_metric(str(metric)) else calibrated_threshold(group)
        out.loc[group.index, "flagged"] = group["value"] < threshold - 1e-9
    return out[COLUMNS]


def calibrated_threshold(group: pd.DataFrame, budget: float = FALSE_ALARM_BUDGET) -> float:
    """The score below which at most `budget` of the supported variants fall."""
    good = np.sort(group.loc[group["label"] == "supported", "value"].dropna().to_numpy())
    if not len(good):
        return math.nan
    return float(good[int(math.floor(budget * len(good)))])


def _planted(label: str, metric: str) -> bool:
    return label == "harmful" if metric == "harm" else label in ("contradicted", "unsupported")


def auc(group: pd.DataFrame, metric: str) -> float:
    """Probability that a supported variant scores above a planted one (ties count half)."""
    good = group.loc[group["label"] == "supported", "value"].dropna().to_numpy()
    bad = group.loc[group["label"].map(lambda lab: _planted(lab, metric)), "value"].dropna().to_numpy()
    if not len(good) or not len(bad):
        return math.nan
    diff = good[:, None] - bad[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def per_kind(scores: pd.DataFrame) -> pd.DataFrame:
    """Per metric and kind: n, share flagged (detection or false alarm), mean score, gap."""
    out = []
    for (metric, kind), group in scores.groupby(["metric", "kind"], sort=True):
        metric_rows = scores[scores["metric"] == metric]
        good = metric_rows.loc[metric_rows["label"] == "supported", "value"].mean()
        label = group["label"].iloc[0]
        out.append({"metric": metric, "kind": kind, "label": label, "n": len(group),
                    "flagged_rate": float(group["flagged"].mean()),
                    "rate_is": "false_alarm" if label == "supported" else
                               "detection" if _planted(label, str(metric)) else "n/a",
                    "mean_score": float(group["value"].mean()),
                    "gap": float(good - group["value"].mean()) if label != "supported" else 0.0})
    return pd.DataFrame(out)


def per_metric(scores: pd.DataFrame) -> pd.DataFrame:
    """Per metric: false-alarm rate, detection of contradictions, miss rate of all planted, AUC."""
    out = []
    for metric, group in scores.groupby("metric", sort=True):
        m = str(metric)
        good = group[group["label"] == "supported"]
        planted = group[[_planted(lab, m) for lab in group["label"]]]
        contra = group[group["kind"].isin(CONTRADICTIONS)]
        out.append({"metric": m, "supported": len(good), "planted": len(planted),
                    "false_alarm_rate": float(good["flagged"].mean()) if len(good) else math.nan,
                    "miss_rate": float(1 - planted["flagged"].mean()) if len(planted) else math.nan,
                    "contradiction_detection": float(contra["flagged"].mean())
                    if len(contra) and m != "harm" else math.nan,
                    "score_gap": float(good["value"].mean() - planted["value"].mean())
                    if len(good) and len(planted) else math.nan,
                    "auc": auc(group, m)})
    return pd.DataFrame(out)
