"""Provider drift, pure: paired comparison with the baseline, the night's date, the history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.monitoring import drift
from llmops_pipelines.promotion.gates import Gates

REPO = Path(__file__).resolve().parents[2]


def rows(candidate: str, split: str, quality: list[float], groundedness: list[float]) -> pd.DataFrame:
    n = len(quality)
    return pd.DataFrame({"candidate_id": candidate, "split": split, "qa_id": [f"q{i}" for i in range(n)],
                         "question": "q", "answer": "a", "quality": quality,
                         "groundedness": groundedness, "harm": 0.0, "cost_usd": 0.001,
                         "ms_per_output_token": 10.0})


@pytest.fixture
def gates() -> Gates:
    return Gates.load(REPO / "assets" / "gates.yaml")


def test_a_significant_drop_drifts_and_names_metric_and_baseline(gates) -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0.6, 0.9, 12).round(3).tolist()
    base = rows("c1", "eval", before, before)
    worse = rows("c1", "eval", [q - 0.3 for q in before], before)  # groundedness unchanged
    table = drift.compare(worse, {("c1", "eval"): drift.Baseline("evaluation_rows", base)}, gates)
    [row] = table.to_dict("records")
    assert row["drifted"] and row["quality_ci_high"] < 0
    assert row["quality_diff"] == pytest.approx(-0.3)
    assert "quality" in row["drift_reason"] and "groundedness" not in row["drift_reason"]
    assert drift.drift_failures(table) == [f"c1: {row['drift_reason']}"]


def test_noise_or_no_baseline_is_not_drift(gates) -> None:
    base = rows("c1", "eval", [0.5, 0.9, 0.1, 0.7], [0.5, 0.5, 0.5, 0.5])
    noisy = rows("c1", "eval", [0.6, 0.8, 0.2, 0.6], [0.5, 0.5, 0.5, 0.5])  # up and down
    test = rows("c1", "test", [0.1, 0.1], [0.1, 0.1])
    table = drift.compare(pd.concat([noisy, test]),
                          {("c1", "eval"): drift.Baseline("evaluation_rows", base)}, gates)
    assert not table["drifted"].any()
    assert table.set_index("split").loc["test", "baseline"] == "none"
    assert drift.drift_failures(table) == []


def test_a_test_split_drop_is_reported_but_never_fails_the_check(gates) -> None:
    base = rows("c1", "test", [0.8] * 6, [0.8] * 6)
    now = rows("c1", "test", [0.2] * 6, [0.8] * 6)
    table = drift.compare(now, {("c1", "test"): drift.Baseline("nightly 2025-01-01", base)}, gates)
    assert table["drifted"].all() and drift.drift_failures(table) == []


def test_the_night_and_its_salt() -> None:
    now = dt.datetime(2025, 3, 4, 23, 59, tzinfo=dt.UTC)
    assert drift.nightly_date(None, now) == "2025-03-04"
    assert drift.nightly_date("2025-01-02") == "2025-01-02"
    assert drift.cache_salt("2025-01-02") != drift.cache_salt("2025-01-03")
    with pytest.raises(LlmopsError, match="'tonight' is not YYYY-MM-DD"):
        drift.nightly_date("tonight")


def test_history_gives_the_newest_earlier_night(tmp_path: Path) -> None:
    history = drift.NightlyHistory(tmp_path / "nightly")
    assert history.previous("2025-01-02") is None
    for night, q in (("2025-01-01", 0.1), ("2025-01-02", 0.2), ("2025-01-03", 0.3)):
        history.save(night, rows("c1", "test", [q], [q]))
    night, frame = history.previous("2025-01-03")
    assert night == "2025-01-02" and frame["quality"].tolist() == [0.2]
