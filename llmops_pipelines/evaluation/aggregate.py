"""Per-candidate summary: means with 95 % bootstrap intervals, coverage, cost, latency percentiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate; unscorable rows lower coverage instead of counting as 0."""
    out = []
    for candidate_id, group in rows.groupby("candidate_id", sort=True):
        scored = group[list(SCORED_METRICS)].notna().all(axis=1)
        q_low, q_high = bootstrap_ci(group["quality"].to_numpy(dtype=float))
        g_low, g_high = bootstrap_ci(group["groundedness"].to_numpy(dtype=float))
        latency = group["ms_per_output_token"].dropna()
        answered = group["answer"].notna().sum()
        cost = float(group["cost_usd"].sum(skipna=True))
        first = group.iloc[0]
        out.append({
            "candidate_id": candidate_id, "prompt_name": first.prompt_name,
            "prompt_version": first.prompt_version, "model": first.model,
            "rows": len(group), "coverage": float(scored.mean()),
            "quality": _mean(group["quality"]), "quality_ci_low": q_low, "quality_ci_high": q_high,
            "groundedness": _mean(group["groundedness"]),
            "groundedness_ci_low": g_low, "groundedness_ci_high": g_high,
            "harm_rate": _mean(group["harm"]), "cost_usd": cost,
            "cost_per_1k_answers_usd": cost / answered * 1000 if answered else math.nan,
            "latency_ms_per_token": _mean(latency),
            "latency_p50_ms_per_token": float(latency.quantile(0.5)) if len(latency) else math.nan,
            "latency_p95_ms_per_token": float(latency.quantile(0.95)) if len(latency) else math.nan,
            "errors": int(group["error"].notna().sum()),
        })
    return conform(pd.DataFrame(out, columns=EVALUATION_SUMMARY.names), EVALUATION_SUMMARY,
                   name="evaluation_summary")
