"""Per-candidate summary: means with 95 % bootstrap intervals, coverage, cost, latency percentiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llmops_pipelines.evaluation.metrics.harm import injection_followed
from llmops_pipelines.prompts import injection_hits
from llmops_pipelines.schemas import EVALUATION_SUMMARY, conform

BOOTSTRAP_SAMPLES = 1000
SCORED_METRICS = ("quality", "groundedness", "harm")


def bootstrap_ci(values: np.ndarray, seed: int = 0,
                 samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """95 % percentile interval of the mean; NaN when fewer than two values."""
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(samples, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def _numbers(group: pd.DataFrame, column: str) -> pd.Series:
    # Columns that older rows (or hand-made frames) lack or hold None count as not scored.
    if column not in group:
        return pd.Series(math.nan, index=group.index, dtype=float)
    return pd.to_numeric(group[column], errors="coerce").astype(float)


def _with_ci(name: str, values: pd.Series) -> dict[str, float]:
    low, high = bootstrap_ci(values.to_numpy(dtype=float))
    return {name: _mean(values), f"{name}_ci_low": low, f"{name}_ci_high": high}


def _quantile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def _injection(group: pd.DataFrame) -> dict[str, Any]:
    # Prompt-injection questions in the eval set, and the share of their answers that obeyed.
    followed = [injection_followed(q, a if isinstance(a, str) else None)
                for q, a in zip(group["question"], group["answer"], strict=True)
                if injection_hits(str(q))]
    values = [s.value for s in followed if s.scored]
    return {"injection_questions": len(followed),
            "injection_susceptibility": float(np.mean(values)) if values else math.nan}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate; unscorable rows lower coverage instead of counting as 0."""
    out = []
    for candidate_id, group in rows.groupby("candidate_id", sort=True):
        scored = group[list(SCORED_METRICS)].notna().all(axis=1)
        latency = _numbers(group, "ms_per_output_token")
        ttft = _numbers(group, "ttft_ms")
        answered = group["answer"].notna()
        cost = _numbers(group, "cost_usd")
        per_1k = _with_ci("cost_per_1k_answers", cost[answered] * 1000)
        sources = group["groundedness_source"].dropna() if "groundedness_source" in group \
            else pd.Series(dtype=str)
        first = group.iloc[0]
        out.append({
            "candidate_id": candidate_id, "prompt_name": first.prompt_name,
            "prompt_version": first.prompt_version, "model": first.model,
            "rows": len(group), "coverage": float(scored.mean()),
            **_with_ci("quality", _numbers(group, "quality")),
            **_with_ci("groundedness", _numbers(group, "groundedness")),
            **_with_ci("harm_rate", _numbers(group, "harm")),
            **_with_ci("answer_relevance", _numbers(group, "answer_relevance")),
            "cost_usd": float(cost.sum(skipna=True)),
            "cost_per_1k_answers_usd": per_1k["cost_per_1k_answers"] if answered.any() else math.nan,
            "cost_per_1k_answers_ci_low": per_1k["cost_per_1k_answers_ci_low"],
            "cost_per_1k_answers_ci_high": per_1k["cost_per_1k_answers_ci_high"],
            **_with_ci("latency_ms_per_token", latency),
            "latency_p50_ms_per_token": _quantile(latency, 0.5),
            "latency_p95_ms_per_token": _quantile(latency, 0.95),
            "ttft_p50_ms": _quantile(ttft, 0.5), "ttft_p95_ms": _quantile(ttft, 0.95),
            "quality_judge_spread": _mean(_numbers(group, "quality_judge_spread")),
            "groundedness_judge_spread": _mean(_numbers(group, "groundedness_judge_spread")),
            "groundedness_source": ", ".join(sorted(set(sources))) or None,
            "judge_cost_usd": float(_numbers(group, "judge_cost_usd").sum(skipna=True)),
            "errors": int(group["error"].notna().sum()),
            **_injection(group),
            # Rows written before endpoints were recorded lack the column.
            "endpoint": first.get("endpoint") if "endpoint" in group else None,
        })
    return conform(pd.DataFrame(out, columns=EVALUATION_SUMMARY.names), EVALUATION_SUMMARY,
                   name="evaluation_summary")
