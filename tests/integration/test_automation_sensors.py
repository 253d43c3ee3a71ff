"""Each sensor and the schedule evaluated by real Dagster against a real instance and cursor."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from llmops_pipelines.automation import triggers
from llmops_pipelines.definitions import defs
from llmops_pipelines.defs import automation
from llmops_pipelines.errors import SettingsError

REPO = Path(__file__).resolve().parents[2]


def present(names: tuple[str, ...]) -> list[dg.AssetKey]:
    """The keys of the names this code location defines (`champion` arrives with promotion)."""
    graph = defs.resolve_asset_graph()
    return [dg.AssetKey(n) for n in names if graph.has(dg.AssetKey(n))]


EVALUATION = present(triggers.EVALUATION)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def assets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "assets"
    shutil.copytree(REPO / "assets", target)
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(target))
    return target


def materialized(instance: dg.DagsterInstance, *names: str, **metadata: object) -> None:
    """Real materialization events, as a run would record them (without running the stage)."""
    for name in names:
        instance.report_runless_asset_event(dg.AssetMaterialization(name, metadata=metadata))


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None,
         repository: dg.Definitions = defs):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=repository)
    return sensor.evaluate_tick(context)


def selection(result) -> list[dg.AssetKey]:
    [request] = result.run_requests
    return list(request.asset_selection)


def test_prompt_sensor_first_tick_change_and_no_change(instance, assets_dir: Path) -> None:
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.prompt_sensor(1)
    first = tick(sensor, instance, None)
    # Everything was built: the first tick records what it sees and launches nothing.
    assert first.run_requests == [] and "first tick: recorded" in first.skip_message
    assert first.cursor

    assert tick(sensor, instance, first.cursor).run_requests == []
    assert "no change" in tick(sensor, instance, first.cursor).skip_message

    prompt = assets_dir / "prompts" / "friendly_detailed.prompty"
    prompt.write_text(prompt.read_text() + "\n", encoding="utf-8")
    changed = tick(sensor, instance, first.cursor)
    assert selection(changed) == EVALUATION
    assert changed.run_requests[0].tags["llmops/trigger"] == "prompt"
    assert "prompts/friendly_detailed.prompty" in changed.run_requests[0].tags["llmops/why"]
    assert tick(sensor, instance, changed.cursor).run_requests == []  # once

    gates = assets_dir / "gates.yaml"
    gates.write_text(gates.read_text().replace("{min: 0.20}", "{min: 0.25}"), encoding="utf-8")
    again = tick(sensor, instance, changed.cursor)
    assert selection(again) == present(triggers.PROMOTION)
    assert again.run_requests[0].run_key != changed.run_requests[0].run_key


def test_first_tick_launches_the_upstream_that_was_never_materialized(instance, assets_dir) -> None:
    materialized(instance, "curated_documents", "curated_qa", "curated_conversations",
                 "conversation_rejects")
    result = tick(automation.prompt_sensor(1), instance, None)
    keys = {k.path[-1] for k in selection(result)}
    assert {"rag_chunks", "rag_index", "finetuned_model", "candidates", "promotion_decision"} <= keys
    why = result.run_requests[0].tags["llmops/why"]
    assert "upstream first: finetune_training_file" in why and "first tick, free" in why


def test_first_tick_on_a_fresh_all_local_instance_builds_the_lineage_once(instance,
                                                                          assets_dir) -> None:
    """`make ui` on a new instance with the embedded model: free, so the lineage is built."""
    data = tick(automation.data_sensor(1), instance, None)
    keys = {k.path[-1] for k in selection(data)}
    assert {"curated_qa", "rag_index", "finetuned_model", "evaluation_rows"} <= keys
    assert "embedded local model" in data.run_requests[0].tags["llmops/why"]
    # A launched run in flight: the other sensor waits, without a cursor, and decides again.
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="bootstrap-run",
                                   status=dg.DagsterRunStatus.STARTED))
    prompt = tick(automation.prompt_sensor(1), instance, None)
    assert prompt.run_requests == [] and "bootstrap-run" in prompt.skip_message
    assert prompt.cursor is None  # still a first tick next time


def spent_nothing(server) -> bool:
    return sum(server.counts.values()) == 0


def test_first_ticks_launch_nothing_when_a_run_would_pay(instance, assets_dir, openai_env,
                                                         monkeypatch) -> None:
    """Nothing materialized, LLMOPS_PROVIDER=openai (the test server): no run, no call; the
    cursor is recorded, so only a later edit launches."""
    server = openai_env
    sensors = [automation.prompt_sensor(1), automation.data_sensor(1),
               automation.retraining_sensor(1)]
    firsts = [tick(sensor, instance, None) for sensor in sensors]
    for result in firsts:
        assert result.run_requests == [] and result.cursor, result.skip_message
    for result in firsts[:2]:
        assert "never materialized" in result.skip_message
        assert "LLMOPS_PROVIDER=openai" in result.skip_message
    assert spent_nothing(server), server.counts
    assert tick(sensors[0], instance, firsts[0].cursor).run_requests == []

    # The embedded provider, but an experiment with a remote endpoint: paid too.
    monkeypatch.setenv("LLMOPS_PROVIDER", "local")
    monkeypatch.setenv("LLMOPS_EXPERIMENT", "three-models")
    result = tick(automation.prompt_sensor(1), instance, None)
    assert result.run_requests == [] and "endpoint 'openai'" in result.skip_message
    assert spent_nothing(server), server.counts

    # An edit after the first tick is a change someone made: it launches.
    prompt = assets_dir / "prompts" / "friendly_detailed.prompty"
    prompt.write_text(prompt.read_text() + "\n", encoding="utf-8")
    assert selection(tick(sensors[0], instance, firsts[0].cursor))


def test_a_change_waits_for_the_run_in_flight(instance, assets_dir) -> None:
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.prompt_sensor(1)
    first = tick(sensor, instance, None)
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="busy-run",
                                   status=dg.DagsterRunStatus.STARTED))
    prompt = assets_dir / "prompts" / "friendly_detailed.prompty"
    prompt.write_text(prompt.read_text() + "\n", encoding="utf-8")
    result = tick(sensor, instance, first.cursor)
    assert result.run_requests == [] and "busy-run" in result.skip_message
    assert result.cursor == first.cursor  # kept: the next tick sees the change again


def test_data_sensor(instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "datasets"
    shutil.copytree(REPO / "datasets", data)
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(data))
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.data_sensor(1)
    first = tick(sensor, instance, None)
    assert first.run_requests == [] and first.cursor
    assert tick(sensor, instance, first.cursor).run_requests == []
    (data / "docs" / "new-article.md").write_text("# New\n\nSomething new.\n", encoding="utf-8")
    changed = tick(sensor, instance, first.cursor)
    assert selection(changed) == present(triggers.DATA)
    assert "docs/new-article.md" in changed.run_requests[0].tags["llmops/why"]
    assert tick(sensor, instance, changed.cursor).run_requests == []


def test_data_sensor_names_a_missing_folder(instance, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(Exception, match="LLMOPS_DATASETS_DIR=.*not a directory"):
        tick(automation.data_sensor(1), instance, None)


def test_nightly_schedule_requests_the_fresh_reevaluation(instance, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_NIGHTLY_CRON", "30 3 * * *")
    monkeypatch.setenv("LLMOPS_TIMEZONE", "Europe/Paris")
    [schedule] = automation.schedules()
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    materialized(instance, *triggers.LINEAGE)
    when = datetime.fromisoformat("2025-01-02T03:30:00+01:00")
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                        repository_def=defs.get_repository_def())
    [request] = schedule.evaluate_tick(context).run_requests
    # Only the re-evaluation: curation, index, fine-tune and evaluation_rows are loaded as they are.
    assert list(request.asset_selection) == [dg.AssetKey("nightly_reevaluation")]
    assert request.run_key == "nightly-2025-01-02T03:30:00+01:00"
    # That night's partition: the date in the schedule's timezone (01:30 UTC is the 2nd too).
    assert request.partition_key == "2025-01-02"
    assert request.tags["llmops/trigger"] == "nightly"
    # The night in the schedule's timezone salts the call cache (a retry re-uses that night's).
    assert request.tags[triggers.NIGHTLY_DATE_TAG] == "2025-01-02"


def test_nightly_first_tick_launches_the_missing_upstream(instance) -> None:
    materialized(instance, "curated_documents", "curated_qa")
    context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(),
                                        scheduled_execution_time=datetime.fromisoformat(
                                            "2025-01-02T02:00:00+00:00"))
    [request] = automation.schedules()[0].evaluate_tick(context).run_requests
    keys = [k.path[-1] for k in request.asset_selection]
    assert keys[-1] == "nightly_reevaluation" and "evaluation_rows" in keys
    assert request.partition_key == "2025-01-02"  # the unpartitioned upstream runs with it
    assert "promotion_decision" not in keys


def test_bad_cron_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_NIGHTLY_CRON", "every night")
    with pytest.raises(SettingsError, match="LLMOPS_NIGHTLY_CRON='every night'"):
        automation.schedules()


def test_every_sensor_and_the_schedule_start_running() -> None:
    dg.Definitions.validate_loadable(defs)  # every target resolves to a buildable job
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {
        "prompt_change_sensor", "dataset_change_sensor", "retraining_sensor",
        "asset_check_alerts", "run_failure_alerts", "summary_follows_rows"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in repository.sensor_defs)
    assert [s.name for s in repository.schedule_defs] == ["nightly_reevaluation"]


def test_bad_timezone_names_the_variable() -> None:
    from llmops_pipelines.defs.nightly import nights

    with pytest.raises(SettingsError, match="LLMOPS_TIMEZONE='Mars/Olympus'"):
        nights("Mars/Olympus")
    assert nights("Europe/Paris").timezone == "Europe/Paris"


def test_the_retraining_sensors_first_tick_does_not_act_on_earlier_failures(instance) -> None:
    materialized(instance, *triggers.LINEAGE)
    materialized(instance, "curated_qa", rows_per_split={"train": 20})
    materialized(instance, "finetune_training_file", drift_share=0.5, retrain_threshold=0.2,
                 changed_examples=10)  # drifted before the sensor ever ticked
    sensor = automation.retraining_sensor(1)
    first = tick(sensor, instance, None)
    assert first.run_requests == [] and first.cursor
    assert "first tick" in first.skip_message and "training file drifted" in first.skip_message
    assert tick(sensor, instance, first.cursor).run_requests == []
