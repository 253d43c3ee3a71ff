"""Curation on the external Contoso Outdoors corpus, unchanged: the issue's acceptance numbers.

Also the Dagster side: the curation assets and their checks materialize on it, no email or
phone survives in any output Parquet, and the leakage check fails a run on a leaked split.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.curation import curate
from llmops_pipelines.definitions import resources
from llmops_pipelines.defs import curation as curation_defs
from tests.conftest import CONTOSO, needs_contoso

# Independent of the scrubber's own patterns, on purpose.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\b\d{3}[-. ]\d{3}[-. ]\d{4}\b|\+\d[\d -]{7,}\d")
TABLES = ("curated_documents", "curated_qa", "curation_rejects")
pytestmark = needs_contoso


@pytest.fixture(scope="module")
def contoso():
    return curate(CONTOSO)


def test_contoso_documents_per_kind(contoso) -> None:
    docs = contoso.documents
    folder = docs["source_path"].str.split("/").str[0]
    assert (folder == "manuals").sum() == 20
    assert set(docs.loc[folder == "manuals", "format"]) == {"markdown"}
    products = docs[docs["source_path"] == "products.csv"]
    assert len(products) == 20 and products["doc_id"].str.startswith("products#").all()
    assert "price: 250.0" in products.set_index("doc_id").loc["products#1", "text"]
    assert (folder == "customers").sum() == 12
    assert contoso.rejects.empty, contoso.rejects.to_string()
    assert sorted(s["source_path"] for s in contoso.skipped) == [
        "LICENSE", "README.md", "prompts/chat.json", "prompts/chat.prompty",
        "prompts/groundedness.prompty", "prompts/relevance.prompty"]
    assert contoso.accounting["unaccounted"] == 0


def test_contoso_faq_pairs_with_their_source(contoso) -> None:
    faq = contoso.qa[contoso.qa["origin"] == "faq"]
    assert len(faq) >= 85
    assert faq["source_path"].str.match(r"manuals/product_info_\d+\.md").all()
    assert faq["doc_id"].str.match(r"product_info_\d+$").all()
    assert faq["ground_truth"].str.len().gt(10).all()
    first = faq[(faq["doc_id"] == "product_info_1") & (faq["line"] == 202)].iloc[0]
    assert first["question"] == "Can the TrailMaster X4 Tent be used in winter conditions?"
    assert first["ground_truth"].startswith("The TrailMaster X4 Tent is designed for 3-season use")
    doc_split = contoso.documents.set_index("doc_id")["split"]
    assert (faq["split"] == faq["doc_id"].map(doc_split)).all()


def test_contoso_questions_without_answers_are_kept_unlabeled(contoso) -> None:
    rows = contoso.qa[contoso.qa["source_path"] == "questions.jsonl"]
    assert len(rows) == 12
    assert rows["doc_id"].isna().all() and rows["ground_truth"].isna().all()
    assert set(rows["split"]) == {"unlabeled"}
    meta = json.loads(rows.sort_values("line").iloc[0]["meta"])
    # Empty values (chat_history: []) carry nothing and are left out.
    assert meta == {"customerId": "4", "intent": "chat"}


def test_contoso_customer_pii_is_scrubbed(contoso) -> None:
    customers = contoso.documents[contoso.documents["source_path"].str.startswith("customers/")]
    for text in customers["text"]:
        assert "firstName: [NAME]" in text and "email: [EMAIL]" in text
        assert "phone: [PHONE]" in text and "address: [ADDRESS]" in text
    assert contoso.pii_counts["email"] >= 12 and contoso.pii_counts["phone"] >= 12
    assert contoso.pii_counts["name"] == 24 and contoso.pii_counts["address"] >= 12


def test_contoso_version_stable_and_adding_a_document_moves_nothing(contoso, tmp_path) -> None:
    assert curate(CONTOSO).data_version == contoso.data_version
    copy = tmp_path / "contoso"
    shutil.copytree(CONTOSO, copy)
    (copy / "manuals" / "product_info_21.md").write_text(
        "# Information about product item_number: 21\nSummit Lantern, price $45,\n\n## FAQ\n"
        "1) How long does the Summit Lantern run?\n   Twelve hours on its low setting.\n")
    after = curate(copy)
    assert after.data_version != contoso.data_version
    assert len(after.documents) == len(contoso.documents) + 1
    assert len(after.qa) == len(contoso.qa) + 1
    before = contoso.qa.set_index("qa_id")["split"]
    assert after.qa.set_index("qa_id")["split"][before.index].equals(before)


def _curation_defs() -> dg.Definitions:
    return dg.Definitions(assets=[curation_defs.curated],
                          asset_checks=dg.load_asset_checks_from_modules([curation_defs]),
                          resources=resources())


def test_contoso_through_dagster_with_every_check(isolated_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(CONTOSO))
    defs = _curation_defs()
    result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"pii_scrubbed", "nothing_silently_dropped", "documents_schema",
                                "documents_keys", "qa_schema", "qa_keys", "qa_no_split_leakage",
                                "qa_min_eval_rows", "rejects_schema", "has_documents"}
    assert all(e.passed for e in evaluations.values())
    pii = evaluations["pii_scrubbed"].metadata
    assert pii["replaced_email"].value >= 12 and pii["replaced_phone"].value >= 12
    for name in TABLES:
        frame = pd.read_parquet(isolated_home / "tables" / f"{name}.parquet")
        for column in frame.columns:
            text = "\n".join(frame[column].dropna().astype(str))
            assert not EMAIL.search(text), (name, column, EMAIL.search(text))
            assert not PHONE.search(text), (name, column, PHONE.search(text))
    qa = pd.read_parquet(isolated_home / "tables" / "curated_qa.parquet")
    assert (qa["origin"] == "faq").sum() >= 85

    # Leak one FAQ question into another split: the blocking leakage check fails the run.
    faq = qa[qa["origin"] == "faq"]
    doc = faq["doc_id"].value_counts().index[0]
    first = faq.index[faq["doc_id"] == doc][0]
    qa.loc[first, "split"] = "test" if qa.loc[first, "split"] != "test" else "train"
    qa.to_parquet(isolated_home / "tables" / "curated_qa.parquet", index=False)
    leaked = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            selection=dg.AssetSelection.checks(curation_defs.qa_no_split_leakage),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not leaked.success
    (verdict,) = leaked.get_asset_check_evaluations()
    assert not verdict.passed
    assert doc in verdict.description
    assert verdict.metadata["documents_in_two_splits"].value == 1


def test_min_eval_rows_check_blocks_a_run(isolated_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_MIN_EVAL_ROWS", "1000")
    defs = _curation_defs()
    result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts["qa_min_eval_rows"] is False
    assert verdicts["qa_no_split_leakage"] is True
