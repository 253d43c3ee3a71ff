"""evaluation_report materialized by real Dagster against the local OpenAI-compatible server:
the file under LLMOPS_HOME, its metadata, the champion's paired differences once there is one,
and `llmops report` printing where it is."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs
from llmops_pipelines.reporting.files import report_path
from tests.integration.test_lifecycle import lenient_gates
from tests.support.openai_server import FakeOpenAIServer


def materialize(*names: str, upstream: bool = True) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(*names)
    if upstream:  # curation_rejects: the curation multi-asset runs whole
        selection = (selection | dg.AssetSelection.assets("curation_rejects")).upstream()
    return dg.materialize(defs.assets, selection=selection, resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result.asset_materializations_for_node("evaluation_report")[0].metadata


def test_evaluation_report_through_dagster(openai_env: FakeOpenAIServer, isolated_home: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    lenient_gates(tmp_path, monkeypatch)  # so the run's best candidate becomes the champion
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")  # 2 prompt variants x the base model
    assert llmops_main(["report"]) == 2
    assert "materialize the `evaluation_report` asset" in capsys.readouterr().err

    first = metadata(materialize("evaluation_report", "champion"))

    path = report_path(isolated_home)
    assert path.is_file()
    assert first["path"] == dg.MetadataValue.path(str(path))
    assert first["url"] == dg.MetadataValue.url(path.as_uri())
    assert first["size_bytes"].value == path.stat().st_size
    rows = pd.read_parquet(isolated_home / "tables" / "evaluation_rows.parquet")
    assert first["rows"].value == len(rows) and first["candidates"].value == 2
    assert first["questions"].value == rows["qa_id"].nunique()
    assert not list(path.parent.glob(".*.tmp"))
    # The report is the asset's own file, not an IO-manager table.
    assert not list((isolated_home / "tables").glob("evaluation_report*"))

    # Again, with the champion the first run promoted: its paired differences are there.
    champion = json.loads((isolated_home / "tables" / "champion.json").read_text())
    assert champion["candidate_id"]
    again = metadata(materialize("evaluation_report", upstream=False))
    assert again["champion"].value == champion["candidate_id"]
    page = path.read_text(encoding="utf-8")
    assert '<table id="paired-table">' in page and 'data-verdict="' in page
    assert page.count('<tr class="q') == rows["qa_id"].nunique()
    assert "http://" not in page and "https://" not in page

    assert llmops_main(["report"]) == 0
    assert capsys.readouterr().out.strip() == str(path)
