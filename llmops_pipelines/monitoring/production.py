"""Monitoring of served traffic: the offline metrics on a sample, question drift, feedback rates.

Pure: the Dagster asset (defs/monitoring.py) reads the production log since its cursor and
hands the records and the provider's embed/moderate functions in here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.metrics.cost import Pricing, cost_score
from llmops_pipelines.evaluation.metrics.groundedness import groundedness
from llmops_pipelines.evaluation.metrics.harm import harm_score
from llmops_pipelines.evaluation.metrics.latency import latency_score
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.providers.base import ChatResult, ModerationResult

Embed = Callable[[Sequence[str]], np.ndarray]
Moderate = Callable[[Sequence[str]], list[ModerationResult]]
# Monitored metric -> the gates.yaml threshold it is held to (monitoring: overrides thresholds:).
MONITORED = ("groundedness", "harm_rate", "latency_p95_ms_per_token", "cost_per_1k_answers_usd",
             "question_drift", "negative_feedback_rate")


def load_cursor(path: Path) -> int:
    """The byte offset the last successful run stopped at (0 before the first)."""
    try:
        return int(json.loads(Path(path).read_text(encoding="utf-8"))["offset"])
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError) as exc:
        raise LlmopsError(f"{path}: unreadable monitoring cursor ({exc}); delete it to "
                          "re-read the whole production log") from exc


def save_cursor(path: Path, offset: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"offset": offset}), encoding="utf-8")
    os.replace(tmp, path)


def sample(exchanges: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to n exchanges, chosen by a hash of their id: the same log always gives the same sample."""
    if len(exchanges) <= n:
        return list(exchanges)
    return sorted(exchanges, key=lambda e: hashlib.sha256(e["id"].encode()).hexdigest())[:n]


def _result(e: dict[str, Any]) -> ChatResult:
    return ChatResult(text=e["answer"], model=e["model"], input_tokens=int(e.get("input_tokens") or 0),
                      output_tokens=int(e.get("output_tokens") or 0),
                      latency_ms=float(e.get("latency_ms") or math.nan))


def _cost(pricing: Pricing, e: dict[str, Any]) -> Score:
    try:
        return cost_score(pricing, e.get("requested_model") or e["model"], _result(e))
    except LlmopsError as exc:  # an unpriced model: not scored, and the reason says why
        return Score.unscorable(str(exc))


def score(exchanges: list[dict[str, Any]], sampled_ids: set[str], embed: Embed,
          moderate: Moderate, pricing: Pricing) -> pd.DataFrame:
    """One row per exchange: latency and cost for all, groundedness and harm for the sample."""
    sampled = [e for e in exchanges if e["id"] in sampled_ids]
    verdicts = dict(zip([e["id"] for e in sampled], moderate([e["answer"] for e in sampled]) if sampled
                        else [], strict=True))
    rows = []
    for e in exchanges:
        latency, cost = latency_score(_result(e)), _cost(pricing, e)
        grounded = harm = Score.unscorable("not in this run's sample")
        if e["id"] in verdicts:
            grounded = groundedness(e["answer"], [c["text"] for c in e["contexts"]], embed)
            harm = harm_score(verdicts[e["id"]], e["answer"])
        rows.append({
            "exchange_id": e["id"], "at": float(e["at"]), "deployment_id": e.get("deployment_id"),
            "model": e["model"], "question": e["question"], "answer": e["answer"],
            "sampled": e["id"] in verdicts, "groundedness": grounded.value,
            "groundedness_reason": grounded.reason, "harm": harm.value, "harm_reason": harm.reason,
            "ms_per_output_token": latency.value, "cost_usd": cost.value, "cost_reason": cost.reason,
            "stages_ms": _stages_json(e),
        })
    return pd.DataFrame(rows, columns=SCORED_COLUMNS)


SCORED_COLUMNS = ["exchange_id", "at", "deployment_id", "model", "question", "answer", "sampled",
                  "groundedness", "groundedness_reason", "harm", "harm_reason",
                  "ms_per_output_token", "cost_usd", "cost_reason", "stages_ms"]
# Stages reported per window (p50/p95), in request order; `total` is the exchange's total_ms.
REPORTED_STAGES = ("lookup", "rewrite", "retrieve", "render", "ttft_ms", "chat", "total")


def _stages(e: dict[str, Any]) -> dict[str, float] | None:
    """The exchange's stage durations (ms) plus its total; None for a log written before traces."""
    stages = e.get("stages_ms")
    if not isinstance(stages, dict):
        return None
    out = {k: float(v) for k, v in stages.items() if isinstance(v, int | float)}
    # A streamed answer's time to first token may be logged beside the stages rather than in them.
    if "ttft_ms" not in out and isinstance(e.get("ttft_ms"), int | float):
        out["ttft_ms"] = float(e["ttft_ms"])
    if isinstance(e.get("total_ms"), int | float):
        out["total"] = float(e["total_ms"])
    return out


def _stages_json(e: dict[str, Any]) -> str | None:
    stages = _stages(e)
    return json.dumps(stages, sort_keys=True) if stages is not None else None


def stage_percentiles(exchanges: list[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], int]:
    """p50/p95 ms per stage over the exchanges that carry stages_ms; and how many did not."""
    values: dict[str, list[float]] = {}
    missing = 0
    for e in exchanges:
        stages = _stages(e)
        if stages is None:
            missing += 1
            continue
        for name, ms in stages.items():
            values.setdefault(name, []).append(ms)
    order = [s for s in REPORTED_STAGES if s in values] + sorted(set(values) - set(REPORTED_STAGES))
    return ({name: {"p50_ms": float(np.percentile(values[name], 50)),
                    "p95_ms": float(np.percentile(values[name], 95)), "n": float(len(values[name]))}
             for name in order}, missing)


def stage_metadata(exchanges: list[dict[str, Any]]) -> dict[str, float | int]:
    """Flat `stage/<name>/p50_ms` and `.../p95_ms` floats, and the count without stages."""
    figures, missing = stage_percentiles(exchanges)
    out: dict[str, float | int] = {"stages_missing": missing}
    for name, f in figures.items():
        out[f"stage/{name}/p50_ms"] = f["p50_ms"]
        out[f"stage/{name}/p95_ms"] = f["p95_ms"]
    return out


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / norm if norm else math.nan


def question_drift(questions: Sequence[str], reference: Sequence[str], embed: Embed,
                   *, draws: int = 200, seed: int = 0) -> float:
    """How much further the served questions' mean embedding is from the eval questions' than
    a same-size sample of eval questions would be (1 - cosine, excess); NaN without both.

    The raw centroid distance of a small window is large even with no drift at all (one
    question is far from any mean), so the window is held against the sampling noise of
    its own size: bootstrap samples of the eval questions, median distance.
    """
    if not questions or not reference:
        return math.nan
    vectors = embed([*questions, *reference])
    served, ref = vectors[: len(questions)], vectors[len(questions):]
    centre = ref.mean(axis=0)
    observed = _distance(served.mean(axis=0), centre)
    rng = np.random.default_rng(seed)
    noise = [_distance(ref[rng.integers(0, len(ref), len(questions))].mean(axis=0), centre)
             for _ in range(draws)]
    return max(0.0, observed - float(np.median(noise)))


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def summarise(scored: pd.DataFrame, feedback: list[dict[str, Any]], drift: float) -> dict[str, Any]:
    """The window's monitored metrics, named as their gates in assets/gates.yaml."""
    latency = scored["ms_per_output_token"].dropna()
    ratings = [int(f["rating"]) for f in feedback]
    return {
        "exchanges": len(scored), "scored": int(scored["sampled"].sum()),
        "groundedness": _mean(scored["groundedness"]), "harm_rate": _mean(scored["harm"]),
        "latency_p95_ms_per_token": float(latency.quantile(0.95)) if len(latency) else math.nan,
        "cost_per_1k_answers_usd": _mean(scored["cost_usd"]) * 1000,
        "question_drift": drift, "feedback": len(ratings),
        "feedback_rate": len(ratings) / len(scored) if len(scored) else math.nan,
        "negative_feedback_rate": ratings.count(-1) / len(ratings) if ratings else math.nan,
    }


@dataclass(frozen=True)
class MonitorCheck:
    metric: str
    passed: bool
    description: str
    value: float


def checks(summary: dict[str, Any], gates: Gates) -> list[MonitorCheck]:
    """Each monitored metric against its gate; a metric with no data this window cannot fail."""
    out = []
    for metric in MONITORED:
        bounds = gates.monitoring.get(metric) or gates.thresholds.get(metric) or {}
        value = float(summary.get(metric, math.nan))
        if math.isnan(value):
            out.append(MonitorCheck(metric, True, f"{metric}: not measured in this window "
                                    f"({summary['exchanges']} exchanges, {summary['feedback']} "
                                    "ratings)", value))
            continue
        crossed = [f"{'>=' if b == 'min' else '<='} {t:g}" for b, t in bounds.items()
                   if (value < t if b == "min" else value > t)]
        verdict = f"crosses its gate (needs {', '.join(crossed)})" if crossed else \
            ("within its gate" if bounds else "no gate set")
        out.append(MonitorCheck(metric, not crossed, f"{metric} = {value:.4g} over "
                                f"{summary['exchanges']} exchanges: {verdict}", value))
    return out
