"""Bad days never destroy the last good index (issue 13, finding 1): the sync's shrink guard,
blocking curation checks before rag_index, and serving that keeps answering and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import dagster as dg
import openai
import pandas as pd
import pytest
from starlette.testclient import TestClient

from llmops_pipelines.definitions import defs
from llmops_pipelines.errors import DataError
from llmops_pipelines.providers import make_provider
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.serving.app import create_app
from llmops_pipelines.serving.champion_app import ChampionApp
from llmops_pipelines.serving.production_log import ProductionLog
from llmops_pipelines.settings import Settings
from tests.integration import test_serving
from tests.integration.test_serving import TOKEN, deploy

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
served = test_serving.served  # the fixture: curated data, the index, a champion, `llmops serve`
LONG = "A sentence long enough to pass the minimum document length filter easily."


def chunks(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"chunk_id": f"c{i:03d}", "doc_id": f"d{i}", "title": f"T{i}",
                          "heading": "", "position": 0, "text": f"Chunk number {i} about tents.",
                          "doc_version": "v"} for i in range(n)],
                        columns=["chunk_id", "doc_id", "title", "heading", "position", "text",
                                 "doc_version"])


def open_index() -> ChromaIndex:
    settings = Settings.from_env()
    return ChromaIndex.open(path=str(settings.chroma_dir), embedding_model=settings.embedding_model,
                            embed=make_provider(settings).embed)


def test_sync_refuses_to_empty_or_halve_the_collection(openai_env) -> None:
    index = open_index()
    index.sync(chunks(10))
    with pytest.raises(DataError) as err:
        index.sync(chunks(0), source="/data/typo")
    message = str(err.value)
    assert "/data/typo" in message and "10 of 10" in message
    assert "LLMOPS_INDEX_ALLOW_SHRINK" in message
    with pytest.raises(DataError, match="6 of 10"):
        index.sync(chunks(4), source="/data/small")
    assert index.collection.count() == 10
    # Losing up to the allowed share is an ordinary edit; allowed explicitly, anything goes.
    assert index.sync(chunks(6), source="/data").count == 6
    assert index.sync(chunks(0), source="/data", max_shrink=None).count == 0


def curation_and_rag(raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks],
                          selection=dg.AssetSelection.groups("curation", "rag"),
                          resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=raise_on_error)


def test_empty_datasets_folder_fails_before_rag_index(openai_env, tmp_path, monkeypatch) -> None:
    assert curation_and_rag().success
    before = open_index().collection.count()
    empty = tmp_path / "empty-datasets"
    empty.mkdir()
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(empty))
    result = curation_and_rag(raise_on_error=False)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["has_documents"].passed
    assert str(empty) in checks["has_documents"].description
    assert "0 documents" in checks["has_documents"].description
    assert not result.asset_materializations_for_node("rag_index")
    assert open_index().collection.count() == before


def test_small_folder_by_mistake_is_refused_by_the_index(openai_env, tmp_path,
                                                         monkeypatch) -> None:
    assert curation_and_rag().success
    before = open_index().collection.count()
    small = tmp_path / "small"
    small.mkdir()
    (small / "one.md").write_text(f"# One\n\n{LONG}\n")
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(small))
    monkeypatch.setenv("LLMOPS_MIN_EVAL_ROWS", "0")
    result = curation_and_rag(raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "rag_index"
    error, message = failure.event_specific_data.error, ""
    while error is not None:  # Dagster wraps the asset's own error as the cause
        message, error = message + error.message, error.cause
    assert str(small) in message and f"of {before} chunks" in message
    assert open_index().collection.count() == before
    monkeypatch.setenv("LLMOPS_INDEX_ALLOW_SHRINK", "1")
    assert curation_and_rag(raise_on_error=False).asset_materializations_for_node("rag_index")
    assert open_index().collection.count() < before


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_lifecycle_with_a_missing_datasets_folder(served, isolated_home, tmp_path) -> None:
    url, log = served
    before = open_index().collection.count()
    assert before > 0
    assert _get(f"{url}/health")["index"]["count"] == before
    missing = tmp_path / "datasets-typo"
    env = {**os.environ, "LLMOPS_DATASETS_DIR": str(missing)}
    # What `make demo` runs: everything but the nightly re-evaluation (one partition per night).
    done = subprocess.run([DAGSTER, "asset", "materialize", "-m", "llmops_pipelines.definitions",
                           "--select", "not key:nightly_reevaluation"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert str(missing) in output and "LLMOPS_DATASETS_DIR" in output
    assert open_index().collection.count() == before
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    reply = client.chat.completions.create(
        model="champion", messages=[{"role": "user", "content": "How do I clean the tent?"}])
    assert reply.choices[0].message.content
    assert reply.model_extra["llmops"]["context_doc_ids"]
    assert _get(f"{url}/health")["status"] == "ok"


def test_serving_without_an_index_answers_and_says_so(openai_env, isolated_home) -> None:
    deploy(isolated_home, "grounded_concise")
    settings = Settings.from_env()
    app = create_app(ChampionApp(settings), TOKEN, ProductionLog(settings.production_log_path))
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["index"]["count"] == 0
        assert "empty" in health["index"]["problem"]
        reply = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"messages": [{"role": "user", "content": "How do I clean it?"}]})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["choices"][0]["message"]["content"]
        assert body["llmops"]["context_doc_ids"] == []
        assert "index" in body["llmops"]["warning"]


def test_a_template_with_nested_huge_loops_fails_the_playground_not_hangs(
        openai_env, tmp_path, monkeypatch) -> None:
    import shutil

    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    (assets / "prompts" / "looping.prompty").write_text(
        "---\nname: looping\ninputs:\n  question:\n    type: string\n  context:\n    type: list\n"
        "---\nsystem:\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
        "{% endfor %}\nuser:\n{{ question }}\n")
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    result = dg.materialize([*defs.assets, *defs.asset_checks],
                            selection=dg.AssetSelection.groups("curation", "rag", "ideation"),
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                            raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "prompt_playground"
    error, message = failure.event_specific_data.error, ""
    while error is not None:
        message, error = message + error.message, error.cause
    assert "looping.prompty: rendering stopped: more than 1000000 loop steps" in message
