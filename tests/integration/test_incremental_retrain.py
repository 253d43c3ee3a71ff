"""The fine-tune policy through Dagster and the retraining sensor: same rule in both places."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from llmops_pipelines.automation import triggers
from llmops_pipelines.defs import automation
from tests.integration.test_automation_monitoring import PROBE, REPOSITORY, instance  # noqa: F401
from tests.integration.test_automation_sensors import materialized, present, selection, tick
from tests.integration.test_evaluation_assets import materialize
from tests.integration.test_lifecycle import REPO, lenient_gates
from tests.support.openai_server import FakeOpenAIServer


def _edit_answers(data: Path, count: int) -> None:
    """Rewrite the ground truth of the first `count` Q&A lines (some land in the train split)."""
    lines = [json.loads(line) for line in (data / "qa.jsonl").read_text().splitlines() if line]
    for entry in lines[:count]:
        entry["ground_truth"] += " Ask your dealer for details."
    (data / "qa.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


@pytest.mark.parametrize(("share", "jobs"), [("1.0", 0), ("0.0", 1)],
                         ids=["under-the-share-keeps-the-model", "any-change-retrains"])
def test_a_remote_job_starts_only_when_the_drift_reaches_the_share(
        share: str, jobs: int, openai_env: FakeOpenAIServer, isolated_home: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    data = tmp_path / "datasets"
    shutil.copytree(REPO / "datasets", data)
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(data))
    monkeypatch.setenv("LLMOPS_FINETUNE_RETRAIN_SHARE", share)
    lenient_gates(tmp_path, monkeypatch)
    upstream = dg.AssetSelection.assets("finetuned_model").upstream().required_multi_asset_neighbors()
    assert materialize(upstream).success
    assert server.counts["ft_create"] == 1
    first = json.loads((isolated_home / "tables" / "finetuned_model.json").read_text())
    _edit_answers(data, 30)
    server.reset()
    result = materialize(upstream)
    assert result.success
    assert server.counts["ft_create"] == jobs
    model = json.loads((isolated_home / "tables" / "finetuned_model.json").read_text())
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey("finetuned_model"))
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    if jobs == 0:
        assert model["model_id"] == first["model_id"] and meta["kept"] is True
        assert 0 < meta["drift_share"] < 1.0 and "keeping the current model" in meta["kept_because"]
    else:
        assert model["model_id"] != first["model_id"]


def test_the_sensor_retrains_on_the_training_files_drift_once(instance) -> None:  # noqa: F811
    materialized(instance, *triggers.LINEAGE)
    sensor = automation.retraining_sensor(1, monitoring_key=PROBE)
    materialized(instance, "curated_qa", rows_per_split={"train": 20})
    materialized(instance, "finetune_training_file", drift_share=0.1, retrain_threshold=0.2,
                 changed_examples=2)
    quiet = tick(sensor, instance, None, REPOSITORY)
    assert quiet.run_requests == []  # 10 % < 20 %: the asset would keep the model too
    materialized(instance, "finetune_training_file", drift_share=0.3, retrain_threshold=0.2,
                 changed_examples=6)
    fired = tick(sensor, instance, quiet.cursor, REPOSITORY)
    assert selection(fired) == present(triggers.RETRAIN)
    assert "training file drifted: 6 examples" in fired.run_requests[0].tags["llmops/why"]
    assert tick(sensor, instance, fired.cursor, REPOSITORY).run_requests == []
    materialized(instance, "finetuned_model")  # built after the file: decided
    assert tick(sensor, instance, fired.cursor, REPOSITORY).run_requests == []
