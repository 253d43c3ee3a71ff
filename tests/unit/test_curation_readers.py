"""Ingestion rules: CSV, JSON and JSON lines as Q&A or documents, datasets.yaml, bad input by line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.curation import curate
from llmops_pipelines.errors import DataError

LONG = "A sentence long enough to pass the minimum document length filter easily."


def _rejects(result, rule: str) -> pd.DataFrame:
    return result.rejects[result.rejects["rule"] == rule].sort_values("line")


def _accounted(result) -> None:
    a = result.accounting
    assert a["unaccounted"] == 0, a
    assert a["ingested"] == len(result.documents) + len(result.qa) + len(result.rejects)


def test_csv_without_question_is_one_document_per_row(root: Path) -> None:
    (root / "products.csv").write_text(
        "id,name,price,description\n"
        f"1,Trail Tent,250.0,\"Sleeps four, weighs 3 kg. {LONG}\"\n"
        f"2,Camp Stove,80.0,\"Boils a litre in 3 minutes. {LONG}\"\n", encoding="utf-8")
    result = curate(root)
    docs = result.documents.set_index("doc_id")
    assert list(docs.index) == ["products#1", "products#2"]
    assert list(docs["line"]) == [2, 3]
    assert set(docs["format"]) == {"csv"}
    assert docs.loc["products#1", "title"] == "Trail Tent"
    # Title first, the other fields as name: value lines, the text-like column as the body.
    assert docs.loc["products#1", "text"] == (
        f"# Trail Tent\n\nid: 1\nprice: 250.0\n\nSleeps four, weighs 3 kg. {LONG}")
    _accounted(result)


def test_csv_without_a_text_column_renders_every_column(root: Path) -> None:
    (root / "stores.csv").write_text("city,opening_hours,manager_note\n"
                                         "Lyon,9-18 weekdays,Bikes can be collected at the back door\n")
    doc = curate(root).documents.iloc[0]
    assert doc["doc_id"] == "stores#1"  # no id column: the row number
    assert doc["text"] == ("city: Lyon\nopening_hours: 9-18 weekdays\n"
                           "manager_note: Bikes can be collected at the back door")


def test_csv_with_question_column_is_qa(root: Path) -> None:
    (root / "guide.md").write_text(f"# Guide\n\n{LONG}\n")
    (root / "eval.csv").write_text(
        "Question,Answer,Source,Tags,difficulty\n"
        "How long is the guide?,One sentence,guide,\"easy, length\",1\n"
        "Who wrote it?,,,,2\n", encoding="utf-8")
    result = curate(root)
    qa = result.qa.set_index("line")
    assert qa.loc[2, "question"] == "How long is the guide?"
    assert qa.loc[2, "ground_truth"] == "One sentence"
    assert qa.loc[2, "doc_id"] == "guide"
    assert qa.loc[2, "tags"] == "easy,length"
    assert json.loads(qa.loc[2, "meta"]) == {"difficulty": "1"}
    # No answer: kept as a question, but in no split that trains or scores quality.
    assert pd.isna(qa.loc[3, "ground_truth"]) and qa.loc[3, "split"] == "unlabeled"
    _accounted(result)


def test_malformed_csv_row_is_rejected_and_valid_rows_flow(root: Path) -> None:
    (root / "qa.csv").write_text("question,answer\n"
                                     "First question?,yes\n"
                                     "Too,many,fields\n"
                                     "\n"
                                     "Last question?,no\n", encoding="utf-8")
    result = curate(root)
    row = _rejects(result, "malformed_csv").iloc[0]
    assert (row["source_path"], row["line"]) == ("qa.csv", 3)
    assert "expected 2 fields (question, answer), found 3" in row["reason"]
    assert list(result.qa["line"]) == [2, 5]
    _accounted(result)


def test_csv_quoting_error_names_its_line(root: Path) -> None:
    (root / "qa.csv").write_text('question,answer\nFine?,yes\nBroken?,"a "quoted" mess\n',
                                     encoding="utf-8")
    result = curate(root)
    row = _rejects(result, "malformed_csv").iloc[0]
    assert (row["source_path"], row["line"]) == ("qa.csv", 3)
    assert "CSV syntax error" in row["reason"]
    assert list(result.qa["question"]) == ["Fine?"]
    _accounted(result)


def test_qa_csv_row_missing_its_question(root: Path) -> None:
    (root / "qa.csv").write_text("question,answer\nGood?,yes\n,an answer without question\n")
    result = curate(root)
    row = _rejects(result, "missing_field").iloc[0]
    assert (row["source_path"], row["line"]) == ("qa.csv", 3)
    assert "'question'" in row["reason"]
    assert len(result.qa) == 1
    _accounted(result)


def test_json_object_is_one_document_and_array_one_per_object(root: Path) -> None:
    (root / "customers").mkdir()
    (root / "customers" / "c1.json").write_text(json.dumps(
        {"id": "7", "membership": "Gold", "orders": [{"name": "Tent", "qty": 2}]}, indent=2))
    (root / "faq.json").write_text(
        '[\n  {"id": "a", "title": "Returns", "body": "' + LONG + '"},\n'
        '  42,\n'
        '  {"id": "b", "title": "Shipping", "body": "Parcels ship in two days. ' + LONG + '"}\n]\n')
    result = curate(root)
    docs = result.documents.set_index("doc_id")
    assert sorted(docs.index) == ["c1", "faq#a", "faq#b"]
    assert "membership: Gold" in docs.loc["c1", "text"]
    assert "orders:\n  - name: Tent\n    qty: 2" in docs.loc["c1", "text"]
    assert (docs.loc["faq#a", "line"], docs.loc["faq#b", "line"]) == (2, 4)
    assert docs.loc["faq#b", "title"] == "Shipping"
    bad = _rejects(result, "invalid_json").iloc[0]
    assert (bad["source_path"], bad["line"]) == ("faq.json", 3)
    assert "JSON object" in bad["reason"]
    _accounted(result)


def test_invalid_json_file_names_its_line(root: Path) -> None:
    (root / "broken.json").write_text('{\n  "id": 1,\n  "text": oops\n}\n')
    row = _rejects(curate(root), "invalid_json").iloc[0]
    assert (row["source_path"], row["line"]) == ("broken.json", 3)
    assert "not JSON" in row["reason"]


def test_jsonl_without_question_is_documents(root: Path) -> None:
    (root / "kb.jsonl").write_text(
        json.dumps({"doc_id": "x1", "text": LONG}) + "\n\n"
        + json.dumps({"doc_id": "x2", "text": "Another article. " + LONG}) + "\n")
    docs = curate(root).documents
    assert list(docs["doc_id"]) == ["kb#x1", "kb#x2"]
    assert list(docs["line"]) == [1, 3]
    assert list(docs["format"]) == ["jsonl", "jsonl"]


def test_duplicate_document_id_in_a_csv(root: Path) -> None:
    (root / "products.csv").write_text(f"id,description\n1,First. {LONG}\n1,Second. {LONG}\n")
    result = curate(root)
    row = _rejects(result, "duplicate_id").iloc[0]
    assert (row["source_path"], row["line"]) == ("products.csv", 3)
    assert "'products#1'" in row["reason"] and "products.csv:2" in row["reason"]
    assert list(result.documents["doc_id"]) == ["products#1"]
    _accounted(result)


def test_qa_source_may_name_a_record_document(root: Path) -> None:
    (root / "products.csv").write_text(f"id,description\n1,Tent. {LONG}\n2,Stove. {LONG}\n")
    (root / "qa.jsonl").write_text(
        json.dumps({"question": "Tent?", "answer": "yes", "source": "products#2"}) + "\n"
        + json.dumps({"question": "Stove?", "answer": "yes", "source": "products.csv#1"}) + "\n")
    assert list(curate(root).qa["doc_id"]) == ["products#2", "products#1"]


def test_datasets_yaml_overrides_columns_kind_and_ignores(root: Path) -> None:
    (root / "datasets.yaml").write_text(
        "files:\n"
        "  'kb/*.csv': {text: body, id: slug, title: heading}\n"
        "  'tests/*.jsonl': {kind: qa, question: prompt, answer: expected, source: article}\n"
        "ignore: ['drafts/*']\nsplit: {seed: 7}\n", encoding="utf-8")
    for folder in ("kb", "tests", "drafts"):
        (root / folder).mkdir()
    (root / "kb" / "articles.csv").write_text(
        f"slug,heading,summary,body\nreturns,Returns,short,{LONG}\n", encoding="utf-8")
    (root / "tests" / "set.jsonl").write_text(json.dumps(
        {"prompt": "How do returns work?", "expected": "Easily", "article": "articles#returns"}) + "\n")
    (root / "drafts" / "wip.md").write_text(f"# WIP\n\n{LONG}\n")
    result = curate(root)
    doc = result.documents.iloc[0]
    assert (doc["doc_id"], doc["title"]) == ("articles#returns", "Returns")
    assert doc["text"] == f"# Returns\n\nslug: returns\nsummary: short\n\n{LONG}"  # body is the text
    qa = result.qa.iloc[0]
    assert (qa["question"], qa["ground_truth"], qa["doc_id"]) == (
        "How do returns work?", "Easily", "articles#returns")
    assert {"source_path": "drafts/wip.md", "reason": "ignored by datasets.yaml"} in result.skipped
    assert {"source_path": "datasets.yaml", "reason": "dataset configuration"} in result.skipped
    assert result.rejects.empty, result.rejects.to_string()


def test_datasets_yaml_text_column_missing_is_a_row_reject(root: Path) -> None:
    (root / "datasets.yaml").write_text("files:\n  '*.csv': {text: body}\n")
    (root / "kb.csv").write_text(f"id,content\n1,{LONG}\n")
    row = _rejects(curate(root), "missing_field").iloc[0]
    assert (row["source_path"], row["line"]) == ("kb.csv", 2)
    assert "'body'" in row["reason"]


@pytest.mark.parametrize(("yaml_text", "field"), [
    ("files:\n  '*.csv': {txt: body}\n", "files.*.csv"),
    ("files:\n  '*.csv': {kind: table}\n", "files.*.csv.kind"),
    ("quality: {min_doc_chars: many}\n", "quality.min_doc_chars"),
    ("quality: {near_duplicate: 1.5}\n", "quality.near_duplicate"),
    ("split: {seed: x}\n", "split"),
])
def test_bad_datasets_yaml_names_file_and_field(root: Path, yaml_text: str, field: str) -> None:
    (root / "datasets.yaml").write_text(yaml_text)
    with pytest.raises(DataError) as err:
        curate(root)
    assert str(root / "datasets.yaml") in str(err.value)
    assert f"(field {field!r})" in str(err.value)


def test_unknown_top_level_key_in_datasets_yaml(root: Path) -> None:
    (root / "datasets.yaml").write_text("spilt: {seed: 1}\n")
    with pytest.raises(DataError, match="spilt"):
        curate(root)


def test_prompt_folders_and_descriptions_are_skipped_not_ingested(root: Path) -> None:
    (root / "prompts").mkdir()
    (root / "prompts" / "chat.prompty").write_text("---\nname: x\n---\nsystem:\nhi\n")
    (root / "prompts" / "chat.json").write_text('{"question": "sample input?"}')
    (root / "LICENSE").write_text("MIT")
    (root / "doc.txt").write_text(f"Plain text document. {LONG}")
    result = curate(root)
    assert list(result.documents["doc_id"]) == ["doc"]
    assert result.qa.empty and result.rejects.empty
    assert sorted(s["source_path"] for s in result.skipped) == [
        "LICENSE", "prompts/chat.json", "prompts/chat.prompty"]
    assert result.accounting["ingested"] == 1


def test_every_bad_input_in_one_folder_is_accounted_for(root: Path) -> None:
    (root / "good.md").write_text(f"# Good\n\n{LONG}\n")
    (root / "latin.txt").write_bytes(b"caf\xe9 " * 20)
    (root / "empty.csv").write_text("")
    (root / "qa.jsonl").write_text('{"question": "Ok?", "answer": "y"}\n{bad\n{"answer": "n"}\n')
    (root / "rows.csv").write_text(f"id,text\n1,{LONG}\n2\n")
    (root / "image.png").write_bytes(b"\x89PNG")
    result = curate(root)
    _accounted(result)
    assert result.accounting == {"ingested": 9, "documents": 2, "qa": 1, "rejected": 6,
                                 "unaccounted": 0}
    assert sorted(result.rejects["rule"]) == sorted(
        ["not_utf8", "empty_file", "invalid_json", "missing_field", "malformed_csv",
         "unsupported_file"])
    assert all(result.rejects["source_path"] != "")
    assert result.rule_hits["unsupported_file"] == 1 and result.rule_hits["too_long"] == 0
