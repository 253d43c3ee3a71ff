"""Pure automation logic: fingerprints and cursors, trigger targets, alert payloads and delivery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmops_pipelines.automation import alerts, triggers
from llmops_pipelines.automation.config import run_spend
from llmops_pipelines.automation.watch import Snapshot, fingerprint
from llmops_pipelines.errors import SettingsError
from tests.support.webhook import SECRET_ENV


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_fingerprint_sees_content_not_hidden_files_or_touches(tmp_path: Path) -> None:
    tmp_path = tmp_path / "datasets"  # tmp_path itself holds the test's LLMOPS_HOME
    a = write(tmp_path / "docs" / "a.md", "# A\n")
    write(tmp_path / "qa.jsonl", "{}\n")
    write(tmp_path / "docs" / ".a.md.swp", "editor state")
    first = fingerprint(tmp_path)
    assert sorted(first) == ["docs/a.md", "qa.jsonl"]
    a.touch()
    assert fingerprint(tmp_path) == first
    a.write_text("# A, edited\n", encoding="utf-8")
    assert fingerprint(tmp_path)["docs/a.md"] != first["docs/a.md"]


def test_fingerprint_of_named_entries_only(tmp_path: Path) -> None:
    write(tmp_path / "prompts" / "p.prompty", "x")
    write(tmp_path / "gates.yaml", "y")
    write(tmp_path / "other" / "z.txt", "z")
    files = fingerprint(tmp_path, ["prompts", "gates.yaml", "pricing.yaml"])
    assert sorted(files) == ["gates.yaml", "prompts/p.prompty"]


def test_missing_folder_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LLMOPS_DATASETS_DIR=.*not a directory"):
        fingerprint(tmp_path / "nope", variable="LLMOPS_DATASETS_DIR")


def test_snapshot_diff_cursor_roundtrip_and_run_keys() -> None:
    before = Snapshot({"a": "1", "b": "2"}).next_of(None)
    now = Snapshot({"a": "1", "b": "3", "c": "4"})
    assert now.changed_since(before) == ["b", "c"]
    assert Snapshot({"a": "1"}).changed_since(None) == ["a"]
    assert Snapshot({"a": "1"}).changed_since(Snapshot({"a": "1", "gone": "x"})) == ["gone"]
    restored = Snapshot.from_cursor(before.to_cursor())
    assert restored == before and restored.hash == before.hash and restored.seq == 1
    assert Snapshot.from_cursor(None) is None and Snapshot.from_cursor("not json") is None
    # Reverting to old content is a new change with a new run key; the same tick is not.
    reverted = Snapshot(before.files).next_of(now.next_of(before))
    assert reverted.hash == before.hash and reverted.run_key != before.run_key
    assert now.next_of(before).run_key == now.next_of(before).run_key


def test_asset_file_targets_are_what_reads_the_file() -> None:
    assert triggers.targets_for_asset_files(["gates.yaml"]) == ["promotion_decision", "champion"]
    assert triggers.targets_for_asset_files(["pricing.yaml"]) == [
        "evaluation_rows", "conversation_evaluation", "evaluation_summary", "promotion_decision",
        "champion", "evaluation_report"]
    assert triggers.targets_for_asset_files(["prompts/a.prompty", "gates.yaml"]) == [
        "candidates", "evaluation_rows", "conversation_evaluation", "evaluation_summary",
        "promotion_decision", "champion", "evaluation_report"]
    assert triggers.targets_for_asset_files(["generators/synthetic_qa.prompty"]) == []
    assert triggers.targets_for_asset_files(["README.md"]) == []


def test_train_growth_gate() -> None:
    assert triggers.split_rows({"train": 10, "eval": 5}) == 10
    assert triggers.split_rows({"eval": 5}) == 0
    assert triggers.split_rows(None) is None
    assert triggers.train_grew(10, 12, 0.2) and not triggers.train_grew(10, 11, 0.2)
    assert triggers.train_grew(0, 1, 0.2) and not triggers.train_grew(None, 5, 0.2)


def test_run_tags_are_short() -> None:
    tags = triggers.run_tags("data", ["x" * 500])
    assert tags["llmops/trigger"] == "data" and len(tags["llmops/why"]) == 200


def test_alert_payload_never_carries_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    payload = alerts.build_alert(
        "run_failure", "run failed with key sk-live-abcdefghijklmnop",
        {"message": "401 Incorrect API key provided: sk-live-abcdefghijklmnop",
         "headers": "Authorization: Bearer serve-tok-123456",
         "url": "postgresql://user:hunter2@db/x", "api_key": "anything", "token": "t",
         "steps": [{"error": "token serve-tok-123456 rejected"}], "max_tokens": 2000, "rows": 3})
    text = json.dumps(payload)
    for name in ("OPENAI_API_KEY", "LLMOPS_SERVE_TOKEN", "LLMOPS_ALERT_WEBHOOK"):
        assert SECRET_ENV[name] not in text, name
    assert "hunter2" not in text and "api_key" not in payload["details"]
    assert "token" not in payload["details"]
    # Non-secret values survive, numbers stay numbers.
    assert payload["details"]["max_tokens"] == 2000 and payload["details"]["rows"] == 3
    assert payload["kind"] == "run_failure" and payload["text"].startswith("[llmops] run failed")
    assert alerts.REDACTED in payload["details"]["message"]


def _assets(tmp_path: Path, experiments: str | None = None) -> dict[str, str]:
    """A copy of the project's assets (optionally another experiments.yaml) as the env names it."""
    target = tmp_path / "assets"
    shutil.copytree(Path(__file__).resolve().parents[2] / "assets", target)
    if experiments is not None:
        (target / "experiments.yaml").write_text(experiments, encoding="utf-8")
    return {"LLMOPS_ASSETS_DIR": str(target)}


def test_a_run_is_free_only_on_the_embedded_model_everywhere(tmp_path: Path) -> None:
    env = _assets(tmp_path)
    spend = run_spend(env)  # LLMOPS_PROVIDER unset: local; the default experiment: baseline
    assert spend.free and spend.experiment == "baseline"
    assert not run_spend({**env, "LLMOPS_PROVIDER": "openai"}).free  # no key needed to say so
    three = run_spend({**env, "LLMOPS_EXPERIMENT": "three-models"})
    assert three.paid == ("endpoint 'openai'",)  # models and judge there; embedding local
    assert run_spend({**env, "LLMOPS_EXPERIMENT": "local-vs-ollama"}).paid == ("endpoint 'ollama'",)


def test_an_experiment_that_does_not_load_is_not_free(tmp_path: Path) -> None:
    env = _assets(tmp_path)
    unknown = run_spend({**env, "LLMOPS_EXPERIMENT": "nope"})
    assert not unknown.free and "no experiment 'nope'" in unknown.describe()
    broken = run_spend(_assets(tmp_path / "b", "experiments: [not, a, mapping]\n"))
    assert not broken.free and "does not load" in broken.describe()
