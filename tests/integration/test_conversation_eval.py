"""Multi-turn evaluation through real Dagster against the local OpenAI-compatible test server."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.definitions import defs
from tests.integration.test_lifecycle import table

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "conversations"


def materialize(selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(), selection=selection)


def conversation_eval() -> dg.AssetSelection:
    """conversation_evaluation and what it needs (no promotion, serving, monitoring)."""
    selection = dg.AssetSelection.assets("conversation_evaluation").upstream()
    return selection.required_multi_asset_neighbors()


def test_one_scored_row_per_conversation_and_candidate(openai_env, isolated_home: Path) -> None:
    result = materialize(conversation_eval())
    assert result.success
    rows = table(isolated_home, "conversation_evaluation")
    conversations = table(isolated_home, "curated_conversations")
    candidates = table(isolated_home, "candidates")
    assert len(conversations) == 10
    assert len(rows) == len(conversations) * len(candidates)
    assert set(zip(rows["conversation_id"], rows["candidate_id"], strict=True)) == {
        (c, k) for c in conversations["conversation_id"] for k in candidates["candidate_id"]}
    for metric in ("quality", "harm", "groundedness", "cost_usd", "latency_ms_per_token",
                   "context_retention"):
        assert rows[metric].notna().all(), metric
    # Retention is computed from the answer and the facts, not constant.
    assert rows["context_retention"].nunique() > 1
    assert rows["quality"].nunique() > 1
    assert set(rows["retention_method"]) == {"local:token-overlap(retention facts)"}
    # The query carries the earlier user turn (concat): the follow-up alone names no product.
    first = rows[rows["conversation_id"] == "c01-fold-charge"].iloc[0]
    assert first["query"].startswith("Which of your e-bikes folds?")
    assert first["question"] == "How long does it take to charge?"
    assert (rows["turns"] >= 3).all()
    summary = result.asset_materializations_for_node("conversation_evaluation")[0].metadata
    assert "per_candidate" in summary and "summary" in summary


def test_malformed_conversations_are_rejected_with_file_and_line(
        isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(REPO / "datasets", folder)
    shutil.copy(DATA / "malformed.jsonl", folder / "conversations.jsonl")
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(folder))
    result = materialize(dg.AssetSelection.assets("curated_conversations", "conversation_rejects"))
    assert result.success
    kept = table(isolated_home, "curated_conversations")
    rejects: pd.DataFrame = table(isolated_home, "conversation_rejects")
    assert kept["conversation_id"].tolist() == ["ok-1"]
    assert dict(zip(rejects["line"], rejects["rule"], strict=True)) == {
        2: "invalid_json", 3: "missing_field", 4: "wrong_role", 5: "last_turn_not_user",
        6: "duplicate_conversation_id"}
    path = str(folder / "conversations.jsonl")
    assert (rejects["source_path"] == path).all()
    meta = result.asset_materializations_for_node("curated_conversations")
    errors = next(m.metadata["errors"].value for m in meta if "errors" in m.metadata)
    assert f"{path}:6: duplicate_conversation_id" in errors


def test_a_dataset_folder_without_conversations_evaluates_none(
        openai_env, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(REPO / "datasets", folder)
    (folder / "conversations.jsonl").unlink()
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(folder))
    assert materialize(conversation_eval()).success
    assert table(isolated_home, "curated_conversations").empty
    assert table(isolated_home, "conversation_evaluation").empty
