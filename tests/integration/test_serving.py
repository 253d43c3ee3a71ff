"""Acceptance: `llmops serve` as a real process, the official openai client, the production log,
a new champion picked up without restart, and the monitoring asset scoring the served answers."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import openai
import pandas as pd
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.prompts import load_prompts

REPO = Path(__file__).resolve().parents[2]
TOKEN = "serve-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(home: Path, prompt_name: str) -> str:
    """Register a deployment of a shipped prompt on the test server's model as the champion."""
    prompt = next(p for p in load_prompts(REPO / "assets" / "prompts") if p.name == prompt_name)
    candidate = f"{prompt.name}@gpt-4o-mini#{prompt.version[:8]}"
    Registry(home / "registry.sqlite").promote(
        {"candidate_id": candidate, "prompt_name": prompt.name, "prompt_version": prompt.version,
         "model": "gpt-4o-mini", "quality": 0.5}, {"index": "i", "data": "d"},
        reason=f"test deploys {prompt_name}", actor="ci")
    return candidate


@pytest.fixture
def served(openai_env, isolated_home, tmp_path, monkeypatch) -> Iterator[tuple[str, Path]]:
    """Curated data and the RAG index (against the test server), a champion, and a live server."""
    result = dg.materialize([*defs.assets, *defs.asset_checks],
                            selection=dg.AssetSelection.groups("curation", "rag"),
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    deploy(isolated_home, "grounded_concise")
    monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
    with serve_process(tmp_path) as (url, log):
        yield url, log


@contextlib.contextmanager
def serve_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`llmops serve` as a real process on a free port, this environment, until /health answers."""
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "llmops_pipelines.cli", "serve",
                                   "--port", str(port)], cwd=REPO, env=dict(os.environ),
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url, log
    finally:
        server.terminate()
        server.wait(timeout=30)


def exchanges(home: Path) -> list[dict]:
    path = home / "production" / "exchanges.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_client_chats_with_the_champion(served, isolated_home, openai_env, capsys) -> None:
    url, log = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    question = "How do I clean the tent?"
    reply = client.chat.completions.create(model="anything",
                                           messages=[{"role": "user", "content": question}])
    answer = reply.choices[0].message.content
    assert answer and reply.model == "gpt-4o-mini"
    assert reply.usage.completion_tokens > 0
    assert reply.id.startswith("chatcmpl-")
    first_candidate = reply.model_extra["llmops"]["candidate_id"]
    assert first_candidate.startswith("grounded_concise@")

    # Refused with a wrong token and with none; nothing is logged for a refused call.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="x", messages=[{"role": "user", "content": question}])
    bare = urllib.request.Request(f"{url}/v1/chat/completions", method="POST",
                                  data=json.dumps({"messages": [{"role": "user",
                                                                 "content": question}]}).encode(),
                                  headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 401

    client.post("/feedback", body={"id": reply.id, "rating": "down", "comment": "too short"},
                cast_to=object)
    with pytest.raises(openai.BadRequestError):
        client.post("/feedback", body={"id": reply.id, "rating": "meh"}, cast_to=object)

    # A new champion is served by the running process, no restart.
    second = deploy(isolated_home, "friendly_detailed")
    again = client.chat.completions.create(model="champion",
                                           messages=[{"role": "user", "content": question}])
    assert again.model_extra["llmops"]["candidate_id"] == second != first_candidate

    assert llmops_main(["chat", "--url", f"{url}/v1", "--once", "Which fuel does the stove use?"]) == 0
    assert "sources:" in capsys.readouterr().out

    records = exchanges(isolated_home)
    assert [r["type"] for r in records] == ["exchange", "feedback", "exchange", "exchange"]
    first = records[0]
    assert (first["question"], first["answer"], first["id"]) == (question, answer, reply.id)
    assert first["contexts"] and all(c["text"] and c["doc_id"] for c in first["contexts"])
    assert first["model"] == "gpt-4o-mini" and first["output_tokens"] > 0
    assert first["latency_ms"] > 0 and first["candidate_id"] == first_candidate
    assert records[1] == {**records[1], "id": reply.id, "rating": -1, "comment": "too short"}
    assert records[2]["candidate_id"] == second
    assert TOKEN not in log.read_text()
    assert TOKEN not in (isolated_home / "production" / "exchanges.jsonl").read_text()

    # The monitoring asset scores what was served, then only what came after.
    monitored = monitor()
    assert monitored.success
    scored = pd.read_parquet(isolated_home / "tables" / "production_monitoring.parquet")
    assert list(scored["exchange_id"]) == [r["id"] for r in records if r["type"] == "exchange"]
    assert scored["groundedness"].between(0, 1).all() and scored["sampled"].all()
    assert (scored["harm"] == 0).all() and (scored["ms_per_output_token"] > 0).all()
    assert (scored["cost_usd"] > 0).all()
    meta = metadata(monitored)
    assert meta["exchanges"] == 3 and meta["feedback"] == 1
    assert meta["negative_feedback_rate"] == 1.0
    verdicts = {e.check_name: e for e in monitored.get_asset_check_evaluations()}
    assert len(verdicts) == 6
    assert not verdicts["monitor_negative_feedback_rate"].passed  # 1 of 1 rated down > 0.30
    assert "crosses its gate" in verdicts["monitor_negative_feedback_rate"].description
    assert verdicts["monitor_groundedness"].passed

    client.chat.completions.create(model="champion", messages=[{"role": "user", "content": "Hi?"}])
    later = monitor()
    assert metadata(later)["exchanges"] == 1
    assert pd.read_parquet(isolated_home / "tables" / "production_monitoring.parquet")[
        "question"].tolist() == ["Hi?"]


def monitor() -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=["production_monitoring"],
                          resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = result.asset_materializations_for_node("production_monitoring")
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def test_serve_refuses_to_start_without_a_token(isolated_home, capsys) -> None:
    assert llmops_main(["serve", "--port", str(free_port())]) == 2
    assert "LLMOPS_SERVE_TOKEN" in capsys.readouterr().err
