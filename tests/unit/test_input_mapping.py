"""Input mapping: each source form, errors that name the input and file:line, determinism."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmops_pipelines.curation import normalise, pii
from llmops_pipelines.curation.tabular import render_record
from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.input_mapping import InputMapping, parse_mapping, parse_record
from llmops_pipelines.prompts import Prompt, load_prompt
from llmops_pipelines.providers.yaml_lines import load_located
from llmops_pipelines.rag.retrieval import Retrieved

WHERE = "experiments.shop.inputs"
# Strict (our own style): every name declared; `tone` has a default.
STRICT = """---
name: shop
inputs:
  question:
    type: string
  customer:
    type: object
  documentation:
    type: object
  tone:
    type: string
    default: friendly
---
system:
Tone: {{tone}}.
{% for item in documentation %}catalog: {{item.id}} item: {{item.title}} content: {{item.content}}
{% endfor %}
user:
{{customer.firstName | default('anonymous')}} ({{customer.membership | default('none')}}): {{question}}
"""
# Lenient (third-party style): `history` is used without being declared.
LENIENT = """---
name: chat
inputs:
  question:
    type: string
  customer:
    type: object
---
system:
{{customer.firstName}} has a "{{customer.membership}}" membership.
{% for item in history %}
{{item.role}}:
{{item.content}}
{% endfor %}
user:
{{question}}
"""
CUSTOMERS = [
    {"id": "1", "firstName": "Jane", "lastName": "Roe", "email": "jane@example.com",
     "membership": "Gold", "orders": [{"id": 7, "name": "Alpine Tent", "contact": "jane@example.com",
                                       "note": "ask jane@example.com"}]},
    {"id": "2", "firstName": "Max", "lastName": "Poe", "membership": "Base", "orders": []},
]


def curated_text(record: dict[str, Any]) -> str:
    """A record as curation writes it: fields scrubbed, rendered, normalised, text scrubbed."""
    counts: Counter[str] = Counter()
    text = normalise(render_record(pii.scrub_record(record, counts), None, None))
    return pii.scrub(text, counts)


DOCUMENTS = pd.DataFrame(
    [{"doc_id": f"customer_info_{c['id']}", "title": f"customer_info_{c['id']}",
      "text": curated_text(c), "source_path": f"customers/customer_info_{c['id']}.json",
      "format": "json"} for c in CUSTOMERS]
    + [{"doc_id": "tent", "title": "Alpine Tent manual", "text": "Pitch it in 5 minutes.",
        "source_path": "manuals/tent.md", "format": "markdown"}])
CONTEXTS = [Retrieved("tent#0", "tent", "Pitch it in 5 minutes.", 0.9),
            Retrieved("stove#0", "stove", "Boils in 3 minutes.", 0.5)]


def qa_row(meta: dict[str, Any] | None = None, **fields: Any) -> Any:
    row = {"qa_id": "q1", "question": "Which tent?", "ground_truth": None, "doc_id": "tent",
           "split": "eval", "source_path": "questions.jsonl", "line": 1, "origin": "file",
           "tags": "", "meta": json.dumps(meta or {}), "flags": "", **fields}
    return next(pd.DataFrame([row]).itertuples(index=False))


def prompt(tmp_path: Path, text: str = STRICT, *, strict: bool = True) -> Prompt:
    path = tmp_path / "shop.prompty"
    path.write_text(text, encoding="utf-8")
    return load_prompt(path, strict=strict)


def mapping(tmp_path: Path, inputs_yaml: str, the_prompt: Prompt) -> InputMapping:
    """Parse `inputs:` from a small experiments.yaml, as experiments.py will."""
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  shop:\n    models: [default]\n    inputs:\n"
                    + "".join(f"      {line}\n" for line in inputs_yaml.strip().split("\n")))
    doc = load_located(path)
    return parse_mapping(doc, WHERE, doc.data["experiments"]["shop"].get("inputs"), the_prompt)


def line_of(tmp_path: Path, text: str) -> str:
    """file:line of the first line of experiments.yaml containing text."""
    path = tmp_path / "experiments.yaml"
    number = next(i for i, line in enumerate(path.read_text().split("\n"), 1) if text in line)
    return f"{path}:{number}"


FULL = """
question: ${data.question}
documentation: ${retrieved}
customer:
  lookup: customers
  key: ${data.customerId}
"""


def test_data_field_reads_a_column_else_the_meta_json(tmp_path: Path) -> None:
    p = prompt(tmp_path)
    binder = mapping(tmp_path, "question: ${data.question}\ncustomer: ${data.customer}\n"
                               "documentation: ${data.qa_id}", p).bind(DOCUMENTS)
    values = binder.values(qa_row({"customer": {"firstName": "Ann"}}), [])
    assert values == {"question": "Which tent?", "customer": {"firstName": "Ann"},
                      "documentation": "q1"}


def test_absent_field_is_the_prompt_default_else_none_and_lenient_leaves_it_undefined(
        tmp_path: Path) -> None:
    strict = mapping(tmp_path, FULL + "tone: ${data.tone}\n", prompt(tmp_path)).bind(DOCUMENTS)
    values = strict.values(qa_row(question=None), [])
    assert values["tone"] == "friendly" and values["question"] is None
    lenient = mapping(tmp_path, "question: ${data.question}\ncustomer: {}\n"
                                "history: ${data.chat_history}",
                      prompt(tmp_path, LENIENT, strict=False)).bind(DOCUMENTS)
    values = lenient.values(qa_row(), [])
    assert "history" not in values  # undefined: the loop renders nothing instead of failing
    assert lenient.mapping.prompt.render(**values)[-1] == {"role": "user", "content": "Which tent?"}
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rendered = lenient.mapping.prompt.render(**lenient.values(qa_row({"chat_history": turns}), []))
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]


def test_retrieved_gives_the_chunks_with_doc_titles(tmp_path: Path) -> None:
    binder = mapping(tmp_path, FULL, prompt(tmp_path)).bind(DOCUMENTS)
    chunks = binder.values(qa_row(), CONTEXTS)["documentation"]
    assert chunks == [
        {"id": "tent", "title": "Alpine Tent manual", "content": "Pitch it in 5 minutes.",
         "doc_id": "tent", "text": "Pitch it in 5 minutes."},
        # a doc the frame does not know: its id stands in for the title
        {"id": "stove", "title": "stove", "content": "Boils in 3 minutes.", "doc_id": "stove",
         "text": "Boils in 3 minutes."}]
    system = binder.mapping.prompt.render(**binder.values(qa_row(), CONTEXTS))[0]["content"]
    assert "catalog: tent item: Alpine Tent manual content: Pitch it in 5 minutes." in system


def test_lookup_finds_the_scrubbed_record_comparing_keys_as_strings(tmp_path: Path) -> None:
    binder = mapping(tmp_path, FULL, prompt(tmp_path)).bind(DOCUMENTS)
    customer = binder.values(qa_row({"customerId": 1}), [])["customer"]  # int key, "1" in the file
    assert customer["membership"] == "Gold" and customer["orders"][0]["name"] == "Alpine Tent"
    assert customer["firstName"] == "[NAME]" and customer["email"] == "[EMAIL]"
    assert customer["orders"][0]["contact"] == "[EMAIL]"  # scrubbed inside the nested YAML
    user = binder.mapping.prompt.render(**binder.values(qa_row({"customerId": "1"}), []))[-1]
    assert user["content"] == "[NAME] (Gold): Which tent?" and "Jane" not in user["content"]


def test_lookup_without_key_or_record_gives_the_default(tmp_path: Path) -> None:
    binder = mapping(tmp_path, FULL, prompt(tmp_path)).bind(DOCUMENTS)
    assert binder.values(qa_row(), [])["customer"] == {}
    assert binder.values(qa_row({"customerId": "99"}), [])["customer"] == {}
    custom = mapping(tmp_path, 'question: ${data.question}\ndocumentation: []\n'
                               'customer: {lookup: customers, key: "${data.customerId}", '
                               'default: {membership: guest}}', prompt(tmp_path)).bind(DOCUMENTS)
    assert custom.values(qa_row(), [])["customer"] == {"membership": "guest"}


def test_lookup_can_match_another_field(tmp_path: Path) -> None:
    binder = mapping(tmp_path, FULL + "  match: membership\n", prompt(tmp_path)).bind(DOCUMENTS)
    assert binder.values(qa_row({"customerId": "Base"}), [])["customer"]["lastName"] == "[NAME]"
    assert binder.values(qa_row({"customerId": "Base"}), [])["customer"]["id"] == 2
    assert "by ${data.customerId} on membership (2 records)" in binder.describe()


def test_literals_pass_as_is(tmp_path: Path) -> None:
    binder = mapping(tmp_path, "question: plain text\ndocumentation: [1, 2]\n"
                               "customer: {membership: Gold}\ntone: 3",
                     prompt(tmp_path)).bind(DOCUMENTS)
    assert binder.values(qa_row(), []) == {"question": "plain text", "documentation": [1, 2],
                                           "customer": {"membership": "Gold"}, "tone": 3}
    lenient = mapping(tmp_path, "question: ${data.question}\ncustomer: {}\nhistory: []",
                      prompt(tmp_path, LENIENT, strict=False)).bind(DOCUMENTS)
    assert lenient.values(qa_row(), [])["history"] == []


def test_record_text_reads_back_with_placeholders_as_strings() -> None:
    text = curated_text(CUSTOMERS[0])
    assert "firstName: [NAME]" in text  # yaml.safe_load would read this as the list ['NAME']
    record = parse_record(text)
    assert record == {"id": 1, "firstName": "[NAME]", "lastName": "[NAME]", "email": "[EMAIL]",
                      "membership": "Gold",
                      "orders": [{"id": 7, "name": "Alpine Tent", "contact": "[EMAIL]",
                                  "note": "ask [EMAIL]"}]}
    assert parse_record("# Tent\n\nid: 0012\nprice: 2.5\n\nA long\n\nbody.") == {
        "id": "0012", "price": 2.5, "title": "Tent", "text": "A long\n\nbody."}
    assert parse_record("id: 3\naddress: 1 Main St\nAnytown") == {"id": 3,
                                                                  "address": "1 Main St\nAnytown"}


def test_a_record_that_does_not_read_back_names_its_doc_id(tmp_path: Path) -> None:
    broken = pd.concat([DOCUMENTS, pd.DataFrame([{
        "doc_id": "customer_info_9", "title": "", "text": "id: 9\norders:\n  - a: [b\n  - c",
        "source_path": "customers/customer_info_9.json", "format": "json"}])])
    with pytest.raises(DataError, match="curated record customer_info_9 does not read back") as err:
        mapping(tmp_path, FULL, prompt(tmp_path)).bind(broken)
    assert line_of(tmp_path, "customer:") in str(err.value)


def test_unbound_declared_input_names_the_input_and_line(tmp_path: Path) -> None:
    p = prompt(tmp_path)
    with pytest.raises(DataError) as err:
        mapping(tmp_path, "question: ${data.question}\ndocumentation: ${retrieved}", p)
    message = str(err.value)
    assert f"input 'customer' of {p.path} is unbound: map it under inputs" in message
    assert line_of(tmp_path, "inputs:") in message and f"{WHERE}.customer" in message
    with pytest.raises(DataError, match="inputs is a mapping of prompt input -> source") as err:
        mapping(tmp_path, "- ${data.question}", p)
    assert line_of(tmp_path, "inputs:") in str(err.value)
    # `tone` has a default in the prompt: it may stay unbound
    assert "tone" not in mapping(tmp_path, FULL, p).sources


def test_a_name_the_prompt_neither_declares_nor_uses_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"neither declares nor uses an input 'history'") as err:
        mapping(tmp_path, FULL + "history: []", prompt(tmp_path))
    assert line_of(tmp_path, "history:") in str(err.value)
    lenient = prompt(tmp_path, LENIENT, strict=False)
    assert lenient.undeclared == ("history",)
    assert "history" in mapping(tmp_path, "question: q\ncustomer: {}\nhistory: []", lenient).sources
    with pytest.raises(DataError, match="'profile'"):
        mapping(tmp_path, "question: q\ncustomer: {}\nprofile: {}", lenient)


@pytest.mark.parametrize("source", ['"${data.}"', "${retrieve}", '"${file:chat.json}"',
                                    "hello ${data.question}", '["${data.question}"]'])
def test_an_unknown_source_form_lists_the_forms(tmp_path: Path, source: str) -> None:
    with pytest.raises(DataError) as err:
        mapping(tmp_path, FULL.replace("${data.question}", source), prompt(tmp_path))
    message = str(err.value)
    assert "unknown source" in message and "${data.FIELD}, ${retrieved}, {lookup: FOLDER" in message
    assert line_of(tmp_path, "question:") in message and f"{WHERE}.question" in message


@pytest.mark.parametrize(("lookup", "says", "key"), [
    ("{lookup: customers}", "a lookup's key is ${data.FIELD}", "customer.key"),
    ("{lookup: customers, key: customerId}", "a lookup's key is ${data.FIELD}", "customer.key"),
    ('{lookup: customers, key: "${data.id}", on: id}', "unknown lookup keys ['on']", "customer"),
    ('{lookup: "", key: "${data.id}"}', "lookup names a dataset folder", "customer.lookup"),
    ('{lookup: customers, key: "${data.id}", match: 3}', "match names the record", "customer.match"),
])
def test_a_malformed_lookup_names_its_key(tmp_path: Path, lookup: str, says: str, key: str) -> None:
    with pytest.raises(DataError, match=re.escape(says)) as err:
        mapping(tmp_path, f"question: q\ndocumentation: []\ncustomer: {lookup}", prompt(tmp_path))
    assert line_of(tmp_path, "customer:") in str(err.value) and f"{WHERE}.{key}" in str(err.value)


def test_a_lookup_folder_without_records_or_with_duplicates_fails_at_bind(tmp_path: Path) -> None:
    wrong = mapping(tmp_path, FULL.replace("customers", "custmers"), prompt(tmp_path))
    with pytest.raises(DataError, match=r"no curated records under custmers/; folders with "
                                        r"documents: \['customers', 'manuals'\]"):
        wrong.bind(DOCUMENTS)
    with pytest.raises(DataError, match="no record has a field 'email_address'"):
        mapping(tmp_path, FULL + "  match: email_address", prompt(tmp_path)).bind(DOCUMENTS)
    with pytest.raises(DataError, match="lastName '\\[NAME\\]' is in both customer_info_1 and "
                                        "customer_info_2"):
        mapping(tmp_path, FULL + "  match: lastName", prompt(tmp_path)).bind(DOCUMENTS)


def test_values_are_deterministic_and_the_spec_hash_is_stable(tmp_path: Path) -> None:
    p = prompt(tmp_path)
    first = mapping(tmp_path, FULL, p)
    row = qa_row({"customerId": "1"})
    one, two = first.bind(DOCUMENTS), first.bind(DOCUMENTS.iloc[::-1])
    assert one.values(row, CONTEXTS) == one.values(row, CONTEXTS) == two.values(row, CONTEXTS)
    assert p.render(**one.values(row, CONTEXTS)) == p.render(**two.values(row, CONTEXTS))
    # the same mapping written another way (key order, flow style, defaults spelled out)
    same = mapping(tmp_path, 'customer: {key: "${data.customerId}", lookup: customers/, '
                             "match: id, default: {}}\ndocumentation: ${retrieved}\n"
                             "question: ${data.question}", p)
    assert re.fullmatch(r"[0-9a-f]{16}", first.spec_hash) and same.spec_hash == first.spec_hash
    other = mapping(tmp_path, FULL.replace("customerId", "customer_id"), p)
    assert other.spec_hash != first.spec_hash


def test_describe_summarises_each_input(tmp_path: Path) -> None:
    binder = mapping(tmp_path, FULL + "tone: calm", prompt(tmp_path)).bind(DOCUMENTS)
    assert binder.describe() == ("question <- ${data.question}, documentation <- ${retrieved}, "
                                 "customer <- lookup customers by ${data.customerId} (2 records), "
                                 'tone <- "calm"')
