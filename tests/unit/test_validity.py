"""The planted-error benchmark: its rules, a fixed run with MiniLM, the record, the gate warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.validity import record
from llmops_pipelines.evaluation.validity.corpus import Source, project_sources
from llmops_pipelines.evaluation.validity.planting import (
    CONTRADICTIONS,
    negate,
    paraphrase,
    swap_condition,
    swap_entity,
    swap_number,
)
from llmops_pipelines.evaluation.validity.run import run
from llmops_pipelines.promotion.decide import Gates, decide
from llmops_pipelines.promotion.report import evidence_table
from llmops_pipelines.providers.local_embed import MiniLMEmbedder

REPO = Path(__file__).resolve().parents[2]


def source(text: str, source_id: str = "d#1.0") -> Source:
    return Source(source_id, text, "context", "d", (("d", text),))


def test_planting_rules_change_what_they_say() -> None:
    assert negate(source("The belt needs no lubrication."))[0] == "The belt needs lubrication."
    assert negate(source("Points cannot be exchanged for cash."))[0] == \
        "Points can be exchanged for cash."
    assert negate(source("The rear rack is rated for 25 kg."))[0] == \
        "The rear rack is not rated for 25 kg."
    number = swap_number(source("A full charge takes about 360 minutes."))
    assert number is not None and "360 minutes" not in number[0]
    entity = swap_entity(source("The Fold F2 folds in 15 seconds."), ["Fold F2", "Commuter C3"])
    assert entity is not None and entity[0] == "The Commuter C3 folds in 15 seconds."
    text = "Let it warm up for at least 1 hour before charging."
    condition = swap_condition(source(text))
    assert condition is not None and condition[0] != text
    assert paraphrase(source("It does not need oil.")) is not None


def test_sources_cover_every_document_and_ground_truth() -> None:
    sources = project_sources(REPO / "datasets")
    docs = {s.doc_id for s in sources}
    assert len(docs) == len(list((REPO / "datasets" / "docs").glob("*.md")))
    assert sum(s.origin == "ground_truth" for s in sources) == 48
    assert all(s.contexts and s.text for s in sources)


@pytest.fixture(scope="module")
def fixed_run():
    """Every 12th source of the project's datasets, scored with the real MiniLM embedder."""
    return run(project_sources(REPO / "datasets")[::12], MiniLMEmbedder())


def _rate(kinds, metric: str, kind: str) -> float:
    row = kinds[(kinds["metric"] == metric) & (kinds["kind"] == kind)]
    assert len(row) == 1, (metric, kind)
    return float(row["flagged_rate"].iloc[0])


def test_fixed_benchmark_meets_the_targets(fixed_run) -> None:
    scores = fixed_run.scores
    grounded = scores[scores["metric"] == "groundedness"]
    planted = grounded[grounded["kind"].isin(CONTRADICTIONS)]
    assert len(planted) >= 40
    assert planted["flagged"].mean() >= 0.90
    for kind in CONTRADICTIONS:
        assert _rate(fixed_run.kinds, "groundedness", kind) >= 0.80, kind
    supported = grounded[grounded["label"] == "supported"]
    assert supported["flagged"].mean() <= 0.05
    # The rule it replaced sees almost no negation or condition swap.
    for kind in ("negation", "condition"):
        assert _rate(fixed_run.kinds, "groundedness_embedding_only", kind) < \
            _rate(fixed_run.kinds, "groundedness", kind) - 0.5


def test_every_metric_and_kind_is_reported(fixed_run) -> None:
    metrics = set(fixed_run.metrics["metric"])
    assert {"groundedness", "groundedness_embedding_only", "token_f1", "answer_similarity",
            "quality", "harm"} <= metrics
    harm = fixed_run.metrics.set_index("metric").loc["harm"]
    assert harm["false_alarm_rate"] == 0.0 and harm["planted"] > 0
    # Quality signals: the score gap between ground truths and their unrelated replacements.
    f1 = fixed_run.kinds[(fixed_run.kinds["metric"] == "token_f1")].set_index("kind")
    assert f1.loc["unrelated", "gap"] > f1.loc["negation", "gap"]


def test_record_round_trip_table_and_gate_warning(fixed_run, tmp_path) -> None:
    rec = record.build(fixed_run.metrics, fixed_run.kinds, created_at="2026-12-01T00:00:00+00:00",
                       evaluator_version="metrics-v3", corpus="datasets")
    path = record.save(rec, tmp_path / "validity" / "latest.json")
    loaded = record.load(path)
    assert loaded is not None and loaded["metrics"].keys() == rec["metrics"].keys()
    assert "| groundedness |" in record.table(loaded)
    assert "stale" not in record.table(loaded, "metrics-v3")
    assert "stale: the scorers are now metrics-v4" in record.table(loaded, "metrics-v4")
    trust = record.gate_validity(loaded)
    assert set(trust) == {"groundedness", "quality", "harm_rate"}
    assert trust["groundedness"].metric == "groundedness"

    gates = Gates(primary_metric="quality", thresholds={"groundedness": {"min": 0.3}})
    decision = decide({"candidate_id": "c1", "groundedness": 0.8, "quality": 0.5}, None, gates)
    strict = evidence_table(decision, trust, max_miss_rate=0.0)
    assert "⚠ groundedness missed" in strict and "do not trust this gate alone" in strict
    lenient = evidence_table(decision, trust, max_miss_rate=1.0)
    assert "⚠" not in lenient and "(misses " in lenient
    assert "⚠" not in evidence_table(decision)


def test_no_record_and_a_damaged_record(tmp_path) -> None:
    assert record.load(tmp_path / "none.json") is None
    assert "python -m bench validity" in record.table(None)
    bad = tmp_path / "latest.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="latest.json"):
        record.load(bad)


def test_a_judge_source_picks_the_judge_rates() -> None:
    rec = {"metrics": {"groundedness": {"miss_rate": 0.1, "false_alarm_rate": 0.0},
                       "groundedness_judge": {"miss_rate": 0.4, "false_alarm_rate": 0.1}}}
    assert record.metric_validity(rec, "groundedness", "judge:gpt-4o-mini").metric == \
        "groundedness_judge"
    assert record.metric_validity(rec, "groundedness", None).miss_rate == 0.1
    assert record.metric_validity(rec, "latency_p95_ms_per_token") is None
