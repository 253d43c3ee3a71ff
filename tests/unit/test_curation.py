"""Curation: counts, splits by document, stable data versions, and every reject with its place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.curation import assign_split, curate, normalise

# Each doc is longer than MIN_DOC_CHARS (40) and differs in text.
DOCS = {
    "battery": "# Battery\n\nThe battery holds 625 Wh and charges in 4.5 hours from empty.\n",
    "tent": "# Tent\n\nThe tent sleeps four people and weighs 3.2 kg packed in its bag.\n",
    "stove": "# Stove\n\nThe stove boils one litre of water in three minutes at sea level.\n",
    "boots": "# Boots\n\nThe boots are waterproof to 10 cm and need two weeks to break in.\n",
    "jacket": "# Jacket\n\nThe jacket packs into its own pocket and weighs 240 grams in total.\n",
    "lamp": "# Lamp\n\nThe lamp gives 300 lumens for six hours on its top setting, then dims.\n",
}


def _qa_line(qa_id: str, question: str, truth: str, source: str | None) -> str:
    row = {"id": qa_id, "question": question, "ground_truth": truth}
    if source is not None:
        row["source"] = source
    return json.dumps(row)


def _make(root: Path, docs: dict[str, str] = DOCS, qa_lines: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for doc_id, text in docs.items():
        (root / f"{doc_id}.md").write_text(text, encoding="utf-8")
    if qa_lines is None:
        qa_lines = [_qa_line(f"{d}-{i}", f"Question {i} about the {d}?", f"answer {i}", d)
                    for d in docs for i in range(3)]
    (root / "qa.jsonl").write_text("\n".join(qa_lines) + "\n", encoding="utf-8")
    return root


def _rejects(result, rule: str) -> pd.DataFrame:
    return result.rejects[result.rejects["rule"] == rule]


def _one_reject(result, rule: str) -> dict:
    rows = _rejects(result, rule)
    assert len(rows) == 1, result.rejects.to_string()
    return rows.iloc[0].to_dict()


def _nonempty_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def test_counts_titles_and_readme_ignored(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "README.md").write_text("# About this dataset\n\nA description that is long "
                                    "enough to be a document if it were read.\n")
    (root / "LICENSE").write_text("Apache-2.0 and a long enough text to be something.\n")
    result = curate(root)
    assert len(result.documents) == 6
    assert len(result.qa) == 18
    assert result.rejects.empty, result.rejects.to_string()
    assert "README" not in " ".join(result.documents["source_path"])
    docs = result.documents.set_index("doc_id")
    assert docs.loc["battery", "title"] == "Battery"
    assert docs.loc["battery", "source_path"] == "battery.md"
    assert docs.loc["battery", "text"] == DOCS["battery"].strip()
    assert docs.loc["battery", "n_chars"] == len(DOCS["battery"].strip())
    assert set(result.qa["origin"]) == {"file"}
    first = result.qa.iloc[0]
    assert (first["qa_id"], first["question"], first["ground_truth"], first["line"]) == (
        "battery-0", "Question 0 about the battery?", "answer 0", 1)


def test_doc_ids_are_stems_unless_ambiguous_and_sources_resolve_any_alias(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for folder in ("manuals", "old"):
        (root / folder).mkdir(parents=True)
    (root / "manuals" / "battery.md").write_text(DOCS["battery"])
    (root / "manuals" / "warranty.md").write_text(DOCS["battery"].replace("Battery", "Warranty")
                                                  + "\n\nLifetime frame warranty.")
    (root / "old" / "battery.md").write_text(DOCS["battery"] + "\n\nOld edition.")
    lines = [{"question": "How big?", "answer": "625 Wh", "source": "manuals--battery"},
             {"question": "Frame?", "answer": "Lifetime", "source": "warranty"},
             {"question": "Old?", "answer": "Old edition", "source": "old/battery.md"}]
    (root / "qa.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = curate(root)
    # A unique stem is the id; a stem two files share falls back to the folder path.
    assert sorted(result.documents["doc_id"]) == ["manuals--battery", "old--battery", "warranty"]
    assert list(result.qa["doc_id"]) == ["manuals--battery", "warranty", "old--battery"]
    row = result.qa.iloc[0]
    assert row["ground_truth"] == "625 Wh"  # 'answer' is accepted for 'ground_truth'
    assert len(row["qa_id"]) == 12  # no id given: a content hash
    assert result.rejects.empty


def test_splits_follow_the_source_document(tmp_path: Path) -> None:
    result = curate(_make(tmp_path / "ds"))
    doc_split = dict(zip(result.documents["doc_id"], result.documents["split"], strict=True))
    # The fixture is only a useful check if documents land in more than one split.
    assert len(set(doc_split.values())) >= 2, doc_split
    for doc_id, group in result.qa.groupby("doc_id"):
        assert set(group["split"]) == {doc_split[doc_id]}, doc_id
    assert set(doc_split.values()) <= {"train", "eval", "test"}
    for doc_id, split in doc_split.items():
        assert split == assign_split(doc_id)


def test_assign_split_is_deterministic_and_seeded() -> None:
    groups = [f"doc-{i}" for i in range(200)]
    first = [assign_split(g) for g in groups]
    assert first == [assign_split(g) for g in groups]
    assert set(first) == {"train", "eval", "test"}
    # Roughly 50/30/20 over 200 groups; wide bounds, the hash is fixed so this never flakes.
    assert 70 <= first.count("train") <= 130
    assert [assign_split(g, seed=1) for g in groups] != first


def test_same_input_same_data_version(tmp_path: Path) -> None:
    a = curate(_make(tmp_path / "a"))
    b = curate(_make(tmp_path / "b"))  # same content under another folder
    assert a.data_version == b.data_version
    assert curate(tmp_path / "a").data_version == a.data_version
    assert len(a.data_version) == 12


def test_adding_a_document_changes_version_and_moves_no_split(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    before = curate(root)
    (root / "rope.md").write_text("# Rope\n\nThe rope is 60 metres long and rated for 22 kN.\n")
    with (root / "qa.jsonl").open("a", encoding="utf-8") as f:
        f.write(_qa_line("rope-0", "How long is the rope?", "60 metres", "rope") + "\n")
    after = curate(root)
    assert after.data_version != before.data_version
    assert len(after.documents) == len(before.documents) + 1
    assert len(after.qa) == len(before.qa) + 1
    old_docs = before.documents.set_index("doc_id")["split"]
    new_docs = after.documents.set_index("doc_id")["split"]
    assert new_docs[old_docs.index].equals(old_docs)
    old_qa = before.qa.set_index("qa_id")["split"]
    new_qa = after.qa.set_index("qa_id")["split"]
    assert new_qa[old_qa.index].equals(old_qa)


def test_editing_a_document_changes_version(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    before = curate(root).data_version
    (root / "tent.md").write_text(DOCS["tent"].replace("four", "five"))
    assert curate(root).data_version != before


def test_moving_a_qa_line_keeps_the_version(tmp_path: Path) -> None:
    # Line numbers are positions, not content: a blank line inserted changes nothing.
    root = _make(tmp_path / "ds")
    before = curate(root).data_version
    text = (root / "qa.jsonl").read_text(encoding="utf-8")
    (root / "qa.jsonl").write_text("\n" + text, encoding="utf-8")
    after = curate(root)
    assert after.qa["line"].min() == 2
    assert after.data_version == before


def test_normalise_golden() -> None:
    raw = "Cafe\u0301  \r\nline two\r\n\r\n\r\n\r\nend\n"
    assert normalise(raw) == "Caf\u00e9\nline two\n\nend"


def test_bad_qa_lines_land_in_rejects_with_line_and_rule(tmp_path: Path) -> None:
    lines = [
        _qa_line("q1", "How big is the battery?", "625 Wh", "battery"),   # 1 ok
        "",                                                                # 2 blank: skipped
        '{"id": "q2", "question": "broken"',                              # 3 invalid JSON
        json.dumps({"id": "q3", "ground_truth": "x", "source": "tent"}),   # 4 no question
        _qa_line("q1", "Same id again?", "y", "tent"),                     # 5 duplicate id
        _qa_line("q4", "Which doc?", "z", "no-such-doc"),                  # 6 unknown source
        "[1, 2, 3]",                                                       # 7 not an object
        json.dumps({"id": "q5", "question": "   ", "source": "tent"}),     # 8 blank question
        _qa_line("q6", "How many sleep in the tent?", "four", "tent"),     # 9 ok
    ]
    root = _make(tmp_path / "ds", qa_lines=lines)
    result = curate(root)
    assert list(result.qa["qa_id"]) == ["q1", "q6"]
    assert list(result.qa["line"]) == [1, 9]

    bad_json = _rejects(result, "invalid_json").sort_values("line")
    assert list(bad_json["line"]) == [3, 7]
    assert set(bad_json["source_path"]) == {"qa.jsonl"}
    assert "not JSON" in bad_json.iloc[0]["reason"]
    assert bad_json.iloc[0]["raw"] == lines[2]
    assert "JSON object" in bad_json.iloc[1]["reason"]

    missing = _rejects(result, "missing_field").sort_values("line")
    assert list(missing["line"]) == [4, 8]
    assert all("'question'" in r for r in missing["reason"])

    dup = _one_reject(result, "duplicate_qa_id")
    assert (dup["source_path"], dup["line"]) == ("qa.jsonl", 5)
    assert "q1" in dup["reason"]
    assert "qa.jsonl:1" in dup["reason"]  # names the first occurrence

    unknown = _one_reject(result, "unknown_source")
    assert (unknown["source_path"], unknown["line"]) == ("qa.jsonl", 6)
    assert "no-such-doc" in unknown["reason"]
    assert "'source'" in unknown["reason"]

    assert result.rule_hits["duplicate_qa_id"] == 1
    assert result.rule_hits["invalid_json"] == 2
    assert result.rule_hits["missing_field"] == 2
    assert result.rule_hits["unknown_source"] == 1


def test_qa_accounting_invariant(tmp_path: Path) -> None:
    lines = [
        _qa_line("a", "Battery size?", "625 Wh", "battery"),
        "not json at all",
        json.dumps({"id": "b"}),
        _qa_line("a", "Duplicate?", "x", "battery"),
        _qa_line("c", "Ghost?", "x", "ghost"),
        "   ",
        _qa_line("d", "No source given?", "fine", None),
        json.dumps("a string"),
    ]
    root = _make(tmp_path / "ds", qa_lines=lines)
    (root / "more.jsonl").write_text(
        _qa_line("e", "Tent size?", "four", "tent") + "\n{oops\n", encoding="utf-8")
    result = curate(root)
    ingested = _nonempty_lines(root / "qa.jsonl") + _nonempty_lines(root / "more.jsonl")
    qa_rejects = result.rejects[result.rejects["source_path"].str.endswith(".jsonl")
                                & (result.rejects["line"] > 0)]
    assert ingested == 9
    assert len(result.qa) == 3  # a, d, e
    assert len(qa_rejects) == 6
    assert ingested == len(result.qa) + len(qa_rejects)
    # A row without a source has its own split, from its id.
    no_source = result.qa.set_index("qa_id").loc["d"]
    assert no_source["doc_id"] is None or pd.isna(no_source["doc_id"])
    assert no_source["split"] == assign_split("d")


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "latin.md").write_bytes(b"\xff\xfe bad")
    result = curate(root)
    row = _one_reject(result, "not_utf8")
    assert (row["source_path"], row["line"]) == ("latin.md", 1)
    assert "byte 0" in row["reason"]
    assert "latin" not in set(result.documents["doc_id"])


def test_non_utf8_qa_file_is_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "extra.jsonl").write_bytes(b'{"question": "ok?"}\n{"question": "caf\xe9?"}\n')
    row = _one_reject(curate(root), "not_utf8")
    # The line and byte offset of the 0xe9 byte: where to look in an editor.
    assert (row["source_path"], row["line"]) == ("extra.jsonl", 2)
    assert "byte 37" in row["reason"]


def test_utf8_bom_is_not_an_error(tmp_path: Path) -> None:
    # Editors on Windows save UTF-8 with a byte-order mark; it is still UTF-8.
    root = _make(tmp_path / "ds", qa_lines=[])
    (root / "qa.jsonl").write_bytes(
        b"\xef\xbb\xbf" + _qa_line("q1", "Battery?", "625 Wh", "battery").encode() + b"\n")
    (root / "bom.md").write_bytes(b"\xef\xbb\xbf# Bom Title\n\nA document saved with a BOM "
                                  b"by a Windows editor.\n")
    result = curate(root)
    assert result.rejects.empty, result.rejects.to_string()
    assert list(result.qa["qa_id"]) == ["q1"]
    docs = result.documents.set_index("doc_id")
    assert docs.loc["bom", "title"] == "Bom Title"
    assert docs.loc["bom", "text"].startswith("# Bom Title")


def test_empty_files_are_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "blank.md").write_text("  \n\n")
    (root / "empty.jsonl").write_text("")
    result = curate(root)
    rows = _rejects(result, "empty_file").sort_values("source_path")
    assert list(rows["source_path"]) == ["blank.md", "empty.jsonl"]
    assert list(rows["line"]) == [0, 0]
    assert result.rule_hits["empty_file"] == 2


def test_too_short_document_is_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "stub.md").write_text("# Stub\n\nTBD.\n")
    row = _one_reject(curate(root), "too_short")
    assert (row["source_path"], row["line"]) == ("stub.md", 1)
    assert "< 40" in row["reason"]


def test_unsupported_extension_is_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    (root / "catalog.pdf").write_bytes(b"%PDF-1.7 not text")
    (root / ".hidden.csv").write_text("ignored,file\n")
    result = curate(root)
    row = _one_reject(result, "unsupported_file")
    assert (row["source_path"], row["line"]) == ("catalog.pdf", 0)
    assert ".pdf" in row["reason"]
    assert len(result.documents) == len(DOCS)
    assert {"source_path": ".hidden.csv", "reason": "hidden"} in result.skipped


def test_exact_duplicate_document_is_rejected(tmp_path: Path) -> None:
    root = _make(tmp_path / "ds")
    # Same text up to case and trailing whitespace: normalised, then compared case-blind.
    (root / "zz-copy.md").write_text(DOCS["stove"].upper() + "\n\n\n")
    result = curate(root)
    row = _one_reject(result, "duplicate_document")
    assert (row["source_path"], row["line"]) == ("zz-copy.md", 0)
    assert "stove.md" in row["reason"]  # names the document it duplicates
    assert "zz-copy" not in set(result.documents["doc_id"])
    assert len(result.documents) == len(DOCS)
    assert result.rule_hits["duplicate_document"] == 1


def test_curated_tables_have_declared_types(tmp_path: Path) -> None:
    result = curate(_make(tmp_path / "ds"))
    # The first columns are the historical contract; later ones were added, never renamed.
    assert list(result.documents.columns) == ["doc_id", "title", "text", "source_path", "split",
                                              "n_chars", "content_hash", "line", "format", "tags",
                                              "flags"]
    assert list(result.qa.columns) == ["qa_id", "question", "ground_truth", "doc_id", "split",
                                       "source_path", "line", "origin", "tags", "meta", "flags"]
    assert list(result.rejects.columns) == ["source_path", "line", "rule", "reason", "raw"]
    assert result.qa["line"].dtype == "int64"


def test_empty_folder_curates_to_empty_tables(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    result = curate(root)
    assert (len(result.documents), len(result.qa), len(result.rejects)) == (0, 0, 0)
    assert result.data_version == curate(root).data_version


@pytest.mark.parametrize("name", ["README.md", "readme.txt", "LICENSE", "NOTICE.md", "COPYING"])
def test_dataset_descriptions_are_ignored(tmp_path: Path, name: str) -> None:
    root = tmp_path / "ds"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / name).write_text("x")  # would be too_short or unsupported if it were read
    result = curate(root)
    assert result.rejects.empty
    assert result.documents.empty


def test_the_projects_own_dataset_curates_cleanly() -> None:
    # The sample dataset is the demo's input: any reject there is a bug in the data or in curation.
    result = curate(Path(__file__).resolve().parents[2] / "datasets")
    assert result.rejects.empty, result.rejects[["source_path", "line", "rule", "reason"]].to_string()
    assert result.accounting["unaccounted"] == 0
    assert int((result.qa["split"] == "eval").sum()) >= 8
    faq = result.qa[result.qa["origin"] == "faq"]
    assert len(faq) > 0 and faq["doc_id"].notna().all()
    file_questions = set(result.qa.loc[result.qa["origin"] == "file", "question"].str.lower())
    assert not set(faq["question"].str.lower()) & file_questions
