"""Metric validity against the test server: judges on the planted benchmark, and a new scorer
recomputing metrics from cached answers (0 chat calls) while the gates show its measured rates."""

from __future__ import annotations

import json
from pathlib import Path

from llmops_pipelines.evaluation import runner, scoring
from llmops_pipelines.evaluation.judges import Judges
from llmops_pipelines.evaluation.validity.corpus import project_sources
from llmops_pipelines.evaluation.validity.judged import provider_judge_call, sample
from llmops_pipelines.evaluation.validity.planting import corpus_entities, plant
from llmops_pipelines.evaluation.validity.run import run
from llmops_pipelines.providers import make_provider
from llmops_pipelines.settings import Settings
from tests.integration.test_evaluation_assets import chat_calls, materialize
from tests.integration.test_lifecycle import lenient_gates, table

REPO = Path(__file__).resolve().parents[2]
JUDGE = "gpt-4o-mini"


def test_benchmark_runs_the_judges_when_a_judge_model_is_configured(openai_env,
                                                                    monkeypatch) -> None:
    server = openai_env
    monkeypatch.setenv("LLMOPS_JUDGE_MODEL", JUDGE)
    settings = Settings.from_env()
    provider = make_provider(settings)
    judges = Judges.load(settings.assets_dir / "evaluators", JUDGE, settings.judge_repeats)
    sources = project_sources(REPO / "datasets")[::30]
    result = run(sources, provider.embed, judges=judges,
                 judge_call=provider_judge_call(provider, JUDGE), judge_per_kind=2)

    texts = [t for s in sources for _, t in s.contexts]
    judged = [v for v in sample(plant(sources, corpus_entities(texts)), 2) if v.kind != "harmful"]
    with_truth = [v for v in judged if v.source.origin == "ground_truth"]
    assert with_truth, "the sample must hold ground-truth variants for the quality judge"
    assert chat_calls(server)["judge"] == len(judged) + len(with_truth)
    metrics = result.metrics.set_index("metric")
    assert {"groundedness_judge", "quality_judge"} <= set(metrics.index)
    assert metrics.loc["groundedness_judge", "supported"] + \
        metrics.loc["groundedness_judge", "planted"] == len(judged)
    scores = result.scores[result.scores["metric"] == "groundedness_judge"]
    assert scores["value"].between(0, 1).all() and scores["reason"].str.len().gt(0).all()


def _validity_file(home: Path, miss_rate: float) -> None:
    path = home / "validity" / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"created_at": "2026-12-01T00:00:00+00:00",
                                "evaluator_version": "metrics-next", "corpus": "datasets",
                                "metrics": {"groundedness": {
                                    "false_alarm_rate": 0.02, "miss_rate": miss_rate,
                                    "contradiction_detection": 0.5, "auc": 0.8,
                                    "supported": 100, "planted": 100}}}))


def test_a_new_evaluator_version_rescores_cached_answers_with_no_chat_call(
        openai_env, isolated_home, tmp_path, monkeypatch) -> None:
    server, bumped = openai_env, "metrics-next"
    lenient_gates(tmp_path, monkeypatch)
    assert materialize().success
    first = table(isolated_home, "evaluation_rows")
    assert (first["evaluator_version"] == scoring.EVALUATOR_VERSION).all()

    # A changed scorer: what a release bumping EVALUATOR_VERSION does to a warm cache.
    monkeypatch.setattr(scoring, "EVALUATOR_VERSION", bumped)
    monkeypatch.setattr(runner, "EVALUATOR_VERSION", bumped)
    _validity_file(isolated_home, miss_rate=0.5)
    server.reset()
    result = materialize()
    assert result.success
    assert server.counts["chat"] == 0, chat_calls(server)
    rows = table(isolated_home, "evaluation_rows")
    # Every answer from the cache, every metric computed again (a cached metric keeps its version).
    assert (rows["evaluator_version"] == bumped).all() and rows["cached"].all()
    assert len(rows) == len(first)

    summary = result.asset_materializations_for_node("evaluation_summary")[0].metadata
    assert "| groundedness | 2.0% | 50.0% |" in summary["metric_validity"].value
    evidence = result.asset_materializations_for_node("promotion_decision")[0].metadata
    assert "⚠ groundedness missed 50% of planted errors" in evidence["evidence"].value
