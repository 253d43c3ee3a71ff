"""Contoso's own chat.prompty, unchanged from ../shared, rendered through an input mapping.

The prompt wants `customer`, `documentation`, `question` and an undeclared `history`; the mapping
binds them to the curated Contoso corpus: the customer record comes from the curated (PII-scrubbed)
customers/ documents, the documentation from retrieved product manual chunks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops_pipelines.curation import Curated, curate
from llmops_pipelines.evaluation.input_mapping import Binder, parse_mapping
from llmops_pipelines.prompts import load_prompt
from llmops_pipelines.providers.yaml_lines import load_located
from llmops_pipelines.rag.retrieval import Retrieved
from tests.conftest import CONTOSO, needs_contoso

pytestmark = needs_contoso
MANUALS = ("product_info_1", "product_info_8")
EXPERIMENTS = """\
experiments:
  contoso:
    prompts: [contoso_chat]
    inputs:
      question: ${data.question}
      documentation: ${retrieved}
      customer:
        lookup: customers
        key: ${data.customerId}
      history: ${data.chat_history}
"""


@pytest.fixture(scope="module")
def curated() -> Curated:
    return curate(CONTOSO)


@pytest.fixture
def binder(curated: Curated, tmp_path: Path) -> Binder:
    prompt = load_prompt(CONTOSO / "prompts" / "chat.prompty", strict=False)
    path = tmp_path / "experiments.yaml"
    path.write_text(EXPERIMENTS)
    doc = load_located(path)
    where = "experiments.contoso.inputs"
    return parse_mapping(doc, where, doc.data["experiments"]["contoso"]["inputs"],
                         prompt).bind(curated.documents)


def contexts(curated: Curated) -> list[Retrieved]:
    docs = curated.documents.set_index("doc_id")
    return [Retrieved(f"{doc_id}#0", doc_id, docs.loc[doc_id, "text"][:800], 0.8 - i / 10)
            for i, doc_id in enumerate(MANUALS)]


def raw_customer(customer_id: str) -> dict[str, Any]:
    """The customer as the corpus has it, real names included: what must not reach a prompt."""
    for path in sorted((CONTOSO / "customers").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if str(record["id"]) == customer_id:
            return record
    raise AssertionError(f"no customer {customer_id} in {CONTOSO / 'customers'}")


def rendered(binder: Binder, row: Any, chunks: list[Retrieved]) -> str:
    messages = binder.mapping.prompt.render(**binder.values(row, chunks))
    return "\n".join(m["content"] for m in messages)


def test_contoso_chat_prompt_renders_the_scrubbed_customer_and_the_retrieved_manuals(
        binder: Binder, curated: Curated) -> None:
    assert binder.mapping.prompt.undeclared == ("history",)
    assert "customer <- lookup customers by ${data.customerId} (12 records)" in binder.describe()
    rows = [r for r in curated.qa.itertuples(index=False)
            if r.origin == "file" and "customerId" in json.loads(r.meta)]
    assert len(rows) == 12
    chunks = contexts(curated)
    titles = curated.documents.set_index("doc_id")["title"]
    for row in rows:
        customer_id = json.loads(row.meta)["customerId"]
        raw = raw_customer(customer_id)
        values = binder.values(row, chunks)
        assert str(values["customer"]["id"]) == customer_id
        text = rendered(binder, row, chunks)
        assert f'[NAME] [NAME] has a "{raw["membership"]}" membership status' in text
        for order in raw["orders"]:
            assert f"name: {order['name']}" in text
        for personal in ("firstName", "lastName", "email", "phone"):
            assert raw[personal] not in text, f"{personal} of customer {customer_id} leaked"
        for doc_id in MANUALS:
            assert f"catalog: {doc_id}\nitem: {titles[doc_id]}\ncontent: " in text
        assert row.question in text
        # Rendering is deterministic: the messages are a cache key.
        assert rendered(binder, row, chunks) == text


def test_a_row_without_customer_id_renders_with_the_default(binder: Binder,
                                                            curated: Curated) -> None:
    row = next(r for r in curated.qa.itertuples(index=False) if r.origin == "faq")
    assert "customerId" not in json.loads(row.meta)
    values = binder.values(row, contexts(curated))
    assert values["customer"] == {} and "history" not in values
    text = rendered(binder, row, contexts(curated))
    assert 'has a "" membership status' in text and "catalog: product_info_8" in text
    assert row.question in text and "[NAME]" not in text
