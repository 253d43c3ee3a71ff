"""Non-regression evidence: candidate minus champion on the same eval questions, with a paired CI.

Both candidates answered the same questions, so the per-question differences carry the signal
and the per-question difficulty cancels out: resampling question indices (not each side on its
own) gives a much tighter interval on the difference than two independent CIs would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

SCORED = ("quality", "groundedness", "harm")


def _p95(values: np.ndarray) -> np.ndarray:
    return np.nanpercentile(values, 95, axis=-1)


def _mean(values: np.ndarray) -> np.ndarray:
    return np.nanmean(values, axis=-1)


# Gated summary metric -> (per-row value, statistic over rows): the same definitions
# evaluation/aggregate.py uses for the summary, so the paired difference matches it.
ROW_METRICS: dict[str, tuple[Callable[[pd.DataFrame], pd.Series], Callable]] = {
    "quality": (lambda r: r["quality"], _mean),
    "groundedness": (lambda r: r["groundedness"], _mean),
    "harm_rate": (lambda r: r["harm"], _mean),
    "cost_per_1k_answers_usd": (lambda r: r["cost_usd"].where(r["answer"].notna()) * 1000, _mean),
    "latency_p95_ms_per_token": (lambda r: r["ms_per_output_token"], _p95),
    "coverage": (lambda r: r[list(SCORED)].notna().all(axis=1).astype(float), _mean),
}
# The columns a deployment keeps so a later candidate can be paired with it.
ROW_COLUMNS = ("qa_id", "question", "answer", *SCORED, "cost_usd", "ms_per_output_token")


@dataclass(frozen=True)
class PairedDiff:
    """candidate - champion for one metric over the questions both answered."""

    metric: str
    pairs: int
    diff: float
    ci_low: float
    ci_high: float


def paired_diff(metric: str, candidate: pd.DataFrame, champion: pd.DataFrame, *,
                samples: int = 2000, confidence: float = 0.95, seed: int = 0) -> PairedDiff:
    """The statistic's difference and its percentile bootstrap CI, pairing rows on qa_id."""
    value, stat = ROW_METRICS[metric]
    joined = pd.DataFrame({"c": value(candidate).to_numpy(dtype=float)},
                          index=candidate["qa_id"]).join(
        pd.DataFrame({"p": value(champion).to_numpy(dtype=float)}, index=champion["qa_id"]),
        how="inner")
    # A question either side could not score says nothing about the difference on this metric.
    joined = joined.dropna()
    n = len(joined)
    if n == 0:
        return PairedDiff(metric, 0, math.nan, math.nan, math.nan)
    c, p = joined["c"].to_numpy(), joined["p"].to_numpy()
    diff = float(stat(c) - stat(p))
    if n < 2:
        return PairedDiff(metric, n, diff, math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    diffs = stat(c[idx]) - stat(p[idx])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return PairedDiff(metric, n, diff, float(low), float(high))


def keep_rows(rows: pd.DataFrame) -> list[dict]:
    """The per-question columns pairing needs, as plain records (stored with a deployment)."""
    present = [c for c in ROW_COLUMNS if c in rows.columns]
    frame = rows[present].astype(object).where(rows[present].notna(), None)
    return frame.to_dict("records")


def rows_frame(records: list[dict]) -> pd.DataFrame:
    """Stored records back into a frame with numeric metric columns (None -> NaN)."""
    frame = pd.DataFrame(records, columns=list(ROW_COLUMNS))
    for column in (*SCORED, "cost_usd", "ms_per_output_token"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame
