"""One materialization, three endpoints: the embedded SmolLM2 and two OpenAI-compatible servers.

Each server has its own key (from its own variable) and receives only its own models' calls;
the local model is never asked twice at once; each row is priced at its endpoint's prices.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from llmops_pipelines.definitions import defs, resources
from tests.conftest import REPO
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow  # three answers from the real local model

EVALUATION = ["curated_documents", "curated_qa", "curation_rejects", "rag_chunks", "rag_index",
              "finetune_training_file", "finetuned_model", "candidates", "evaluation_rows"]
PRICES = {"model-a": (1.0, 2.0), "model-b": (3.0, 4.0), "a/shared-model": (5.0, 6.0),
          "b/shared-model": (7.0, 8.0)}


def write_assets(folder: Path, a: FakeOpenAIServer, b: FakeOpenAIServer) -> Path:
    assets = folder / "assets"
    shutil.copytree(REPO / "assets", assets)
    (assets / "models.yaml").write_text(yaml.safe_dump({
        "endpoints": {
            "local": {"kind": "local", "concurrency": 1},
            "a": {"kind": "openai", "base_url": a.base_url, "api_key_env": "KEY_A",
                  "concurrency": 4, "max_retries": 0},
            "b": {"kind": "openai", "base_url": b.base_url, "api_key_env": "KEY_B",
                  "concurrency": 4, "max_retries": 0},
        },
        "models": [
            {"name": "smollm2-135m-instruct", "endpoint": "local", "roles": ["chat"]},
            {"name": "all-minilm-l6-v2-int8", "endpoint": "local", "roles": ["embedding"]},
            {"name": "model-a", "endpoint": "a", "roles": ["chat"]},
            {"name": "shared-model", "endpoint": "a", "roles": ["chat"]},
            {"name": "model-b", "endpoint": "b", "roles": ["chat"]},
            {"name": "shared-model", "endpoint": "b", "roles": ["chat"]},
        ]}))
    (assets / "experiments.yaml").write_text(yaml.safe_dump({
        "default": "mixed",
        "experiments": {"mixed": {
            "prompts": ["grounded_concise"],
            "models": ["local/smollm2-135m-instruct", "a/model-a", "b/model-b",
                       "a/shared-model", "b/shared-model"],
            "embedding": "local/all-minilm-l6-v2-int8"}}}))
    pricing = yaml.safe_load((assets / "pricing.yaml").read_text())
    pricing["models"].update({name: {"input": i, "output": o} for name, (i, o) in PRICES.items()})
    (assets / "pricing.yaml").write_text(yaml.safe_dump(pricing))
    return assets


def chat_models(server: FakeOpenAIServer) -> list[str]:
    return sorted(body["model"] for route, body in server.requests if route == "chat")


def test_one_run_three_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key="key-a", latency_s=0.05) as a, \
            FakeOpenAIServer(api_key="key-b", latency_s=0.05) as b:
        monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(write_assets(tmp_path, a, b)))
        monkeypatch.setenv("KEY_A", "key-a")
        monkeypatch.setenv("KEY_B", "key-b")
        monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "3")
        monkeypatch.setenv("LLMOPS_FINETUNE", "off")
        result = dg.materialize(defs.assets, selection=EVALUATION, resources=resources())
        assert result.success
        rows = result.output_for_node("evaluation_rows")

        # Every row x candidate once, all answered.
        assert len(rows) == 15 and rows["row_id"].is_unique
        assert rows.groupby("candidate_id")["qa_id"].nunique().eq(3).all()
        assert rows["error"].isna().all(), rows["error"].dropna().tolist()
        by_model = rows.groupby(["endpoint", "model"]).size().to_dict()
        assert by_model == {("local", "smollm2-135m-instruct"): 3, ("a", "model-a"): 3,
                            ("a", "shared-model"): 3, ("b", "model-b"): 3,
                            ("b", "shared-model"): 3}
        # Ids name the endpoint only for the model two endpoints serve.
        ids = set(rows["candidate_id"])
        assert {i.split("#")[0] for i in ids} == {
            "grounded_concise@smollm2-135m-instruct", "grounded_concise@model-a",
            "grounded_concise@model-b", "grounded_concise@a/shared-model",
            "grounded_concise@b/shared-model"}

        # Each server got only its own models' chat calls, one per row, and no embeddings
        # (MiniLM embeds locally); each accepted only its own key (a wrong one would be 401).
        assert chat_models(a) == ["model-a"] * 3 + ["shared-model"] * 3
        assert chat_models(b) == ["model-b"] * 3 + ["shared-model"] * 3
        for server in (a, b):
            assert server.counts["embeddings"] == 0 and server.counts["moderations"] == 0
            assert server.faults.get("401", 0) == 0

        # Costs at each endpoint's prices (endpoint/model in pricing.yaml beats the bare name).
        for row in rows.itertuples():
            key = row.model if row.model != "shared-model" else f"{row.endpoint}/shared-model"
            price_in, price_out = PRICES.get(key, (0.0, 0.0))
            expected = (row.input_tokens * price_in + row.output_tokens * price_out) / 1e6
            assert row.cost_usd == pytest.approx(expected), row.candidate_id
            assert row.output_tokens > 0
        remote = rows[rows["endpoint"] != "local"]
        assert (remote["cost_usd"] > 0).all() and (rows.loc[rows["endpoint"] == "local",
                                                             "cost_usd"] == 0).all()

        # The local model answered one call at a time; the run's metadata says so per endpoint.
        materialization = result.asset_materializations_for_node("evaluation_rows")[0]
        endpoints = materialization.metadata["endpoints"].value
        assert endpoints["local"]["chat_calls"] == 3
        assert endpoints["local"]["peak_in_flight"] == 1
        assert endpoints["a"]["candidates"] == 2 and endpoints["b"]["candidates"] == 2
        assert endpoints["a"]["cost_usd"] == pytest.approx(
            rows.loc[rows["endpoint"] == "a", "cost_usd"].sum())
