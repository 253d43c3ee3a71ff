"""Quality rules: normalisation, PII scrubbing, near duplicates, FAQ mining, splits and the checks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.curation import checks, curate, normalise, pii
from llmops_pipelines.curation.dedupe import NearDuplicateIndex, jaccard, shingles
from llmops_pipelines.curation.faq import mine
from llmops_pipelines.curation.synthetic import parse_pair, passages
from llmops_pipelines.schemas import CURATED_DOCUMENTS, CURATED_QA

LONG = ("The Ridgeline E1 battery holds 625 Wh and charges from empty in about 4.5 hours with the "
        "standard 4 A charger. Store it at 50 to 70 percent charge in a dry room above freezing. ")


def body(i: int) -> str:
    """A text no other number's text is a near duplicate of."""
    return f"Article {i}. " + " ".join(f"term{i}x{j}" for j in range(40))


def _rejects(result, rule: str) -> pd.DataFrame:
    return result.rejects[result.rejects["rule"] == rule].sort_values(["source_path", "line"])


def test_normalise_removes_invisible_and_unifies_spaces_but_keeps_indentation() -> None:
    raw = "Zero\u200bwidth\u00a0no-break\u2009thin\x07bell\n  - indented item\t\n"
    assert normalise(raw) == "Zerowidth no-break thinbell\n  - indented item"


@pytest.mark.parametrize(("text", "expected", "kind"), [
    ("Write to jane.doe+shop@example.co.uk today", "Write to [EMAIL] today", "email"),
    ("Call 555-123-4567 or (555) 987-6543", "Call [PHONE] or [PHONE]", "phone"),
    ("Call +44 20 7946 0958 from abroad", "Call [PHONE] from abroad", "phone"),
    ("Hotline: 1-800-123-4567, or 1 (800) 555.1234.", "Hotline: [PHONE], or [PHONE].", "phone"),
    ("Card 4111 1111 1111 1111 expires", "Card [CARD] expires", "card"),
    ("SSN 123-45-6789 on file", "SSN [SSN] on file", "ssn"),
    ("Ship to 123 Main St,  Anytown USA, 12345 please", "Ship to [ADDRESS] please", "address"),
])
def test_pii_patterns(text: str, expected: str, kind: str) -> None:
    counts: Counter[str] = Counter()
    assert pii.scrub(text, counts) == expected
    assert set(counts) == {kind}


@pytest.mark.parametrize("text", [
    "Serviced on 2023-01-05 at 10:30, after 2,000 km.",
    "Version 3.5.1 weighs 12.5 kg; table 48 x 24 inches; item 12345678.",
    "Order 4111 1111 1111 1112 is not a card (Luhn fails).",
    "Rated IPX5, 625 Wh, 20F to 60F (-6C to 15C), price $250.",
])
def test_pii_leaves_ordinary_numbers_alone(text: str) -> None:
    counts: Counter[str] = Counter()
    assert pii.scrub(text, counts) == text
    assert not counts


def test_personal_record_fields_are_scrubbed_by_name(root: Path) -> None:
    (root / "customer.json").write_text(json.dumps({
        "id": "1", "firstName": "John", "lastName": "Smith", "email": "js@example.com",
        "phone": "555-123-4567", "address": "123 Main St, Anytown USA, 12345", "membership": "Base",
        "orders": [{"name": "Alpine Explorer Tent", "note": "call me on 555-222-3333"}]}))
    result = curate(root)
    text = result.documents.iloc[0]["text"]
    for secret in ("John", "Smith", "js@example.com", "4567", "Main St", "3333"):
        assert secret not in text
    assert "firstName: [NAME]" in text and "email: [EMAIL]" in text
    assert "name: Alpine Explorer Tent" in text  # a product name is not a person's name
    assert result.pii_counts == {"email": 1, "phone": 2, "card": 0, "ssn": 0, "address": 1,
                                 "name": 2, "birthdate": 0}
    assert result.rule_hits["pii_scrubbed_documents"] == 1


def test_pii_in_questions_meta_and_rejects_is_scrubbed(root: Path) -> None:
    (root / "qa.jsonl").write_text(
        json.dumps({"question": "I am bob@example.com, where is my order?", "answer": "Shipped",
                    "email": "bob@example.com", "customer_phone": "555-111-2222"}) + "\n"
        + "{not json, mail alice@example.com or call 555-444-5555\n")
    result = curate(root)
    qa = result.qa.iloc[0]
    assert qa["question"] == "I am [EMAIL], where is my order?"
    assert json.loads(qa["meta"]) == {"email": "[EMAIL]", "customer_phone": "[PHONE]"}
    assert _rejects(result, "invalid_json").iloc[0]["raw"] == "{not json, mail [EMAIL] or call [PHONE]"
    assert checks.no_pii({"qa": result.qa, "rejects": result.rejects}).passed


def test_pii_allow_list_in_datasets_yaml(root: Path) -> None:
    (root / "datasets.yaml").write_text("pii:\n  allow: [support@lumen.example]\n")
    (root / "contact.md").write_text(f"# Contact\n\nWrite to support@lumen.example or "
                                     f"ceo@lumen.example. {LONG}")
    text = curate(root).documents.iloc[0]["text"]
    assert "support@lumen.example" in text and "ceo@lumen.example" not in text


def test_near_duplicate_document_is_rejected_and_names_the_first(root: Path) -> None:
    body = LONG * 3
    (root / "a.md").write_text(f"# Battery\n\n{body}")
    (root / "b.md").write_text(f"# Battery\n\n{body.replace('dry room', 'cool room', 1)}")
    (root / "c.md").write_text(f"# Tyres\n\nRun the tyres at 2.5 bar on road. {LONG[:60]}")
    result = curate(root)
    row = _rejects(result, "near_duplicate_document").iloc[0]
    assert (row["source_path"], row["line"]) == ("b.md", 0)
    assert "a.md" in row["reason"] and "threshold 90%" in row["reason"]
    assert sorted(result.documents["doc_id"]) == ["a", "c"]


def test_a_question_about_a_duplicate_points_at_the_kept_copy(root: Path) -> None:
    (root / "a.md").write_text(f"# Battery\n\n{LONG * 3}")
    (root / "b.md").write_text(f"# Battery\n\n{LONG * 3}".upper())
    (root / "c.md").write_text(f"# Battery\n\n{(LONG * 3).replace('dry room', 'cool room', 1)}")
    (root / "qa.jsonl").write_text("".join(
        json.dumps({"question": f"Question {s}?", "answer": "x", "source": s}) + "\n" for s in "bc"))
    result = curate(root)
    assert sorted(result.rejects["rule"]) == ["duplicate_document", "near_duplicate_document"]
    assert list(result.qa["doc_id"]) == ["a", "a"]


def test_near_duplicate_threshold_comes_from_datasets_yaml(root: Path) -> None:
    (root / "datasets.yaml").write_text("quality: {near_duplicate: 0.999}\n")
    (root / "a.md").write_text(f"# Battery\n\n{LONG * 3}")
    (root / "b.md").write_text(f"# Battery\n\n{(LONG * 3).replace('dry room', 'cool room', 1)}")
    assert len(curate(root).documents) == 2


def test_near_duplicates_in_any_script() -> None:
    greek = "Η μπαταρία χωράει 625 Wh και φορτίζει σε τέσσερις ώρες από άδεια. " * 4
    japanese = "".join(f"バッテリー{i}の容量は625Whで、空の状態から約{i}時間で充電できます。"
                       for i in range(8))
    index = NearDuplicateIndex(0.9)
    assert index.add("greek", greek) is None
    assert index.add("japanese", japanese) is None
    name, similarity = index.add("greek-2", greek.replace("625", "626", 1))
    assert name == "greek" and similarity >= 0.9
    assert index.add("japanese-2", japanese.replace("625", "626", 1))[0] == "japanese"
    assert jaccard(shingles(greek), shingles(japanese)) < 0.1


def test_records_are_never_near_duplicates_of_each_other(root: Path) -> None:
    # Two customers with the same orders: similar text, different people.
    order = {"name": "Tent", "description": LONG}
    (root / "c1.json").write_text(json.dumps({"id": "1", "membership": "Gold", "orders": [order]}))
    (root / "c2.json").write_text(json.dumps({"id": "2", "membership": "Gold", "orders": [order]}))
    assert len(curate(root).documents) == 2


def test_too_long_document_is_rejected(root: Path) -> None:
    (root / "datasets.yaml").write_text("quality: {max_doc_chars: 100}\n")
    (root / "long.md").write_text(f"# Long\n\n{LONG}")
    row = _rejects(curate(root), "too_long").iloc[0]
    assert (row["source_path"], row["line"]) == ("long.md", 1)
    assert "> 100" in row["reason"]


MANUAL = """# Trail Tent manual

## Care
1. Dry the tent before packing it.
2. Never machine wash it.

## FAQ
1) Can the tent be used in winter?
   It is a 3-season tent and not suited to heavy snow.

2) How many people sleep in it?
   Four people, with room for their gear.
   Their packs fit in the vestibule.

3. Is there a warranty? Yes, two years against defects.

**Q: Does it come with stakes?**
A: Yes, 12 aluminium stakes.

### Can I buy a footprint?
Yes, sold separately.

4) Is it waterproof?

## Specifications
1) What is not a FAQ question? Anything here.
"""


def test_faq_mining_styles_lines_and_section_end() -> None:
    pairs = mine(MANUAL, "manual.md")
    got = [(p.line, p.question, p.ground_truth) for p in pairs]
    assert got == [
        (8, "Can the tent be used in winter?", "It is a 3-season tent and not suited to heavy snow."),
        (11, "How many people sleep in it?",
         "Four people, with room for their gear. Their packs fit in the vestibule."),
        (15, "Is there a warranty?", "Yes, two years against defects."),
        (17, "Does it come with stakes?", "Yes, 12 aluminium stakes."),
        (20, "Can I buy a footprint?", "Yes, sold separately."),
        (23, "Is it waterproof?", None),
    ]
    assert {p.origin for p in pairs} == {"faq"}


def test_mined_pairs_join_their_document_split_and_bad_ones_are_rejected(root: Path) -> None:
    (root / "manual.md").write_text(MANUAL)
    (root / "qa.jsonl").write_text(json.dumps(
        {"id": "h1", "question": "How many people sleep in it?", "answer": "Four.",
         "source": "manual"}) + "\n")
    result = curate(root)
    doc_split = result.documents.set_index("doc_id").loc["manual", "split"]
    qa = result.qa.set_index("qa_id")
    assert qa.loc["h1", "origin"] == "file"  # the hand-written question wins over the mined one
    faq = result.qa[result.qa["origin"] == "faq"]
    assert len(faq) == 4 and set(faq["split"]) == {doc_split} and set(faq["doc_id"]) == {"manual"}
    assert set(faq["source_path"]) == {"manual.md"} and 8 in set(faq["line"])
    dup = _rejects(result, "duplicate_question").iloc[0]
    assert (dup["source_path"], dup["line"]) == ("manual.md", 11)
    assert "qa.jsonl:1" in dup["reason"]
    unanswered = _rejects(result, "faq_no_answer").iloc[0]
    assert (unanswered["source_path"], unanswered["line"]) == ("manual.md", 23)
    assert result.accounting["unaccounted"] == 0


def test_faq_mining_can_be_switched_off(root: Path) -> None:
    (root / "datasets.yaml").write_text("faq: false\n")
    (root / "manual.md").write_text(MANUAL)
    assert curate(root).qa.empty


def test_near_duplicate_question_about_the_same_document(root: Path) -> None:
    (root / "doc.md").write_text(f"# Battery\n\n{LONG}")
    rows = [{"id": "a", "question": "How long does a full charge take?", "answer": "4.5 h",
             "source": "doc"},
            {"id": "b", "question": "How long does a full charge take ?!", "answer": "4.5 h",
             "source": "doc"},
            {"id": "c", "question": "How long does a full charge take, roughly?", "answer": "4.5 h",
             "source": "doc"}]
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate(root)
    assert _rejects(result, "duplicate_question")["line"].tolist() == [2]
    assert list(result.qa["qa_id"]) == ["a", "c"]  # 'roughly' is a different question enough


def test_adding_a_document_with_faq_moves_nothing(root: Path) -> None:
    for i in range(8):
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\n{body(i)}\n\n## FAQ\n1. Question {i}?\nA{i}.\n")
    before = curate(root)
    (root / "new.md").write_text(f"# New\n\n{body(99)}\n\n## FAQ\n1. Brand new?\nYes.\n")
    after = curate(root)
    assert before.rejects.empty and after.rejects.empty
    assert len(set(before.qa["split"])) > 1
    assert after.data_version != before.data_version
    assert len(after.qa) == len(before.qa) + 1
    old = before.qa.set_index("qa_id")["split"]
    assert after.qa.set_index("qa_id")["split"][old.index].equals(old)
    assert curate(root).data_version == after.data_version


def test_seed_changes_splits_deterministically(root: Path) -> None:
    for i in range(12):
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\n{body(i)}")
    a, b = curate(root, seed=0), curate(root, seed=1)
    assert len(a.documents) == 12
    assert list(a.documents["split"]) != list(b.documents["split"])
    assert list(curate(root, seed=1).documents["split"]) == list(b.documents["split"])
    (root / "datasets.yaml").write_text("split: {seed: 1}\n")
    assert list(curate(root).documents["split"]) == list(b.documents["split"])


def _tables(root: Path):
    for i in range(6):
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\n{body(i)}\n\n## FAQ\n"
                                         f"1. First question {i}?\nYes.\n2. Second question {i}?\nNo.\n")
    result = curate(root)
    assert result.rejects.empty and len(set(result.qa["split"])) > 1
    return result.documents, result.qa


def test_leakage_check_passes_then_fails_on_a_leaked_split(root: Path) -> None:
    docs, qa = _tables(root)
    assert checks.no_split_leakage(qa, docs).passed
    leaked = qa.copy()
    first = leaked.index[0]
    leaked.loc[first, "split"] = "test" if leaked.loc[first, "split"] != "test" else "train"
    outcome = checks.no_split_leakage(leaked, docs)
    assert not outcome.passed
    assert outcome.metadata["documents_in_two_splits"] == 1
    assert outcome.metadata["rows_off_their_document_split"] == 1
    assert leaked.loc[first, "doc_id"] in outcome.description


def test_leakage_check_catches_repeated_pairs_and_synthetic_in_test(root: Path) -> None:
    docs, qa = _tables(root)
    copy = qa.iloc[[0]].assign(qa_id="copy", doc_id=None,
                               split="test" if qa.iloc[0]["split"] != "test" else "train")
    synthetic = qa.iloc[[1]].assign(qa_id="syn", origin="synthetic", doc_id=None, split="test")
    outcome = checks.no_split_leakage(pd.concat([qa, copy, synthetic]), docs)
    assert not outcome.passed
    assert outcome.metadata["pairs_in_two_splits"] == 1
    assert outcome.metadata["synthetic_rows_in_test"] == 1


def test_schema_keys_eval_rows_and_accounting_checks(root: Path) -> None:
    docs, qa = _tables(root)
    assert checks.schema_matches(docs, CURATED_DOCUMENTS).passed
    assert checks.schema_matches(qa, CURATED_QA).passed
    assert not checks.schema_matches(docs.drop(columns="tags"), CURATED_DOCUMENTS).passed
    wrong = checks.schema_matches(docs.assign(n_chars=docs["n_chars"] * 1.5), CURATED_DOCUMENTS)
    assert not wrong.passed and "n_chars: declared int64, found double" in wrong.description
    assert checks.keys_valid(qa, ["qa_id", "question"], "qa_id").passed
    broken = pd.concat([qa, qa.iloc[[0]]]).assign(question=lambda f: f["question"].mask(f.index == 1))
    outcome = checks.keys_valid(broken, ["qa_id", "question"], "qa_id")
    assert not outcome.passed and outcome.metadata["duplicate_ids"] == 1
    assert "null question" in outcome.description
    n_eval = int((qa["split"] == "eval").sum())
    assert checks.enough_eval_rows(qa, n_eval).passed
    assert not checks.enough_eval_rows(qa, n_eval + 1).passed
    assert not checks.accounted({"ingested": 3, "documents": 1, "qa": 1, "rejected": 0,
                                 "unaccounted": 1}).passed


def test_synthetic_reply_parsing_and_passages() -> None:
    assert parse_pair("Q: How long is the warranty?\nA: Two years.") == (
        "How long is the warranty?", "Two years.")
    assert parse_pair("**Question:** Is it waterproof?\n\n**Answer:** Yes, IPX5.") == (
        "Is it waterproof?", "Yes, IPX5.")
    assert parse_pair("The warranty is two years.") is None
    assert parse_pair("Q: Not a question\nA: x") is None
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 100 for i in range(10))
    chunks = passages(text, 3)
    assert len(chunks) == 3 and chunks[0].startswith("Paragraph 0.")
    assert all(len(c) <= 2400 for c in chunks)
