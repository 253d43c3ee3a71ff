"""Embeddings per endpoint: an experiment's embedding endpoint is the one that embeds, and a
slow OpenAI-compatible endpoint gets its embedding batches split on timeout, not failed.

No mocks: real Dagster, the real local MiniLM ONNX embedder, the official openai client against
the local OpenAI-compatible test server (tests/support/openai_server.py)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.definitions import defs, resources
from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers.catalog import Endpoint
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.settings import Settings
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
REMOTE_CHAT = "remote-tiny-chat"
LOCAL_EMBED = "local/all-minilm-l6-v2-int8"
PROVIDER_LOG = "llmops_pipelines.providers.openai_provider"
# Two eval-split articles and a train one: rag_index takes ~3 s (mostly loading MiniLM), where
# the whole sample knowledge base takes ~15 s on two cores.
DOCS = ("charging-safety", "first-ride-assembly", "brake-maintenance")


def small_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "datasets"
    (folder / "docs").mkdir(parents=True)
    for doc in DOCS:
        shutil.copy(REPO / "datasets" / "docs" / f"{doc}.md", folder / "docs")
    lines = (REPO / "datasets" / "qa.jsonl").read_text().splitlines()
    (folder / "qa.jsonl").write_text("".join(
        line + "\n" for line in lines if json.loads(line)["source"] in DOCS))
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(folder))
    return folder


def remote_catalog(tmp_path: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repo's assets with an endpoint `remote` (the test server) and an experiment that
    chats there and embeds locally with MiniLM."""
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    (assets / "models.yaml").write_text(f"""\
endpoints:
  local:
    kind: local
    concurrency: 1
  remote:
    kind: openai
    base_url: {base_url}
    api_key_env: REMOTE_KEY
    timeout_s: 10
    max_retries: 0
    concurrency: 2
    capabilities: [chat, embeddings, moderation]
models:
  - {{name: smollm2-135m-instruct, endpoint: local, roles: [chat, finetune_base]}}
  - {{name: all-minilm-l6-v2-int8, endpoint: local, roles: [embedding]}}
  - {{name: {REMOTE_CHAT}, endpoint: remote, roles: [chat]}}
  - {{name: remote-embed, endpoint: remote, roles: [embedding]}}
""")
    (assets / "experiments.yaml").write_text(f"""\
default: remote-chat
experiments:
  remote-chat:
    description: a remote chat model, local MiniLM embeddings
    prompts: [grounded_concise]
    models: [remote/{REMOTE_CHAT}]
    embedding: {LOCAL_EMBED}
""")
    pricing = (assets / "pricing.yaml").read_text().replace(
        "models:\n", f"models:\n  {REMOTE_CHAT}: {{input: 0.10, output: 0.40}}\n", 1)
    (assets / "pricing.yaml").write_text(pricing)
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    return assets


def test_local_minilm_embeds_while_a_remote_endpoint_chats(
        openai_server: FakeOpenAIServer, isolated_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_server
    remote_catalog(tmp_path, server.base_url, monkeypatch)
    small_dataset(tmp_path, monkeypatch)
    monkeypatch.setenv("REMOTE_KEY", "remote-test-key")  # read by name from models.yaml
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "3")
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    # curation_rejects: the curation multi-asset is materialized whole.
    selection = dg.AssetSelection.assets("evaluation_summary", "curation_rejects").upstream()

    result = dg.materialize(defs.assets, selection=selection, resources=resources(),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    # MiniLM built the index and embedded the questions and metrics: nothing went remote but
    # the three chat calls, and the run's own local provider moderated (no moderation route).
    assert server.counts["embeddings"] == 0 and server.attempts["embeddings"] == 0
    assert server.counts["moderations"] == 0 and server.attempts["moderations"] == 0
    chats = [body for route, body in server.requests if route == "chat"]
    assert len(chats) == 3 and {body["model"] for body in chats} == {REMOTE_CHAT}
    assert server.counts["chat"] == 3
    # Every chat call of the run (all providers, the local SmolLM included) was those three.
    rows_meta = result.asset_materializations_for_node("evaluation_rows")[0].metadata
    assert rows_meta["chat_calls"].value == 3
    index_meta = result.asset_materializations_for_node("rag_index")[0].metadata
    assert index_meta["embedding_model"].value == "all-minilm-l6-v2-int8"

    candidates = pd.read_parquet(isolated_home / "tables" / "candidates.parquet")
    assert set(candidates["endpoint"]) == {"remote"} and len(candidates) == 1
    rows = pd.read_parquet(isolated_home / "tables" / "evaluation_rows.parquet")
    assert len(rows) == 3 and set(rows["endpoint"]) == {"remote"}
    assert set(rows["model"]) == {REMOTE_CHAT}
    assert rows["error"].isna().all()
    for column in ("quality", "groundedness", "harm"):
        assert rows[column].between(0, 1).all(), column
    assert rows["harm_source"].str.startswith("local-lexicon").all()
    summary = pd.read_parquet(isolated_home / "tables" / "evaluation_summary.parquet")
    assert len(summary) == 1 and summary["coverage"].iloc[0] == 1.0


class SizedLatencyServer(FakeOpenAIServer):
    """The test server, with an embeddings route slow in proportion to the batch: a CPU
    server's time grows with the texts it is given, where route_latency_s is fixed per request.

    `batches` is the size of every embeddings request in the order it arrived, timed-out ones
    included (the server still finishes them; the client has stopped listening)."""

    def __init__(self, per_text_s: float, **options: Any) -> None:
        super().__init__(**options)
        self.per_text_s = per_text_s
        self.batches: list[int] = []
        self._batches_lock = threading.Lock()

    def _ep_embeddings(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        raw = body.get("input")
        size = len(raw) if isinstance(raw, list) else 1
        with self._batches_lock:
            self.batches.append(size)
        self._stopping.wait(self.per_text_s * size)  # stop() cuts the sleep short
        return super()._ep_embeddings(body, params)


# 50 ms a text and a 0.36 s timeout: 8 texts (0.40 s) always time out, 4 (0.20 s) answer with
# 0.16 s to spare on a loaded machine.
PER_TEXT_S = 0.05
TIMEOUT_S = 0.36
EMBED_MODEL = "slow-embed"


def texts(n: int) -> list[str]:
    words = ("brake", "battery", "helmet", "tyre", "charger", "pedal", "chain", "saddle",
             "frame", "motor", "light", "lock", "bell", "rack", "fender", "kickstand")
    return [f"article {i} about the {words[i % len(words)]} number {i}" for i in range(n)]


def test_a_timed_out_embedding_batch_is_split_and_keeps_its_order(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PROVIDER_LOG)
    server = SizedLatencyServer(PER_TEXT_S, api_key="slow-key")
    with server:
        url = server.base_url  # only while it runs
        endpoint = Endpoint(name="slow", kind="openai", base_url=server.base_url,
                            api_key_env="SLOW_KEY", timeout_s=TIMEOUT_S, max_retries=1,
                            embedding_batch=8)
        provider = OpenAIProvider(Settings.from_env(), endpoint=endpoint, api_key="slow-key",
                                  embedding_model=EMBED_MODEL)
        inputs = texts(16)

        started = time.perf_counter()
        vectors = provider.embed(inputs)
        took = time.perf_counter() - started

        # Two batches of 8 (embedding_batch), each timed out once and answered as 4 + 4.
        assert server.batches == [8, 4, 4, 8, 4, 4]
        assert provider.stats.calls["embed"] == 4
        assert took < 4.0, took
        one_by_one = np.vstack([provider.embed([text]) for text in inputs])
        assert server.batches[6:] == [1] * 16

    assert vectors.shape == (16, server.embedding_dim) and vectors.dtype == np.float32
    # In input order: row i is text i's vector, and the texts' vectors all differ.
    np.testing.assert_allclose(vectors, one_by_one, rtol=0, atol=1e-6)
    assert len({row.tobytes() for row in one_by_one}) == 16
    assert {body["model"] for route, body in server.requests if route == "embeddings"} \
        == {EMBED_MODEL}
    warnings = [r for r in caplog.records
                if r.name == PROVIDER_LOG and r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    for record in warnings:
        message = record.getMessage()
        assert message.startswith(f"endpoint 'slow' ({url}/)"), message
        assert "8 texts to embed took over 0.36s; splitting into 4 + 4" in message
        assert "raise timeout_s of endpoint 'slow' in assets/models.yaml" in message
        assert "or lower embedding_batch" in message


def test_one_text_that_times_out_names_the_setting_to_raise(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PROVIDER_LOG)
    # One text takes longer than the whole timeout: nothing left to split.
    server = SizedLatencyServer(TIMEOUT_S + 0.3, api_key="slow-key")
    with server:
        url = server.base_url
        endpoint = Endpoint(name="slow", kind="openai", base_url=server.base_url,
                            api_key_env="SLOW_KEY", timeout_s=TIMEOUT_S, max_retries=1,
                            embedding_batch=8)
        provider = OpenAIProvider(Settings.from_env(), endpoint=endpoint, api_key="slow-key",
                                  embedding_model=EMBED_MODEL)

        with pytest.raises(ProviderError) as raised:
            provider.embed(["a single long manual page"])

        # A single text is sent with the endpoint's own retries (max_retries=1): two tries.
        assert server.batches == [1, 1]
    message = str(raised.value)
    assert f"embeddings with model {EMBED_MODEL!r} (one text; raise timeout_s of endpoint " \
           f"'slow' in assets/models.yaml) at endpoint 'slow' ({url}/) failed" \
           in message, message
    assert "slow-key" not in message
    assert provider.stats.calls["embed"] == 0
    assert not [r for r in caplog.records if "splitting" in r.getMessage()]


def test_the_runs_own_endpoint_names_its_timeout_variable(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.WARNING, logger=PROVIDER_LOG)
    server = SizedLatencyServer(PER_TEXT_S)
    with server:
        url = server.base_url
        monkeypatch.setenv("LLMOPS_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
        monkeypatch.setenv("LLMOPS_OPENAI_TIMEOUT_S", str(TIMEOUT_S))
        monkeypatch.setenv("LLMOPS_OPENAI_MAX_RETRIES", "0")
        provider = OpenAIProvider(Settings.from_env())
        inputs = texts(8)  # within the run's batch of 256: one request, then 4 + 4

        vectors = provider.embed(inputs)

        assert server.batches == [8, 4, 4]
        np.testing.assert_allclose(vectors[5], provider.embed([inputs[5]])[0], rtol=0, atol=1e-6)
    (record,) = [r for r in caplog.records if "splitting" in r.getMessage()]
    assert record.getMessage().startswith(f"OPENAI_BASE_URL={url}/: 8 texts")
    assert "(raise LLMOPS_OPENAI_TIMEOUT_S or lower embedding_batch" in record.getMessage()
