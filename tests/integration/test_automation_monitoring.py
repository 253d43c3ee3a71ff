"""Retraining and alert sensors on real check evaluations and run failures in a real instance.

The retraining sensor takes the monitoring asset's key; here a small monitoring-like asset with
a drift check stands in for it, materialized by real Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import dagster as dg
import pytest

from llmops_pipelines.automation import triggers
from llmops_pipelines.definitions import defs
from llmops_pipelines.defs import automation, automation_alerts
from tests.integration.test_automation_sensors import materialized, present, selection, tick
from tests.support.webhook import SECRET_ENV, serve_webhook

PROBE = dg.AssetKey("monitoring_probe")
DRIFT = {"value": 0.1}  # read by the check when it runs in-process


@dg.asset(key=PROBE)
def monitoring_probe() -> float:
    return DRIFT["value"]


@dg.asset_check(asset=PROBE, description="Embedding drift below its gate (non-blocking, WARN).")
def drift_below_gate() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=DRIFT["value"] < 0.3, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"drift": DRIFT["value"], "gate": 0.3})


@dg.asset
def always_fails() -> None:
    raise RuntimeError("provider said: Incorrect API key provided: sk-live-abcdefghijklmnop")


REPOSITORY = dg.Definitions.merge(defs, dg.Definitions(assets=[monitoring_probe, always_fails],
                                                       asset_checks=[drift_below_gate]))


def monitor(instance: dg.DagsterInstance, drift: float) -> None:
    DRIFT["value"] = drift
    assert dg.materialize([monitoring_probe, drift_below_gate], instance=instance).success


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def webhook() -> Iterator[tuple[str, type]]:
    with serve_webhook() as served:
        yield served


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        if name != "LLMOPS_ALERT_WEBHOOK":
            monkeypatch.setenv(name, value)


def test_retraining_on_a_failed_monitoring_check_once(instance) -> None:
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.retraining_sensor(1, monitoring_key=PROBE, check_names=["drift_below_gate"])
    monitor(instance, 0.1)
    quiet = tick(sensor, instance, None, REPOSITORY)
    assert quiet.run_requests == [] and "no failed monitoring check" in quiet.skip_message
    monitor(instance, 0.5)
    fired = tick(sensor, instance, quiet.cursor, REPOSITORY)
    assert selection(fired) == present(triggers.RETRAIN)
    assert "drift_below_gate failed on monitoring_probe" in fired.run_requests[0].tags["llmops/why"]
    assert tick(sensor, instance, fired.cursor, REPOSITORY).run_requests == []


def test_checks_that_retraining_cannot_fix_do_not_retrain(instance) -> None:
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.retraining_sensor(1, monitoring_key=PROBE, check_names=["latency_gate"])
    monitor(instance, 0.9)
    assert tick(sensor, instance, None, REPOSITORY).run_requests == []


def test_retraining_when_the_train_split_grew(instance, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_RETRAIN_GROWTH", "0.5")
    materialized(instance, *triggers.LINEAGE)  # curated_qa without rows_per_split: no baseline
    materialized(instance, "curated_qa", rows_per_split={"train": 20, "eval": 10})
    materialized(instance, "finetuned_model")  # trained on 20 train rows
    sensor = automation.retraining_sensor(1, monitoring_key=PROBE)
    materialized(instance, "curated_qa", rows_per_split={"train": 29, "eval": 10})
    first = tick(sensor, instance, None, REPOSITORY)
    assert first.run_requests == []  # +45 % < 50 %
    materialized(instance, "curated_qa", rows_per_split={"train": 30, "eval": 10})
    fired = tick(sensor, instance, first.cursor, REPOSITORY)
    assert selection(fired)[:2] == [dg.AssetKey("finetune_training_file"),
                                    dg.AssetKey("finetuned_model")]
    assert "grew from 20 to 30" in fired.run_requests[0].tags["llmops/why"]
    assert tick(sensor, instance, fired.cursor, REPOSITORY).run_requests == []


def test_failed_non_blocking_check_alert_reaches_the_webhook(instance, webhook, secrets,
                                                             monkeypatch) -> None:
    url, hook = webhook
    monkeypatch.setenv("LLMOPS_ALERT_WEBHOOK", url)
    sensor = automation_alerts.check_alert_sensor(1)
    monitor(instance, 0.1)
    first = tick(sensor, instance, None, REPOSITORY)
    assert hook.received == [] and first.skip_message == "no new failed check"
    monitor(instance, 0.7)
    second = tick(sensor, instance, first.cursor, REPOSITORY)
    [alert] = hook.received
    assert alert["kind"] == "asset_check_failed" and alert["details"]["check"] == "drift_below_gate"
    assert alert["details"]["severity"] == "WARN" and alert["details"]["blocking"] is False
    assert alert["details"]["metadata"] == {"drift": 0.7, "gate": 0.3}
    tick(sensor, instance, second.cursor, REPOSITORY)
    assert len(hook.received) == 1  # once


def test_run_failure_alert_is_logged_and_posted_without_secrets(instance, webhook, secrets,
                                                                monkeypatch, capfd) -> None:
    url, hook = webhook
    monkeypatch.setenv("LLMOPS_ALERT_WEBHOOK", url)
    result = dg.materialize([always_fails], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_event=failure, dagster_instance=instance,
        dagster_run=result.dagster_run, repository_def=REPOSITORY.get_repository_def(),
    ).for_run_failure()
    capfd.readouterr()  # the run's own failure log (it quotes the exception) is not ours
    automation_alerts.run_failure_alerts(1)(context)
    [alert] = hook.received
    assert alert["kind"] == "run_failure" and alert["details"]["run_id"] == result.run_id
    [step] = alert["details"]["failed_steps"]
    assert step["step"] == "always_fails" and "Incorrect API key" in step["error"]
    logged = capfd.readouterr().err
    for name in ("OPENAI_API_KEY", "LLMOPS_SERVE_TOKEN"):
        assert SECRET_ENV[name] not in json.dumps(alert) + logged, name
    assert url not in logged and "ALERT run" in logged


def test_unreachable_webhook_is_logged_never_raised(instance, monkeypatch, capfd) -> None:
    monkeypatch.setenv("LLMOPS_ALERT_WEBHOOK", "http://127.0.0.1:1/hook")
    monitor(instance, 0.9)
    result = tick(automation_alerts.check_alert_sensor(1), instance, None, REPOSITORY)
    assert int(result.cursor) > 0
    logged = capfd.readouterr().err
    assert "alert not delivered" in logged and "unreachable" in logged


@pytest.fixture(autouse=True)
def _reset_drift() -> Iterator[None]:
    yield
    DRIFT["value"] = 0.1


def test_retrain_checks_exist_on_the_registered_monitoring_asset() -> None:
    graph = defs.resolve_asset_graph()
    assert automation.MONITORING in graph.get_all_asset_keys()
    names = {k.name for k in graph.asset_check_keys if k.asset_key == automation.MONITORING}
    assert set(triggers.RETRAIN_CHECKS) <= names
