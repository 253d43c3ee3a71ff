"""The nightly re-evaluation against the test server: fresh calls per night, drift found and alerted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from llmops_pipelines.definitions import defs
from llmops_pipelines.defs import automation_alerts
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.hashing import stable_json
from llmops_pipelines.promotion.paired_bootstrap import keep_rows
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.prompts import load_prompts
from tests.integration.test_evaluation_assets import chat_calls
from tests.integration.test_lifecycle import table
from tests.support.webhook import serve_webhook

REPO = Path(__file__).resolve().parents[2]
LIMIT = 3  # questions per split


def run(instance: dg.DagsterInstance, selection: dg.AssetSelection,
        night: str | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=instance, selection=selection, partition_key=night, **kwargs)


def nightly(instance: dg.DagsterInstance, night: str) -> dg.ExecuteInProcessResult:
    """The night's partition, as the schedule launches it."""
    return run(instance, dg.AssetSelection.assets("nightly_reevaluation"), night)


def drift_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [check] = [e for e in result.get_asset_check_evaluations()
               if e.asset_check_key.name == "no_provider_drift"]
    return check


@pytest.fixture
def evaluated(openai_env, isolated_home, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """Curation, index, fine-tune, candidates and evaluation_rows done once, on LIMIT questions."""
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", str(LIMIT))
    with dg.instance_for_test() as instance:
        upstream = dg.AssetSelection.assets("evaluation_rows").upstream()
        assert run(instance, upstream.required_multi_asset_neighbors()).success
        yield instance


def test_each_night_asks_the_provider_again_and_a_rerun_that_night_does_not(
        evaluated, openai_env, isolated_home) -> None:
    server = openai_env
    candidates = table(isolated_home, "candidates")
    qa = table(isolated_home, "curated_qa")
    per_split = {s: min(LIMIT, int((qa["split"] == s).sum())) for s in ("eval", "test")}
    assert per_split["test"] > 0
    fresh = (per_split["eval"] + per_split["test"]) * len(candidates)

    server.reset()
    first = nightly(evaluated, "2025-01-01")
    assert first.success and chat_calls(server)["answer"] == fresh
    # Each night is a partition: the UI lists it, with that night's metadata.
    [event] = first.get_asset_materialization_events()
    assert event.partition == "2025-01-01"
    assert event.materialization.metadata["nightly_date"].value == "2025-01-01"
    assert evaluated.get_materialized_partitions(dg.AssetKey("nightly_reevaluation")) == {
        "2025-01-01"}
    assert drift_check(first).passed  # the same provider answers the same: no drift
    report = table(isolated_home, "nightly_reevaluation")
    assert len(report) == 2 * len(candidates)
    assert set(report["split"]) == {"eval", "test"}
    eval_rows = report[report["split"] == "eval"]
    assert (eval_rows["baseline"] == "evaluation_rows").all()
    assert (eval_rows["quality_diff"] == 0).all() and not report["drifted"].any()

    server.reset()
    assert nightly(evaluated, "2025-01-01").success
    assert chat_calls(server)["answer"] == 0  # that night's answers are re-used

    server.reset()
    assert nightly(evaluated, "2025-01-02").success
    assert chat_calls(server)["answer"] == fresh  # never a previous night's
    test_rows = table(isolated_home, "nightly_reevaluation").query("split == 'test'")
    assert (test_rows["baseline"] == "nightly 2025-01-01").all()
    assert evaluated.get_materialized_partitions(dg.AssetKey("nightly_reevaluation")) == {
        "2025-01-01", "2025-01-02"}
    # The evaluation itself still reads its own cache: the nightly salt never touched its keys.
    server.reset()
    assert run(evaluated, dg.AssetSelection.assets("evaluation_rows")).success
    assert chat_calls(server)["answer"] == 0


def promote_outside_candidates(home: Path) -> str:
    """A champion none of the candidates is (other params), promoted with its evaluation rows."""
    rows = table(home, "evaluation_rows")
    base = rows[rows["candidate_id"] == rows["candidate_id"].iloc[0]]
    prompt = next(p for p in load_prompts(REPO / "assets" / "prompts")
                  if p.version == base["prompt_version"].iloc[0])
    champion = Candidate(prompt, str(base["model"].iloc[0]), {"temperature": 0.3})
    Registry(home / "registry.sqlite").promote(
        {"candidate_id": champion.candidate_id, "prompt_name": prompt.name,
         "prompt_version": prompt.version, "model": champion.model,
         "params": stable_json(champion.params)}, {"index": "i", "data": "d"},
        reason="test", actor="ci", rows=keep_rows(base))
    return champion.candidate_id


def test_a_provider_whose_answers_got_worse_fails_the_check_and_alerts(
        evaluated, openai_env, isolated_home, monkeypatch) -> None:
    champion = promote_outside_candidates(isolated_home)
    openai_env.drifted = True
    result = nightly(evaluated, "2025-01-03")
    assert result.success  # non-blocking: the run succeeds, the check fails
    check = drift_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    candidates = table(isolated_home, "candidates")["candidate_id"]
    for candidate in [*candidates, champion]:
        assert candidate in check.description
    assert "vs promotion dep-" in check.description  # the champion against its promotion rows
    assert "quality" in check.description and "groundedness" in check.description
    report = table(isolated_home, "nightly_reevaluation")
    eval_rows = report[report["split"] == "eval"]
    assert eval_rows["drifted"].all() and (eval_rows["quality_ci_high"] < 0).all()

    with serve_webhook() as (url, hook):
        monkeypatch.setenv("LLMOPS_ALERT_WEBHOOK", url)
        sensor = automation_alerts.check_alert_sensor(1)
        context = dg.build_sensor_context(instance=evaluated, definitions=defs)
        sensor.evaluate_tick(context)
    [alert] = [a for a in hook.received if a["details"]["check"] == "no_provider_drift"]
    assert alert["details"]["asset"] == "nightly_reevaluation"
    assert alert["details"]["severity"] == "ERROR" and alert["details"]["blocking"] is False


def test_nights_are_daily_partitions_and_a_range_is_refused_before_any_call(
        evaluated, openai_env) -> None:
    partitions = defs.resolve_asset_graph().get(dg.AssetKey("nightly_reevaluation")).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.get_first_partition_key() == "2025-01-01"
    # Tonight's partition exists already: the 02:00 schedule materializes it.
    tonight = datetime.now(ZoneInfo(partitions.timezone)).date().isoformat()
    assert partitions.get_last_partition_key() == tonight

    server = openai_env
    server.reset()
    result = run(evaluated, dg.AssetSelection.assets("nightly_reevaluation"),
                 raise_on_error=False,
                 tags={"dagster/asset_partition_range_start": "2025-01-01",
                       "dagster/asset_partition_range_end": "2025-01-03"})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "one night per run, not 3" in str(failure.event_specific_data.error)
    assert sum(server.counts.values()) == 0
