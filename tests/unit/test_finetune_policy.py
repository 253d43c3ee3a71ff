"""The fine-tune policy: what counts as drift of the training file, and when it starts a job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_pipelines.automation import triggers
from llmops_pipelines.finetune import policy


def _write(path: Path, examples: list[str]) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": e}]}) + "\n"
                            for e in examples))
    return path


def test_changed_and_added_examples_count_once_each(tmp_path: Path) -> None:
    trained = policy.example_hashes(_write(tmp_path / "a.jsonl", ["a", "b", "c", "d"]))
    now = policy.example_hashes(_write(tmp_path / "b.jsonl", ["a", "b", "C", "d", "e"]))
    moved = policy.drift(now, trained)
    assert (moved.changed, moved.total) == (2, 5) and moved.share == pytest.approx(0.4)
    assert moved.describe() == "2 of 5 training examples changed or added (40.0%)"
    # A removed example is not a reason to train: what the model knows is still right.
    assert policy.drift(now[:2], trained).changed == 0
    # Duplicates are a multiset: a second copy of a trained example is a new example.
    assert policy.drift([trained[0]] * 2, trained).changed == 1


def test_threshold_any_change_locally_and_growth_remotely_unless_set() -> None:
    assert policy.threshold("local", None, 0.2) == 0.0
    assert policy.threshold("openai", None, 0.2) == 0.2
    assert policy.threshold("openai", 0.05, 0.2) == 0.05
    assert policy.should_retrain(0.01, 0.0) and not policy.should_retrain(0.0, 0.0)
    assert policy.should_retrain(0.2, 0.2) and not policy.should_retrain(0.19, 0.2)


def test_the_record_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    assert policy.load_record(tmp_path) is None
    policy.save_record(tmp_path, {"model_id": "ft:x"}, ["h1", "h2"])
    assert policy.load_record(tmp_path) == {"value": {"model_id": "ft:x"}, "examples": ["h1", "h2"]}
    assert not list(tmp_path.glob("*.tmp"))


def test_the_sensor_reads_the_same_rule_from_the_training_file_metadata() -> None:
    assert triggers.training_drift({"drift_share": 0.1, "retrain_threshold": 0.2}) is None
    why = triggers.training_drift({"drift_share": 0.25, "retrain_threshold": 0.2,
                                   "changed_examples": 5})
    assert why == "training file drifted: 5 examples changed or added (25.0%, retrain share 20%)"
    assert triggers.training_drift({"retrain_threshold": 0.2}) is None  # no model yet
