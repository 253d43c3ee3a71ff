"""The prompt playground and synthetic Q&A through real Dagster, against the test server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from llmops_pipelines.curation import curate
from llmops_pipelines.definitions import resources
from llmops_pipelines.defs import curation as curation_defs
from llmops_pipelines.defs import ideation as ideation_defs
from llmops_pipelines.defs import rag as rag_defs
from llmops_pipelines.prompts import load_prompts
from tests.conftest import REPO

RESOURCES = resources()


def _playground_run(run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    assets = [curation_defs.curated, rag_defs.rag_chunks, rag_defs.rag_index,
              ideation_defs.prompt_playground]
    return dg.materialize(assets, resources=RESOURCES, run_config=run_config,
                          instance=dg.DagsterInstance.ephemeral())


def test_playground_answers_eval_questions_with_every_variant(openai_env, isolated_home) -> None:
    server = openai_env
    result = _playground_run()
    assert result.success
    rows = pd.read_parquet(isolated_home / "tables" / "prompt_playground.parquet")
    variants = {p.name for p in load_prompts(REPO / "assets" / "prompts")}
    assert set(rows["prompt_name"]) == variants and len(variants) >= 2
    assert rows["qa_id"].nunique() == 5 and len(rows) == 5 * len(variants)
    qa = pd.read_parquet(isolated_home / "tables" / "curated_qa.parquet")
    first_eval = sorted(qa.loc[qa["split"] == "eval", "qa_id"])[:5]
    assert sorted(rows["qa_id"].unique()) == first_eval
    assert rows["answer"].str.len().gt(0).all() and rows["error"].isna().all()
    assert not rows["cached"].any()
    assert server.counts["chat"] == len(rows)

    metadata = result.asset_materializations_for_node("prompt_playground")[0].metadata
    table = metadata["side_by_side"].value
    header = table.splitlines()[0]
    assert all(name in header for name in variants) and "ground_truth" in header
    assert len(table.splitlines()) == 2 + 5  # header, rule, one line per question
    # Each answer's token F1 against the ground truth: the score that needs no call.
    assert all(f"{name} F1" in header for name in variants)
    for name in variants:
        assert 0.0 <= metadata[f"{name}/token_f1"].value <= 1.0

    # Nothing changed: every answer comes from the cache evaluation shares.
    server.reset()
    assert _playground_run().success
    assert server.counts["chat"] == 0
    again = pd.read_parquet(isolated_home / "tables" / "prompt_playground.parquet")
    assert again["cached"].all()
    pd.testing.assert_series_equal(rows["answer"], again["answer"])


def test_playground_sample_size_is_run_config(openai_env, isolated_home) -> None:
    config = {"ops": {"prompt_playground": {"config": {"samples": 2}}}}
    assert _playground_run(config).success
    rows = pd.read_parquet(isolated_home / "tables" / "prompt_playground.parquet")
    assert rows["qa_id"].nunique() == 2


def test_synthetic_qa_when_switched_on(openai_env, isolated_home: Path, monkeypatch) -> None:
    server = openai_env
    monkeypatch.setenv("LLMOPS_SYNTHETIC_QA", "1")
    assets = [curation_defs.curated, *dg.load_asset_checks_from_modules([curation_defs])]
    result = dg.materialize(assets, resources=RESOURCES, instance=dg.DagsterInstance.ephemeral())
    assert result.success  # the leakage check ran too, and passed
    qa = pd.read_parquet(isolated_home / "tables" / "curated_qa.parquet")
    docs = pd.read_parquet(isolated_home / "tables" / "curated_documents.parquet")
    synthetic = qa[qa["origin"] == "synthetic"]
    offered = docs[docs["split"] != "test"]
    # One passage per document outside test, one question each; test documents are never asked.
    assert server.counts["chat"] == len(offered)
    assert len(synthetic) == len(offered)
    assert "test" not in set(synthetic["split"])
    assert (synthetic["split"] == synthetic["doc_id"].map(docs.set_index("doc_id")["split"])).all()
    assert synthetic["question"].str.startswith("What does the article say about").all()
    assert synthetic["ground_truth"].notna().all()
    hand_written = curate(REPO / "datasets").qa
    assert (qa["origin"] == "file").sum() == (hand_written["origin"] == "file").sum()

    server.reset()
    version = result.asset_materializations_for_node("curated")[0].metadata["data_version"].value
    again = dg.materialize(assets, resources=RESOURCES, instance=dg.DagsterInstance.ephemeral())
    assert server.counts["chat"] == 0  # cached: same answers, same data version
    assert again.asset_materializations_for_node("curated")[0].metadata["data_version"].value == version


def test_synthetic_qa_is_off_by_default(openai_env, isolated_home: Path) -> None:
    assert dg.materialize([curation_defs.curated], resources=RESOURCES,
                          instance=dg.DagsterInstance.ephemeral()).success
    qa = pd.read_parquet(isolated_home / "tables" / "curated_qa.parquet")
    assert set(qa["origin"]) == {"file", "faq"}
    assert openai_env.counts["chat"] == 0
