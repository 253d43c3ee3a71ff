"""The rag group in real Dagster: chunks, incremental index, retrieval evaluation, asset checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from llmops_pipelines.definitions import defs
from llmops_pipelines.hashing import content_hash

REPO = Path(__file__).resolve().parents[2]
RAG = dg.AssetSelection.groups("rag")
MANUALS = {
    "tent": "# Tent\n\n## Setup\n\nPitch the tent on level ground and clip the rainfly.\n\n"
            "## Care\n\nDry the tent fabric before you pack it away.",
    "stove": "# Stove\n\n## Fuel\n\nThe burner takes a screw-on butane canister.\n\n"
             "## Cleaning\n\nWipe the burner head once it is cold.",
    "lamp": "# Lamp\n\n## Battery\n\nCharge the headlamp battery over USB-C for three hours.\n\n"
            "## Modes\n\nRed night mode keeps your night vision.",
}
QUESTIONS = [("q1", "How do I pitch the tent and its rainfly?", "tent"),
             ("q2", "Which canister does the stove burner take?", "stove"),
             ("q3", "How long does the headlamp battery take to charge?", "lamp"),
             ("q4", "Should the tent fabric be dry before packing?", "tent")]


def write_curated(home: Path, manuals: dict[str, str], questions=QUESTIONS) -> None:
    """Curated tables as curation writes them, so the rag group runs on its own."""
    tables = home / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"doc_id": d, "title": t.split("\n", 1)[0][2:], "text": t,
                   "source_path": f"docs/{d}.md", "split": "train", "n_chars": len(t),
                   "content_hash": content_hash(t)} for d, t in manuals.items()]
                 ).to_parquet(tables / "curated_documents.parquet", index=False)
    pd.DataFrame([{"qa_id": q, "question": text, "ground_truth": "-", "doc_id": doc,
                   "split": "eval", "source_path": "qa.jsonl", "line": n, "origin": "file"}
                  for n, (q, text, doc) in enumerate(questions, start=1)]
                 ).to_parquet(tables / "curated_qa.parquet", index=False)


def materialize_rag() -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=RAG,
                          resources=defs.resources, instance=dg.DagsterInstance.ephemeral())


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def test_rag_group_syncs_incrementally_and_evaluates_retrieval(openai_env, isolated_home) -> None:
    server = openai_env
    write_curated(isolated_home, MANUALS)
    first = materialize_rag()
    assert first.success
    assert checks(first) == {"index_holds_exactly_the_chunks": True,
                             "sample_queries_return_results": True,
                             "recall_at_5_above_gate": True}
    index = metadata(first, "rag_index")
    chunks = pd.read_parquet(isolated_home / "tables" / "rag_chunks.parquet")
    assert index["count"] == index["added"] == len(chunks) == 6 and index["embed_calls"] == 1

    summary = pd.read_parquet(isolated_home / "tables" / "retrieval_evaluation.parquet")
    assert set(summary["mode"]) == {"vector", "bm25", "hybrid"}
    assert set(summary["k"]) == {1, 3, 5, 10} and set(summary["questions"]) == {4}
    assert set(summary["index_version"]) == {index["index_version"]}
    evaluation = metadata(first, "retrieval_evaluation")
    assert evaluation["recall@5 bm25"] == 1.0 and evaluation["configured_mode"] == "vector"
    assert "hit@5 vector" in evaluation["hit_rate_by_document"]

    # Nothing changed: the sync embeds nothing, and the queries (the eval questions and the
    # check's sample) were embedded by the first run: their vectors come from the call cache.
    server.reset()
    again = materialize_rag()
    assert again.success and all(checks(again).values())
    assert metadata(again, "rag_index")["embed_calls"] == 0
    assert metadata(again, "rag_index")["index_version"] == index["index_version"]
    assert server.counts["embeddings"] == 0

    # The lamp manual removed: its chunks leave the index, nothing is embedded.
    server.reset()
    write_curated(isolated_home, {d: t for d, t in MANUALS.items() if d != "lamp"}, QUESTIONS[:2])
    third = materialize_rag()
    assert third.success and all(checks(third).values())
    meta = metadata(third, "rag_index")
    assert (meta["deleted"], meta["added"], meta["embed_calls"], meta["count"]) == (2, 0, 0, 4)


def test_recall_gate_check_fails_below_the_gate(openai_env, isolated_home, tmp_path,
                                                monkeypatch) -> None:
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    gates = assets / "gates.yaml"
    gates.write_text(gates.read_text().replace("recall_at_5: {min: 0.70}", "recall_at_5: {min: 1.0}"))
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    monkeypatch.setenv("LLMOPS_RETRIEVAL", "bm25")
    # A question whose source document is not in the index can never be retrieved.
    write_curated(isolated_home, MANUALS, [*QUESTIONS, ("q5", "Where is the kayak paddle?", "kayak")])
    result = materialize_rag()
    assert result.success  # a failed non-blocking check is reported, the run goes on
    assert checks(result)["recall_at_5_above_gate"] is False
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "recall_at_5_above_gate"]
    values = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    assert values["recall@5"] == 0.8 and values["gate"] == 1.0 and values["mode"] == "bm25"


def test_questions_without_a_source_fail_the_gate_with_the_fix(openai_env, isolated_home) -> None:
    write_curated(isolated_home, MANUALS, [("q1", "How do I pitch the tent?", None)])
    result = materialize_rag()
    assert result.success
    summary = pd.read_parquet(isolated_home / "tables" / "retrieval_evaluation.parquet")
    assert set(summary["questions"]) == {0} and summary["recall"].isna().all()
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "recall_at_5_above_gate"]
    assert evaluation.passed is False and "add `source`" in (evaluation.description or "")
