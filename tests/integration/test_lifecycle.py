"""The whole lifecycle materialized by real Dagster against the local OpenAI-compatible server."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs

REPO = Path(__file__).resolve().parents[2]
GROUPS = {"curation", "ideation", "rag", "finetune", "evaluation", "promotion", "monitoring"}


def materialize() -> dg.ExecuteInProcessResult:
    # Checks run too (a red gate check does not fail the run: the tests read the decision). The
    # nightly re-evaluation asks the provider again by design (test_nightly_reevaluation.py), as
    # in `make demo`.
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(),
                          selection=dg.AssetSelection.all() - dg.AssetSelection.assets(
                              "nightly_reevaluation"))


def table(home: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(home / "tables" / f"{name}.parquet")


def test_every_asset_belongs_to_one_lifecycle_group() -> None:
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == GROUPS


def lenient_gates(tmp_path: Path, monkeypatch) -> None:
    """The test server's answers are extractive, not good: gate them at a level they reach."""
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    gates = (assets / "gates.yaml").read_text().replace("quality:               {min: 0.20}",
                                                        "quality:               {min: 0.05}")
    (assets / "gates.yaml").write_text(gates)
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))


def test_whole_lifecycle_against_test_server(openai_env, isolated_home, capsys, tmp_path,
                                             monkeypatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    result = materialize()
    assert result.success

    qa = table(isolated_home, "curated_qa")
    rows = table(isolated_home, "evaluation_rows")
    summary = table(isolated_home, "evaluation_summary")
    eval_questions = int((qa["split"] == "eval").sum())
    # 2 prompt variants x (base model + the fine-tuned one) = 4 candidates.
    assert summary["candidate_id"].nunique() == 4
    assert len(rows) == eval_questions * 4 and rows["row_id"].is_unique
    assert rows["model"].str.startswith("ft:gpt-4o-mini").sum() == eval_questions * 2

    # All five metrics were computed for real on every answered row.
    assert rows["error"].isna().all()
    for column in ("quality", "groundedness", "harm"):
        assert rows[column].between(0, 1).all(), column
    assert (rows["cost_usd"] > 0).all() and (rows["ms_per_output_token"] > 0).all()
    assert rows["harm_source"].str.startswith("openai:").all()
    # The test server answers with the first retrieved sentence: mostly grounded.
    assert summary["groundedness"].min() > 0.5
    # Cost is tokens x price: recompute one row from pricing.yaml's gpt-4o-mini prices.
    one = rows.iloc[0]
    assert math.isclose(one.cost_usd, (one.input_tokens * 0.15 + one.output_tokens * 0.60) / 1e6)

    # One chat call per row (the prompt playground's answers are cached under the same keys, so
    # they are not paid twice), one fine-tune job, and a promotion in the registry.
    # ... and one per conversation x candidate (conversation_evaluation, concat: no rewrite call).
    conversations = table(isolated_home, "conversation_evaluation")
    assert server.counts["chat"] == len(rows) + len(conversations)
    playground = table(isolated_home, "prompt_playground")
    assert len(playground) == 2 * min(5, eval_questions)
    assert set(playground["qa_id"]) <= set(rows["qa_id"])
    assert server.counts["ft_create"] == 1
    decision = json.loads((isolated_home / "tables" / "promotion_decision.json").read_text())
    assert decision["promoted"] is True
    champion = json.loads((isolated_home / "tables" / "champion.json").read_text())
    assert champion["candidate_id"] == decision["candidate_id"] and champion["changed"]

    assert llmops_main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["champion"]["id"] == decision["candidate_id"]
    assert len(report["candidates"]) == 4
    first = report["candidates"][0]
    assert set(first) == {"id", "prompt", "model", "metrics", "rows"}
    assert set(first["metrics"]) == {"quality", "groundedness", "harm_rate", "cost_usd",
                                     "latency_ms_per_token", "coverage"}
    assert set(report["versions"]) == {"data", "index", "prompts"}
    assert all(report["versions"].values())


def test_second_run_with_nothing_changed_makes_no_chat_call(openai_env, isolated_home, tmp_path,
                                                             monkeypatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)  # a champion is promoted on the first run
    assert materialize().success
    first_rows = table(isolated_home, "evaluation_rows")
    server.reset()
    assert materialize().success
    assert server.counts["chat"] == 0
    assert server.counts["ft_create"] == 0 and server.counts["files"] == 0
    again = table(isolated_home, "evaluation_rows")
    assert again["cached"].all()
    pd.testing.assert_series_equal(first_rows["answer"], again["answer"])


@pytest.mark.slow
def test_whole_lifecycle_on_the_embedded_default(isolated_home, monkeypatch) -> None:
    """What `make demo` runs, on the real local models (fine-tune off, two questions: fast)."""
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "2")
    assert materialize().success
    rows = table(isolated_home, "evaluation_rows")
    assert len(rows) == 2 * 2 and rows["error"].isna().all()
    assert rows["answer"].str.len().gt(0).all()
    assert rows["harm_source"].eq("local-lexicon-v1").all()
    # The local model is priced at 0 in pricing.yaml: a real 0 from real token counts.
    assert (rows["output_tokens"] > 0).all() and (rows["cost_usd"] == 0.0).all()
    assert (rows["ms_per_output_token"] > 0).all()
    assert rows["groundedness"].between(0, 1).all() and rows["quality"].between(0, 1).all()
    decision = json.loads((isolated_home / "tables" / "promotion_decision.json").read_text())
    assert decision["reasons"]
