"""Automation wiring: sensors on prompt, data and monitoring changes, the nightly schedule, alerts.

Decisions live in llmops_pipelines/automation (pure); this module only reads the instance and
turns those decisions into run requests, cursors and log lines.
"""

import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from llmops_pipelines.automation import triggers
from llmops_pipelines.automation.config import run_spend
from llmops_pipelines.automation.watch import Snapshot, fingerprint
from llmops_pipelines.defs.automation_alerts import (
    check_alert_sensor,
    failed_checks,
    repository_of,
    run_failure_alerts,
)
from llmops_pipelines.defs.resources import automation_settings
from llmops_pipelines.errors import SettingsError
from llmops_pipelines.settings import Settings

RUNNING = dg.DefaultSensorStatus.RUNNING
MONITORING = dg.AssetKey(triggers.MONITORING_ASSET)
_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _keys(names: Iterable[str]) -> list[dg.AssetKey]:
    return [dg.AssetKey(name) for name in names]


# What any trigger may launch: the lifecycle groups (so assets added to them are covered).
TARGET = dg.AssetSelection.groups(*triggers.GROUPS)


def _lineage(names: Sequence[str]) -> dg.AssetSelection:
    """The names and everything upstream (with the rest of any multi-asset, which runs whole)."""
    return dg.AssetSelection.assets(*_keys(names)).upstream().required_multi_asset_neighbors()


def _busy(instance: dg.DagsterInstance) -> str | None:
    """A queued or running run: launching beside it would race on the same tables."""
    records = instance.get_run_records(dg.RunsFilter(statuses=_IN_FLIGHT), limit=1)
    return records[0].dagster_run.run_id if records else None


def _selection(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext,
               names: Sequence[str]) -> tuple[list[dg.AssetKey], list[str]]:
    """The targets, or the whole lineage when an upstream asset was never materialized (so a
    first tick never launches a run that fails on a missing input); and what was missing."""
    graph = repository_of(context).asset_graph
    names = [n for n in names if graph.has(dg.AssetKey(n))]
    wanted = dg.AssetSelection.assets(*_keys(names))
    upstream = (wanted.upstream() - wanted).resolve(graph)
    # Observed source assets (the production log) are never materialized: not "missing".
    missing = sorted(k.to_user_string() for k in upstream if graph.get(k).is_materializable
                     and context.instance.get_latest_materialization_event(k) is None)
    chosen = _lineage(names) if missing else wanted.required_multi_asset_neighbors()
    keys = chosen.resolve(graph)
    order = {name: i for i, name in enumerate(triggers.in_lineage_order(k.path[-1] for k in keys))}
    return sorted(keys, key=lambda k: order[k.path[-1]]), missing


def _request(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext, run_key: str,
             trigger: str, names: Sequence[str], why: list[str]) -> dg.RunRequest:
    keys, missing = _selection(context, names)
    if missing:
        why = [*why, f"upstream first: {', '.join(missing)}"]
    context.log.info(f"{trigger}: launching {[k.to_user_string() for k in keys]} ({'; '.join(why)})")
    return dg.RunRequest(run_key=run_key, asset_selection=keys, tags=triggers.run_tags(trigger, why))


def _first_tick(context: dg.SensorEvaluationContext, snapshot: Snapshot, trigger: str,
                names: Sequence[str], root: Path) -> dg.SensorResult | dg.SkipReason:
    """A sensor's first tick (no cursor: a fresh instance, the sensor just turned on, or a
    cursor of an older format) sees every file as new. It records them and launches nothing,
    unless an upstream asset was never materialized here and the run would call only the
    embedded local model: then it builds the lineage, which costs nothing."""
    _, missing = _selection(context, names)
    if not missing:
        skip = (f"first tick: recorded {len(snapshot.files)} file(s) under {root}; the next "
                "change launches a run")
        context.log.info(skip)
        return dg.SensorResult(skip_reason=skip, cursor=snapshot.to_cursor())
    spend = run_spend(os.environ)
    if not spend.free:
        skip = (f"first tick: {', '.join(missing)} never materialized, but {spend.describe()}: "
                "nothing launched before anyone asks (it costs money). Materialize from the UI "
                "(or `make demo`); later changes launch runs.")
        context.log.info(skip)
        return dg.SensorResult(skip_reason=skip, cursor=snapshot.to_cursor())
    busy = _busy(context.instance)
    if busy:  # no cursor: the next tick decides again, once that run has built the lineage
        return dg.SkipReason(f"first tick: waiting for run {busy} to finish")
    snapshot = snapshot.next_of(None)
    free = [f"first tick, free ({spend.describe()}): build what was never materialized"]
    return dg.SensorResult(run_requests=[_request(context, snapshot.run_key, trigger, names, free)],
                           cursor=snapshot.to_cursor())


def watched_files_sensor(name: str, trigger: str, folder: Callable[[Settings], tuple[str, Path]],
                         entries: Sequence[str], targets_for: Callable[[list[str]], list[str]],
                         interval_s: int, description: str) -> dg.SensorDefinition:
    """A sensor that hashes watched files and launches what reads the changed ones."""

    @dg.sensor(name=name, minimum_interval_seconds=interval_s, default_status=RUNNING,
               target=TARGET, description=description)
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        variable, root = folder(automation_settings())
        snapshot = Snapshot(fingerprint(root, entries, variable))
        before = Snapshot.from_cursor(context.cursor)
        if before is None:
            return _first_tick(context, snapshot, trigger, targets_for(sorted(snapshot.files)),
                               root)
        if before.hash == snapshot.hash:
            return dg.SkipReason(f"no change under {root}")
        busy = _busy(context.instance)
        if busy:  # the cursor stays: the next tick after that run sees the change again
            return dg.SkipReason(f"change seen; waiting for run {busy} to finish")
        changed = snapshot.changed_since(before)
        names = targets_for(changed)
        snapshot = snapshot.next_of(before)
        if not names:
            return dg.SensorResult(skip_reason="nothing reads the changed files",
                                   cursor=snapshot.to_cursor())
        what = [f"{len(changed)} file(s) changed: " + ", ".join(changed[:5])]
        return dg.SensorResult(run_requests=[_request(context, snapshot.run_key, trigger, names, what)],
                               cursor=snapshot.to_cursor())

    return _sensor


def prompt_sensor(interval_s: int) -> dg.SensorDefinition:
    return watched_files_sensor(
        "prompt_change_sensor", "prompt", lambda s: ("LLMOPS_ASSETS_DIR", s.assets_dir),
        list(triggers.ASSET_FILE_TARGETS), triggers.targets_for_asset_files, interval_s,
        "Prompts, judge prompts, gates or prices changed: re-evaluate the candidates that read "
        "them (unchanged rows come from the cache), then promote.")


def data_sensor(interval_s: int) -> dg.SensorDefinition:
    return watched_files_sensor(
        "dataset_change_sensor", "data", lambda s: ("LLMOPS_DATASETS_DIR", s.datasets_dir), (),
        lambda changed: list(triggers.DATA), interval_s,
        "A file under LLMOPS_DATASETS_DIR changed: curate, sync the index, evaluate, promote.")


def nightly_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """Fresh answers from the champion and every challenger on the eval and test splits, compared
    with their evaluation: catches drift on the provider's side (check no_provider_drift). Each
    night materializes its own partition of nightly_reevaluation: the night's date (YYYY-MM-DD)
    in the schedule's timezone."""

    @dg.schedule(name="nightly_reevaluation", cron_schedule=cron, execution_timezone=timezone,
                 default_status=dg.DefaultScheduleStatus.RUNNING, target=TARGET,
                 description=nightly_schedule.__doc__)
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time
        stamp = when.isoformat() if when else "manual"
        # The night salts the call cache: a retried run re-uses that night's answers only.
        night = (when or datetime.now(ZoneInfo(timezone))).date().isoformat()
        request = _request(context, f"nightly-{stamp}", "nightly", triggers.NIGHTLY,
                           [f"nightly re-evaluation of {night} scheduled for {stamp}"])
        return request.with_replaced_attrs(partition_key=night,
                                           tags={**request.tags, triggers.NIGHTLY_DATE_TAG: night})

    return _schedule


def _train_rows(instance: dg.DagsterInstance, before_id: int | None = None) -> tuple[int, int | None]:
    """(storage id, train rows) of curated_qa's latest materialization (before before_id)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("curated_qa"), before_storage_id=before_id), limit=1).records
    if not records or records[0].asset_materialization is None:
        return 0, None
    entry = records[0].asset_materialization.metadata.get("rows_per_split")
    return records[0].storage_id, triggers.split_rows(entry.value if entry else None)


def _latest(instance: dg.DagsterInstance, name: str) -> tuple[int, dict]:
    """(storage id, metadata values) of an asset's latest materialization; (0, {}) if none."""
    records = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
    if not records or records[0].asset_materialization is None:
        return 0, {}
    meta = records[0].asset_materialization.metadata
    return records[0].storage_id, {k: v.value for k, v in meta.items()}


def _growth(instance: dg.DagsterInstance, fraction: float,
            seen: dict[str, int]) -> tuple[dict[str, int], str | None]:
    """Whether the training data moved enough since finetuned_model was last built: the
    training file's drift under the fine-tune policy (finetune/policy.py), or, for a file
    written before it recorded drift, train-split growth by `fraction`."""
    qa_id, now = _train_rows(instance)
    file_id, file_meta = _latest(instance, "finetune_training_file")
    model_id, _ = _latest(instance, "finetuned_model")
    marks = {"qa_id": max(qa_id, seen.get("qa_id", 0)),
             "file_id": max(file_id, seen.get("file_id", 0))}
    if not model_id:
        return marks, None
    if "drift_share" in file_meta:
        # The same rule finetuned_model applies; a file older than the model is decided.
        if file_id <= seen.get("file_id", 0) or file_id < model_id:
            return marks, None
        return marks, triggers.training_drift(file_meta)
    if qa_id <= seen.get("qa_id", 0):
        return marks, None
    _, trained_on = _train_rows(instance, before_id=model_id)
    if not triggers.train_grew(trained_on, now, fraction):
        return marks, None
    return marks, f"train split grew from {trained_on} to {now} rows (gate {fraction:.0%})"


def retraining_sensor(interval_s: int, monitoring_key: dg.AssetKey = MONITORING,
                      check_names: Sequence[str] | None = triggers.RETRAIN_CHECKS,
                      name: str = "retraining_sensor") -> dg.SensorDefinition:
    """Fine-tune again, then evaluate and promote, when a check on the monitoring asset fails
    (drift, feedback, groundedness past its gate) or the training file drifted past the
    fine-tune policy's retrain share (LLMOPS_FINETUNE_RETRAIN_SHARE / LLMOPS_RETRAIN_GROWTH)."""

    @dg.sensor(name=name, minimum_interval_seconds=interval_s, default_status=RUNNING,
               target=TARGET, description=retraining_sensor.__doc__)
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        graph = repository_of(context).asset_graph
        keys = [k for k in graph.asset_check_keys if k.asset_key == monitoring_key
                and (check_names is None or k.name in check_names)]
        failures = failed_checks(context.instance, keys, state.get("check_id", 0))
        marks, grew = _growth(context.instance, automation_settings().retrain_growth, state)
        why = [f"{e.check_name} failed on {e.asset_key.to_user_string()}" for _, e, _ in failures]
        why += [grew] if grew else []
        cursor = json.dumps({"check_id": max([state.get("check_id", 0)] + [i for i, _, _ in failures]),
                             **marks})
        if not why:
            return dg.SensorResult(skip_reason="no failed monitoring check, no train growth",
                                   cursor=cursor)
        if not context.cursor:
            # A first tick never acts on what happened before the sensor ran (a failed check
            # of `make demo`, say): retraining is asked for by what happens from now on.
            skip = f"first tick: recorded where checks and data are; not acting on {'; '.join(why)}"
            context.log.info(skip)
            return dg.SensorResult(skip_reason=skip, cursor=cursor)
        busy = _busy(context.instance)
        if busy:
            return dg.SkipReason(f"retraining wanted ({'; '.join(why)}); waiting for run {busy}")
        run_key = "retrain-" + "-".join(str(v) for v in json.loads(cursor).values())
        request = _request(context, run_key, "retrain", triggers.RETRAIN, why)
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _sensor


def summary_follows_rows(interval_s: int) -> dg.AutomationConditionSensorDefinition:
    """Declarative: evaluation_summary re-materializes eagerly whenever evaluation_rows changes
    outside a run that already includes it (e.g. rows materialized alone from the UI)."""
    # default_condition (beta) sets the condition here, next to the other triggers, without
    # touching the evaluation module; it needs the user code server.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.AutomationConditionSensorDefinition(
            "summary_follows_rows", target=dg.AssetSelection.assets("evaluation_summary"),
            default_condition=dg.AutomationCondition.eager(), use_user_code_server=True,
            default_status=RUNNING, minimum_interval_seconds=interval_s,
            description=summary_follows_rows.__doc__)


def sensors() -> list[dg.SensorDefinition]:
    """Every sensor, with the interval from LLMOPS_SENSOR_INTERVAL_S (read at load)."""
    every = automation_settings().sensor_interval_s
    return [prompt_sensor(every), data_sensor(every), retraining_sensor(every),
            check_alert_sensor(every), run_failure_alerts(every), summary_follows_rows(every)]


def schedules() -> list[dg.ScheduleDefinition]:
    """The nightly schedule, on LLMOPS_NIGHTLY_CRON in LLMOPS_TIMEZONE (read at load)."""
    settings = automation_settings()
    try:
        return [nightly_schedule(settings.nightly_cron, settings.timezone)]
    except dg.DagsterInvalidDefinitionError as exc:
        raise SettingsError(f"LLMOPS_NIGHTLY_CRON={settings.nightly_cron!r} / LLMOPS_TIMEZONE="
                            f"{settings.timezone!r}: {exc}") from exc
