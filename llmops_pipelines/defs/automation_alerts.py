"""Alerts: a failed run or a failed asset check (blocking or not) is logged and posted as JSON
to LLMOPS_ALERT_WEBHOOK; open-source Dagster alerts on neither (dagster-io/dagster#29896)."""

import json
import logging
from collections.abc import Iterable

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from llmops_pipelines.automation import alerts
from llmops_pipelines.defs.resources import automation_settings
from llmops_pipelines.errors import SettingsError

RUNNING = dg.DefaultSensorStatus.RUNNING


def failed_checks(instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey],
                  after_id: int) -> list[tuple[int, dg.AssetCheckEvaluation, str]]:
    """(record id, evaluation, run id) of every failed check evaluation newer than after_id."""
    found = []
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=25):
            evaluation = record.event.asset_check_evaluation if record.event else None
            if record.id > after_id and evaluation is not None and not evaluation.passed:
                found.append((record.id, evaluation, record.run_id))
    return sorted(found, key=lambda item: item[0])


def deliver(log: logging.Logger | dg.DagsterLogManager, payload: dict) -> str | None:
    """Always log the alert; post it when LLMOPS_ALERT_WEBHOOK is set. Returns a delivery error."""
    log.warning(f"ALERT {payload['title']}: {json.dumps(payload['details'], default=str)[:4000]}")
    url: str | None
    error: str | None
    try:
        url = automation_settings().alert_webhook
    except SettingsError as exc:  # an alert sensor must never fail on its own settings
        url, error = None, str(exc)
    else:
        error = alerts.post_alert(url, payload) if url else None
    if error:
        log.error(f"alert not delivered to LLMOPS_ALERT_WEBHOOK: {error}")
    return error


def _metadata(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {k: v.value if isinstance(v.value, str | int | float | bool | dict | list) else str(v.value)
            for k, v in evaluation.metadata.items()}


def repository_of(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext
                  ) -> dg.RepositoryDefinition:
    """The code location's repository, which every sensor here reads its asset graph from."""
    if context.repository_def is None:  # a sensor evaluated outside its code location
        raise dg.DagsterInvariantViolationError("this sensor needs its repository definition")
    return context.repository_def


def check_alert_sensor(interval_s: int) -> dg.SensorDefinition:
    """Alert on every failed asset check, blocking or not (OSS Dagster alerts on neither)."""

    @dg.sensor(name="asset_check_alerts", minimum_interval_seconds=interval_s,
               default_status=RUNNING, description=check_alert_sensor.__doc__)
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = int(context.cursor or 0)
        keys = repository_of(context).asset_graph.asset_check_keys
        failures = failed_checks(context.instance, keys, after)
        for _, evaluation, run_id in failures:
            asset = evaluation.asset_key.to_user_string()
            deliver(context.log, alerts.build_alert(
                "asset_check_failed", f"check {evaluation.check_name} failed on {asset}",
                {"asset": asset, "check": evaluation.check_name, "run_id": run_id,
                 "severity": evaluation.severity.value, "blocking": bool(evaluation.blocking),
                 "description": evaluation.description, "metadata": _metadata(evaluation)}))
        newest = max([after] + [i for i, _, _ in failures])
        return dg.SensorResult(cursor=str(newest),
                               skip_reason=None if failures else "no new failed check")

    return _sensor


def _root_cause(error: SerializableErrorInfo) -> str:
    # Dagster wraps the user's exception ("Error occurred while executing op"): report the cause.
    while error.cause is not None:
        error = error.cause
    return error.message.strip()[:2000]


def run_failure_alerts(interval_s: int) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="run_failure_alerts", minimum_interval_seconds=interval_s,
                           default_status=RUNNING, description="Alert on every failed run.")
    def _sensor(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        steps = [{"step": e.step_key, "error": _root_cause(e.step_failure_data.error)}
                 for e in context.get_step_failure_events() if e.step_failure_data.error]
        deliver(context.log, alerts.build_alert(
            "run_failure", f"run {run.run_id[:8]} ({run.job_name}) failed",
            {"run_id": run.run_id, "job": run.job_name, "message": context.failure_event.message,
             "trigger": run.tags.get("llmops/trigger"), "sensor": run.tags.get("dagster/sensor_name"),
             "failed_steps": steps}))

    return _sensor
