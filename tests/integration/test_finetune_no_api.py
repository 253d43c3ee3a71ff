"""An OpenAI-compatible endpoint without a fine-tuning API (Ollama, vLLM, llama.cpp's server):
under LLMOPS_FINETUNE=auto the fine-tune is skipped with the reason, nothing is uploaded, and the
lifecycle goes on with the base model. Real Dagster, the official openai client, the local test
server with its fine-tuning routes answering 404."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import openai
import pandas as pd
import pytest

from llmops_pipelines.definitions import defs
from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.finetune.remote import missing_finetune_api
from tests.integration.test_lifecycle import lenient_gates
from tests.support.finetune_files import chat_line, failure, materialize_model, stage_training_file
from tests.support.openai_server import FakeOpenAIServer

FINE_TUNING = ("ft_create", "ft_list", "ft_retrieve", "ft_events", "ft_cancel")
NO_FINETUNE = (*FINE_TUNING, "files")


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """conftest's openai_env on a server with neither fine-tuning nor files routes."""
    with FakeOpenAIServer(routes_off=NO_FINETUNE) as server:
        yield server


def reason_for(server: FakeOpenAIServer) -> str:
    return (f"endpoint {server.base_url}/ has no fine-tuning API (GET fine_tuning/jobs answered "
            "404); the lifecycle goes on with the base model; LLMOPS_FINETUNE=off skips this check")


def test_the_lifecycle_goes_on_with_the_base_model(openai_env: FakeOpenAIServer,
                                                    isolated_home: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)  # the base model must pass promotion's blocking gates
    instance = dg.DagsterInstance.ephemeral()
    # curation_rejects: the curation multi-asset is materialized whole.
    selection = dg.AssetSelection.assets("evaluation_summary", "promotion_decision",
                                         "curation_rejects").upstream()

    result = dg.materialize(defs.assets, selection=selection, resources=defs.resources,
                            instance=instance, raise_on_error=False)

    assert result.success, failure(result)
    reason = reason_for(server)
    metadata = result.asset_materializations_for_node("finetuned_model")[0].metadata
    assert metadata["skipped"].value == reason
    model = json.loads((isolated_home / "tables" / "finetuned_model.json").read_text())
    assert model == {"model_id": None, "skipped": reason}
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.user_message == reason and e.level == logging.WARNING]
    assert len(warnings) == 1
    assert server.counts["files"] == 0 and server.counts["ft_create"] == 0 and not server.files
    assert not server.jobs
    # Only the base model is a candidate, and it was evaluated and decided on.
    summary = pd.read_parquet(isolated_home / "tables" / "evaluation_summary.parquet")
    rows = pd.read_parquet(isolated_home / "tables" / "evaluation_rows.parquet")
    assert set(rows["model"]) == {"gpt-4o-mini"} and len(summary) == 2
    decision = json.loads((isolated_home / "tables" / "promotion_decision.json").read_text())
    assert decision["promoted"] is True
    assert decision["candidate_id"] in set(summary["candidate_id"])


def test_a_server_with_files_but_no_fine_tuning_gets_no_upload(
        openai_env: FakeOpenAIServer, isolated_home: Path) -> None:
    server = openai_env
    server.routes_off = FINE_TUNING  # vLLM, for one, serves /v1/files for batches
    stage_training_file(isolated_home, [chat_line(n) for n in range(12)])

    result, logs = materialize_model()

    assert result.success, failure(result)
    assert reason_for(server) in logs
    assert server.counts["files"] == 0 and server.attempts["files"] == 0


def client_for(server: FakeOpenAIServer, api_key: str = "right-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)


def test_the_probe_tells_a_missing_api_from_a_refused_key() -> None:
    with FakeOpenAIServer(api_key="right-key") as server:
        url = server.base_url
        assert missing_finetune_api(client_for(server)) is None
        assert server.counts["ft_list"] == 1

        with pytest.raises(FineTuneError) as refused:
            missing_finetune_api(client_for(server, api_key="wrong-key"))
        assert str(refused.value) == (
            f"endpoint {server.base_url}/ refused the API key for fine-tuning (401): check "
            "OPENAI_API_KEY for this endpoint, or set LLMOPS_FINETUNE=off")

        server.routes_off = ("ft_list",)
        assert missing_finetune_api(client_for(server)) == reason_for(server)

    # Stopped: a connection error is an error too, naming the URL.
    with pytest.raises(FineTuneError, match=rf"cannot reach {url}/ to check its fine-tuning API"):
        missing_finetune_api(openai.OpenAI(base_url=url, api_key="right-key", max_retries=0))


def test_declared_capabilities_decide_without_a_request(openai_server: FakeOpenAIServer) -> None:
    client = client_for(openai_server)

    reason = missing_finetune_api(client, capabilities=["chat", "embeddings"])

    assert reason == (f"endpoint {openai_server.base_url}/ has no fine-tuning API (its declared "
                      "capabilities ['chat', 'embeddings'] lack fine_tuning); the lifecycle goes "
                      "on with the base model; LLMOPS_FINETUNE=off skips this check")
    assert missing_finetune_api(client, capabilities=("chat", "fine_tuning")) is None
    assert sum(openai_server.attempts.values()) == 0
