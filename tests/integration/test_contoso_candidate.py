"""Contoso's own chat.prompty (from ../shared, unchanged) evaluated beside our prompt, by real Dagster.

The corpus is the dataset folder as it is. Its eval split holds the manuals' FAQ rows only: the 12
questions.jsonl rows that carry a customerId have no reference answer, so curation puts them in
`unlabeled`, which evaluation never scores. The eval rows therefore render with the lookup's
default customer ({}); the customer-bearing rows are rendered through the same bound candidate
objects and retrieval evaluation uses (`_candidate_objects`, `_contexts`, Candidate.render), and
must carry the curated (PII-scrubbed) record. Every request body the server received is checked
for the customers' real names, e-mails and phone numbers.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.definitions import defs, resources
from llmops_pipelines.defs.evaluation import _candidate_objects, _contexts
from tests.conftest import CONTOSO, REPO, needs_contoso
from tests.integration.test_evaluation_assets import chat_calls
from tests.integration.test_lifecycle import table
from tests.support.openai_server import FakeOpenAIServer

pytestmark = needs_contoso
CHAT = CONTOSO / "prompts" / "chat.prompty"
OURS, THEIRS = "grounded_concise", "contoso_chat"
LIMIT = 5
EXPERIMENTS = f"""\
default: contoso
experiments:
  contoso:
    description: our grounded_concise beside Contoso's chat.prompty, used unchanged
    prompts:
      - {OURS}
      - file: {CHAT.resolve()}
        name: {THEIRS}
        inputs:
          question: ${{data.question}}
          documentation: ${{retrieved}}
          customer: {{lookup: customers, key: "${{data.customerId}}"}}
          history: ${{data.chat_history}}
    models: [default]
"""
CATALOG = re.compile(r"^catalog: (\S+)$", re.M)
PERSONAL = ("firstName", "lastName", "email", "phone")
# Anywhere in a request: a last name may be a word of the manuals too ("Brown" is a colour).
ANYWHERE = ("firstName", "email", "phone")


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """conftest's openai_env on a server that keeps every request body as received."""
    with FakeOpenAIServer(keep_raw=True) as server:
        yield server


@pytest.fixture
def contoso_run(openai_env: FakeOpenAIServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    (assets / "experiments.yaml").write_text(EXPERIMENTS)
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(CONTOSO))
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", str(LIMIT))
    return openai_env


def materialize() -> dg.ExecuteInProcessResult:
    # Resources built now, after the environment is set; curation is one multi-asset: all of it.
    selection = dg.AssetSelection.assets("evaluation_rows", "curation_rejects").upstream()
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=resources(),
                          instance=dg.DagsterInstance.ephemeral(), selection=selection)


def customers() -> dict[str, dict[str, Any]]:
    """The customers as the corpus has them, real names included: what must reach no endpoint."""
    out = {}
    for path in sorted((CONTOSO / "customers").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        out[str(record["id"])] = record
    return out


def text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m["content"]) for m in messages)


def question_of(text: str) -> str:
    found = re.search(r"^# question\n(.*)$", text, re.M)
    assert found, "the request is not Contoso's chat prompt"
    return found.group(1)


def assert_no_personal_data(server: FakeOpenAIServer) -> None:
    bodies = [raw.decode("utf-8", errors="replace") for _, _, raw in server.raw_requests]
    assert bodies
    for record in customers().values():
        for name in ANYWHERE:
            value = re.compile(rf"(?<!\w){re.escape(str(record[name]))}(?!\w)")
            leaked = [i for i, body in enumerate(bodies) if value.search(body)]
            assert not leaked, f"{name} of customer {record['id']} reached the endpoint"


def customer_part(text: str) -> str:
    """The prompt's customer sections: previous orders and customer context."""
    return text.split("# Previous Orders")[1].split("# question")[0]


def assert_scrubbed_customer(text: str, record: dict[str, Any]) -> None:
    text = customer_part(text)
    assert f'[NAME] [NAME] has a "{record["membership"]}" membership status' in text
    assert "The customer's name is [NAME] [NAME] and is" in text
    for order in record["orders"]:
        assert f"name: {order['name']}\n" in text
    for name in PERSONAL:
        assert not re.search(rf"(?<!\w){re.escape(str(record[name]))}(?!\w)", text), name


def test_contoso_chat_prompty_is_evaluated_beside_ours_on_the_contoso_corpus(
        contoso_run: FakeOpenAIServer, isolated_home: Path) -> None:
    server = contoso_run
    result = materialize()
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["one_row_per_question_and_candidate"] is True

    candidates = table(isolated_home, "candidates")
    assert list(candidates["prompt_name"]) == [OURS, THEIRS]
    assert set(candidates["model"]) == {"gpt-4o-mini"}
    theirs = candidates.loc[candidates["prompt_name"] == THEIRS, "candidate_id"].item()

    qa = table(isolated_home, "curated_qa")
    eval_qa = qa[qa["split"] == "eval"].sort_values("qa_id").head(LIMIT)
    rows = table(isolated_home, "evaluation_rows")
    assert len(rows) == LIMIT * 2 and rows["row_id"].is_unique
    assert set(zip(rows["candidate_id"], rows["qa_id"], strict=True)) == {
        (c, q) for c in candidates["candidate_id"] for q in eval_qa["qa_id"]}
    assert rows["error"].isna().all()
    for column in ("quality", "groundedness", "harm"):
        assert rows[column].between(0, 1).all(), column

    # What Contoso's customer rows look like in curation: unlabeled, so never in evaluation.
    with_customer = qa[qa["meta"].map(lambda m: "customerId" in json.loads(m or "{}"))]
    assert len(with_customer) == 12 and set(with_customer["split"]) == {"unlabeled"}
    assert not any("customerId" in json.loads(m or "{}") for m in eval_qa["meta"])

    # One answer call per row; the contoso_chat ones carry the row's retrieved ids as catalog.
    assert chat_calls(server) == {"judge": 0, "synthetic": 0, "answer": len(rows)}
    questions = dict(zip(eval_qa["question"], eval_qa["qa_id"], strict=True))
    theirs_rows = rows[rows["candidate_id"] == theirs].set_index("qa_id")
    seen = set()
    for kind, body in server.requests:
        if kind != "chat" or "# Customer Context" not in (text := text_of(body["messages"])):
            continue
        qa_id = questions[question_of(text)]
        seen.add(qa_id)
        doc_ids = list(theirs_rows.loc[qa_id, "context_doc_ids"])
        assert CATALOG.findall(text) == doc_ids
        assert any(d.startswith("product_info_") for d in doc_ids), doc_ids
        # A FAQ row has no customerId: the lookup's default, an empty customer.
        context = customer_part(text)
        assert "The customer's name is   and is  years old." in context
        assert 'has a "" membership status' in context and "[NAME]" not in context
    assert seen == set(eval_qa["qa_id"])
    assert_no_personal_data(server)

    # Nothing changed: the second run answers every row from the cache.
    server.reset()
    again = materialize()
    assert again.success
    assert server.counts["chat"] == 0
    cached = table(isolated_home, "evaluation_rows")
    assert cached["cached"].all()
    pd.testing.assert_series_equal(rows["answer"], cached["answer"])

    # The customer-bearing rows through the objects evaluation renders with: the same binding
    # of the mapping to curated_documents, the same retrieval, Candidate.render.
    with dg.build_resources(resources()) as built:
        llmops = built.llmops
        documents = table(isolated_home, "curated_documents")
        finetuned = json.loads((isolated_home / "tables" / "finetuned_model.json").read_text())
        objects = _candidate_objects(llmops, candidates, finetuned, documents,
                                     logging.getLogger(__name__))
        contoso = next(c for c in objects if c.candidate_id == theirs)
        customer_rows = with_customer.sort_values("qa_id")
        chunks = _contexts(llmops, customer_rows, [contoso])(contoso)
    records = customers()
    for row, ctx in zip(customer_rows.itertuples(index=False), chunks, strict=True):
        text = text_of(contoso.render(row, ctx))
        assert question_of(text) == row.question
        assert CATALOG.findall(text) == [c.doc_id for c in ctx]
        assert_scrubbed_customer(text, records[json.loads(row.meta)["customerId"]])
    assert server.counts["chat"] == 0
    assert_no_personal_data(server)
