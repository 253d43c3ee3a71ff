"""Hand-built evaluation rows for promotion tests: each candidate's per-question metrics chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmops_pipelines.evaluation.aggregate import summarise

QUESTIONS = 20


def candidate_rows(candidate_id: str, *, quality: float, groundedness: float, seed: int,
                   harm: float = 0.0, questions: int = QUESTIONS,
                   prompt_name: str = "grounded_concise", model: str = "gpt-4o-mini",
                   prompt_version: str | None = None) -> pd.DataFrame:
    """One row per question: the metric levels plus small per-question noise (seeded)."""
    rng = np.random.default_rng(seed)
    n = questions
    return pd.DataFrame({
        "row_id": [f"{candidate_id}-{i}" for i in range(n)], "candidate_id": candidate_id,
        "qa_id": [f"q{i:02d}" for i in range(n)], "prompt_name": prompt_name,
        "prompt_version": prompt_version or f"pv-{candidate_id}", "model": model,
        "question": [f"question {i}?" for i in range(n)], "answer": [f"answer {i}." for i in range(n)],
        "quality": np.clip(quality + rng.normal(0, 0.05, n), 0, 1),
        "groundedness": np.clip(groundedness + rng.normal(0, 0.05, n), 0, 1),
        "harm": np.full(n, harm), "cost_usd": 0.0005 + rng.normal(0, 0.00001, n),
        "ms_per_output_token": 20 + rng.normal(0, 1, n), "error": None,
        "data_version": "data-1", "index_version": "index-1",
    })


def write_evaluation(home: Path, *frames: pd.DataFrame) -> pd.DataFrame:
    """evaluation_rows and evaluation_summary where the Dagster IO manager reads them."""
    rows = pd.concat(frames, ignore_index=True)
    tables = home / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(tables / "evaluation_rows.parquet", index=False)
    summary = summarise(rows)
    summary.to_parquet(tables / "evaluation_summary.parquet", index=False)
    return summary
