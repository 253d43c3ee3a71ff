"""A 3-turn conversation with `llmops serve` over the official openai client, on the real local model.

The Contoso manuals are the index (MiniLM embeddings, SmolLM2 answers: nothing stubbed). Turn 3
("How much does it weigh?") names no product: only the history says it is the 4-person tent,
product_info_1 (the TrailMaster X4). The same question sent alone is the control: what the
history changed is measured on the same server.

The champion is a BM25-retrieval candidate (a stored `retrieval` param, as an experiment's
candidate carries it): MiniLM's vector search ranks the "SkyView 2-Person Tent" first for
"Which tent is for 4 people?" (the embedding matches "person", not the number), so on vector
retrieval already turn 1 misses the tent, and no history could help turn 3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import openai
import pytest

from llmops_pipelines.definitions import defs
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.local import BASE_CHAT_MODEL
from tests.conftest import CONTOSO, REPO, needs_contoso
from tests.integration.test_serving import exchanges, serve_process

pytestmark = needs_contoso
TOKEN = "conversation-test-token"
TENT_DOC = "product_info_1"


def deploy_local(home: Path) -> None:
    prompt = next(p for p in load_prompts(REPO / "assets" / "prompts")
                  if p.name == "grounded_concise")
    Registry(home / "registry.sqlite").promote(
        {"candidate_id": f"{prompt.name}@{BASE_CHAT_MODEL}#{prompt.version[:8]}",
         "prompt_name": prompt.name, "prompt_version": prompt.version, "model": BASE_CHAT_MODEL,
         "quality": 0.5, "params": json.dumps({"retrieval": "bm25"})},
        {"index": "i", "data": "d"}, reason="conversation test", actor="ci")


@pytest.fixture
def contoso_server(isolated_home: Path, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(CONTOSO))
    monkeypatch.setenv("LLMOPS_MAX_TOKENS", "32")  # a short answer: the test is about retrieval
    result = dg.materialize([*defs.assets, *defs.asset_checks],
                            selection=dg.AssetSelection.groups("curation", "rag"),
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    deploy_local(isolated_home)
    monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
    with serve_process(tmp_path) as (url, _):
        yield f"{url}/v1"


def doc_ids(reply: object) -> list[str]:
    return [Path(d).stem for d in reply.model_extra["llmops"]["context_doc_ids"]]  # type: ignore[attr-defined]


def test_turn_three_retrieves_the_tent_named_in_turn_one(contoso_server: str,
                                                         isolated_home: Path) -> None:
    client = openai.OpenAI(base_url=contoso_server, api_key=TOKEN, max_retries=0)
    messages = [{"role": "user", "content": "Which tent is for 4 people?"}]
    first = client.chat.completions.create(model="champion", messages=messages)
    assert TENT_DOC in doc_ids(first)
    messages.append({"role": "assistant", "content": first.choices[0].message.content})
    messages.append({"role": "user", "content": "Is it waterproof?"})
    second = client.chat.completions.create(model="champion", messages=messages)
    messages.append({"role": "assistant", "content": second.choices[0].message.content})
    messages.append({"role": "user", "content": "How much does it weigh?"})
    third = client.chat.completions.create(model="champion", messages=messages)
    alone = client.chat.completions.create(
        model="champion", messages=[{"role": "user", "content": "How much does it weigh?"}])

    assert doc_ids(third)[0] == TENT_DOC, doc_ids(third)
    # Without the history, fewer of the chunks are the tent's (its FAQ says "weighs" too).
    assert doc_ids(third).count(TENT_DOC) > doc_ids(alone).count(TENT_DOC), (doc_ids(third),
                                                                             doc_ids(alone))

    records = [r for r in exchanges(isolated_home) if r["type"] == "exchange"]
    assert len(records) == 4
    last = records[2]
    assert last["question"] == "How much does it weigh?"
    assert [m["role"] for m in last["history"]] == ["user", "assistant", "user", "assistant"]
    assert last["history_used"] == 4 and last["history_dropped"] == 0
    assert "Which tent is for 4 people?" in last["query"]
    assert set(last["stages_ms"]) >= {"retrieve", "render", "chat"}
    assert records[3]["history"] == []

    # A history longer than the model's window is trimmed oldest-first, and says so.
    filler = "Tell me everything about every product you sell, in detail. " * 60  # ~900 tokens
    messages = []
    for i in range(4):
        messages += [{"role": "user", "content": f"{i}: {filler}"},
                     {"role": "assistant", "content": f"answer {i}"}]
    messages.append({"role": "user", "content": "Which tent is for 4 people?"})
    reply = client.chat.completions.create(model="champion", messages=messages)
    assert reply.choices[0].message.content
    record = [r for r in exchanges(isolated_home) if r["type"] == "exchange"][-1]
    assert record["history_dropped"] > 0
    assert record["history_used"] + record["history_dropped"] == 8
    # What was kept is the newest part, starting on a user turn.
    assert record["input_tokens"] < 2048
