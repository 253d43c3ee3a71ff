"""The bad-input corpus (tests/data/bad_inputs): every case curated beside one good document
ends as its expected reject (rule, file, line), flag, kept row or error, and never crashes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_pipelines.curation import curate
from llmops_pipelines.errors import DataError

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())["cases"]
GOOD = "# Guide\n\nThe guide explains how to pitch the tent and how to fold it again afterwards.\n"


def _name(case: dict[str, Any]) -> str:
    return str(case.get("file") or case.get("dir") or case.get("link") or f"root-{case['root']}")


def _dataset(case: dict[str, Any], tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    if "dir" in case:
        shutil.copytree(CORPUS / "dirs" / case["dir"], root)
    elif case.get("root") == "missing":
        return root
    elif case.get("root") == "a_file":
        root.write_text(GOOD)
        return root
    else:
        root.mkdir()
    (root / "guide.md").write_text(GOOD)
    if "file" in case:
        shutil.copy(CORPUS / "files" / case["file"], root / case["file"])
    if "link" in case:
        target = case["to"] if case["to"].startswith("/") else root / case["to"]
        os.symlink(target, root / case["link"])
    return root


def test_the_corpus_holds_at_least_40_cases_and_every_file_is_used() -> None:
    assert len(CASES) >= 40
    used = {c["file"] for c in CASES if "file" in c} | {c["dir"] for c in CASES if "dir" in c}
    present = {p.name for p in (CORPUS / "files").iterdir()} | \
        {p.name for p in (CORPUS / "dirs").iterdir()}
    assert used == present


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_bad_input_becomes_its_expected_outcome(case: dict[str, Any], tmp_path: Path) -> None:
    root = _dataset(case, tmp_path)
    if "error" in case:
        with pytest.raises(DataError) as err:
            curate(root)
        assert case["error"] in str(err.value)
        return
    result = curate(root)
    assert result.accounting["unaccounted"] == 0, result.accounting
    # The good document always survives its bad neighbour.
    assert "guide" in set(result.documents["doc_id"])
    if "rule" in case:
        source = case.get("source") or _name(case)
        found = result.rejects[(result.rejects["rule"] == case["rule"])
                               & (result.rejects["source_path"] == source)]
        assert len(found) >= 1, result.rejects.to_dict("records")
        assert int(found["line"].iloc[0]) == case["line"]
        assert case.get("reason", "") in found["reason"].iloc[0]
        assert result.rule_hits[case["rule"]] >= 1
    else:
        assert result.rejects.empty, result.rejects.to_dict("records")
    if "flag" in case:
        flagged = [f for f in [*result.documents["flags"], *result.qa["flags"]] if f]
        assert flagged == [case["flag"]] and result.rule_hits[case["flag"]] == 1
    if "kept" in case:
        assert len(result.documents if case["kept"] == "documents" else result.qa) >= 2
