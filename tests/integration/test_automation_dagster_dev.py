"""The sensors under a live `dagster dev` (webserver + daemon) against the local test server.

A first start on a paid endpoint launches nothing and calls nothing; once the lifecycle was
materialized by hand, editing a prompt and a dataset file launches exactly the right runs; a
failing non-blocking check reaches a local webhook as a JSON alert with no secret in it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorType

from tests.integration.test_ui import graphql
from tests.support.dagster_dev import DagsterDev
from tests.support.webhook import serve_webhook

REPO = Path(__file__).resolve().parents[2]
SERVE_TOKEN = "serve-token-must-not-leak"
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def permissive_gates(assets: Path) -> None:
    """Every promotion gate passable by the test server's extractive answers; the retrieval gate
    at a perfect recall@5, which its hash embeddings miss: a failing non-blocking check."""
    path = assets / "gates.yaml"
    gates = yaml.safe_load(path.read_text(encoding="utf-8"))
    for bounds in gates["thresholds"].values():
        bounds.update({k: (0.0 if k == "min" else 1e9) for k in bounds})
    for bounds in (gates.get("monitoring") or {}).values():
        bounds.update({k: (0.0 if k == "min" else 1e9) for k in bounds})
    if "non_regression" in gates:
        gates["non_regression"]["margins"] = {m: 1e9 for m in gates["thresholds"]}
    gates["retrieval"] = {"recall_at_5": {"min": 1.0}}
    path.write_text(yaml.safe_dump(gates), encoding="utf-8")


def sensor_runs(instance: dg.DagsterInstance, sensor: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": sensor})))


def cursors(instance: dg.DagsterInstance) -> dict[str, str | None]:
    """Each sensor's stored cursor (a sensor that never ticked has none)."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return {s.name: getattr(s.instigator_data, "cursor", None) for s in states}


def materialized_in(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {e.dagster_event.asset_key.path[-1] for e in events}


def finished(instance: dg.DagsterInstance, sensor: str, count: int) -> list[dg.DagsterRun] | None:
    """The sensor's runs once it has launched `count` and every run in the instance is done."""
    runs = sensor_runs(instance, sensor)
    everything = instance.get_runs()
    if len(runs) >= count and all(r.status in DONE for r in everything):
        return runs
    return None


@pytest.mark.slow
def test_sensors_launch_the_right_runs_under_dagster_dev(openai_env, isolated_home, tmp_path,
                                                         monkeypatch) -> None:
    server = openai_env
    assets, data = tmp_path / "assets", tmp_path / "datasets"
    shutil.copytree(REPO / "assets", assets)
    shutil.copytree(REPO / "datasets", data)
    permissive_gates(assets)
    with serve_webhook() as (url, hook):
        env = {**os.environ, "LLMOPS_ASSETS_DIR": str(assets), "LLMOPS_DATASETS_DIR": str(data),
               "LLMOPS_SENSOR_INTERVAL_S": "1", "LLMOPS_ALERT_WEBHOOK": url,
               "LLMOPS_EVAL_LIMIT": "6", "LLMOPS_SERVE_TOKEN": SERVE_TOKEN,
               "DAGSTER_TELEMETRY_DISABLED": "1"}
        for name in ("LLMOPS_ASSETS_DIR", "LLMOPS_DATASETS_DIR", "LLMOPS_EVAL_LIMIT"):
            monkeypatch.setenv(name, env[name])  # the same for the by-hand run below
        dev = DagsterDev(env, tmp_path / "dagster-dev.log")
        try:
            dev.wait(lambda: _answers(dev.port), "the webserver", timeout_s=180)
            with dg.DagsterInstance.get() as instance:
                _quiet_first_ticks(dev, instance, server)
                _materialize_by_hand(instance)
                _prompt_edit(dev, instance, server, assets, isolated_home)
                _dataset_edit(dev, instance, data)
                alert = dev.wait(lambda: next((a for a in hook.received
                                               if a["kind"] == "asset_check_failed"), None),
                                 "the failed-check alert", timeout_s=60)
                # Only the two file sensors launched runs (beside the one by hand): no surprise
                # run from the eager summary condition, the retraining sensor or the schedule.
                sensors = {r.tags.get("dagster/sensor_name") for r in instance.get_runs()}
                assert sensors == {None, "prompt_change_sensor", "dataset_change_sensor"}
        finally:
            dev.stop()
    assert alert["details"]["check"] == "recall_at_5_above_gate"
    assert alert["details"]["asset"] == "retrieval_evaluation" and alert["details"]["blocking"] is False
    text = json.dumps(hook.received)
    assert "test-key-not-secret" not in text and SERVE_TOKEN not in text
    assert not [a for a in hook.received if a["kind"] == "run_failure"]


def _answers(port: int) -> bool:
    try:
        return bool(graphql(port, "{ version }")["data"]["version"])
    except (OSError, KeyError, TypeError):
        return False


def _quiet_first_ticks(dev: DagsterDev, instance: dg.DagsterInstance, server) -> None:
    """Nothing is materialized and LLMOPS_PROVIDER=openai: each file sensor's first tick records
    its cursor and launches nothing, so no call reaches the (paid) endpoint."""
    dev.wait(lambda: all(cursors(instance).get(n) for n in ("prompt_change_sensor",
                                                            "dataset_change_sensor")),
             "the file sensors' first ticks", timeout_s=120)
    time.sleep(3)  # a few more ticks: still nothing
    assert list(instance.get_runs()) == [], dev.tail()
    assert sum(server.counts.values()) == 0, server.counts


def _materialize_by_hand(instance: dg.DagsterInstance) -> None:
    """What a user does from the UI ("Materialize all" but the nightly re-evaluation)."""
    from llmops_pipelines.definitions import defs

    result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            instance=instance, selection=dg.AssetSelection.all()
                            - dg.AssetSelection.assets("nightly_reevaluation"))
    assert result.success
    assert {"curated_qa", "rag_index", "finetuned_model", "evaluation_rows",
            "promotion_decision"} <= materialized_in(instance, result.run_id)


def _prompt_edit(dev: DagsterDev, instance: dg.DagsterInstance, server, assets: Path,
                 home: Path) -> None:
    before = server.counts["chat"]
    prompt = assets / "prompts" / "friendly_detailed.prompty"
    prompt.write_text(prompt.read_text(encoding="utf-8").replace("system:", "system:\nBe brief.", 1),
                      encoding="utf-8")
    [run] = dev.wait(lambda: finished(instance, "prompt_change_sensor", 1), "the prompt run")
    assert run.status == dg.DagsterRunStatus.SUCCESS, dev.tail()
    assert run.tags["llmops/why"].endswith("prompts/friendly_detailed.prompty")
    done = materialized_in(instance, run.run_id)
    assert {"candidates", "evaluation_rows", "evaluation_summary", "promotion_decision"} <= done
    assert not done & {"curated_qa", "rag_index", "finetune_training_file", "finetuned_model"}
    rows = pd.read_parquet(home / "tables" / "evaluation_rows.parquet")
    changed = rows["candidate_id"].str.startswith("friendly_detailed@")
    assert 0 < changed.sum() < len(rows)
    # Only the edited variant's rows were answered again, its conversations' last turns too:
    # one chat call each (the conversations' queries are concat: no rewrite call).
    assert "conversation_evaluation" in done
    conversations = pd.read_parquet(home / "tables" / "conversation_evaluation.parquet")
    replayed = conversations["candidate_id"].str.startswith("friendly_detailed@")
    assert 0 < replayed.sum() < len(conversations)
    assert server.counts["chat"] - before == changed.sum() + replayed.sum()


def _dataset_edit(dev: DagsterDev, instance: dg.DagsterInstance, data: Path) -> None:
    doc = data / "docs" / "warranty-policy.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "\n## Transfers\n\nThe warranty moves "
                   "with the bike to its next owner.\n", encoding="utf-8")
    [run] = dev.wait(lambda: finished(instance, "dataset_change_sensor", 1), "the data run")
    assert run.status == dg.DagsterRunStatus.SUCCESS, dev.tail()
    assert "docs/warranty-policy.md" in run.tags["llmops/why"]
    assert {"curated_documents", "curated_qa", "rag_chunks", "rag_index", "evaluation_rows",
            "evaluation_summary", "promotion_decision"} <= materialized_in(instance, run.run_id)
