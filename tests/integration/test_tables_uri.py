"""LLMOPS_TABLES_URI: asset outputs on a shared filesystem (fsspec memory://, file://, a folder)."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import fsspec
import pandas as pd
import pytest
from upath import UPath

from llmops_pipelines import tables
from llmops_pipelines.definitions import defs
from llmops_pipelines.settings import Settings
from llmops_pipelines.status import status
from tests.integration.test_lifecycle import lenient_gates

CURATED = ("curated_documents", "curated_qa")


def materialize(selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(), selection=selection)


def local_files(home: Path) -> list[Path]:
    """What LLMOPS_HOME/tables holds (the folder itself may exist: evaluation.py still names it)."""
    folder = home / "tables"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def every_metadata_text(result: dg.ExecuteInProcessResult) -> str:
    """Every event's message and metadata in one string, to search for what must not be there."""
    parts = []
    for event in result.all_events:
        parts.append(str(event.message or ""))
        data = event.event_specific_data
        materialization = getattr(data, "materialization", None)
        if materialization is not None:
            parts.extend(f"{k}={v.value}" for k, v in materialization.metadata.items())
    return "\n".join(parts)


@pytest.fixture
def memory_root(monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket in fsspec's in-process memory filesystem, removed afterwards."""
    bucket = f"llmops-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("LLMOPS_TABLES_URI", f"memory://{bucket}/tables")
    yield UPath(f"memory://{bucket}/tables")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


def test_lifecycle_through_evaluation_summary_on_memory_fs(
        openai_env, isolated_home, memory_root, tmp_path, monkeypatch) -> None:
    lenient_gates(tmp_path, monkeypatch)
    # Curation is one multi-asset: all of it or none (curation_rejects is not upstream).
    result = materialize(dg.AssetSelection.assets("evaluation_summary").upstream()
                         | dg.AssetSelection.groups("curation"))
    assert result.success
    for name in (*CURATED, "rag_chunks", "candidates", "evaluation_rows", "evaluation_summary"):
        assert (memory_root / f"{name}.parquet").exists(), name
    assert (memory_root / "rag_index.json").exists()
    assert local_files(isolated_home) == []
    # The metadata names the table where it really is.
    paths = {m.asset_key.to_user_string(): m.metadata["path"].value
             for m in result.get_asset_materialization_events() for m in [m.materialization]}
    assert paths["evaluation_summary"] == str(memory_root / "evaluation_summary.parquet")

    summary = tables.read_table(memory_root / "evaluation_summary.parquet")
    report = status(Settings.from_env())  # what `llmops status` prints
    assert {c["id"] for c in report["candidates"]} == set(summary["candidate_id"]) != set()
    assert all(c["rows"] > 0 for c in report["candidates"])


@pytest.mark.parametrize("form", ["file_url", "plain_path"])
def test_shared_folder_by_file_url_or_path(openai_env, isolated_home, tmp_path, monkeypatch,
                                           form: str) -> None:
    shared = tmp_path / "team-share" / "tables"
    monkeypatch.setenv("LLMOPS_TABLES_URI", shared.as_uri() if form == "file_url" else str(shared))
    # rag_chunks loads curated_documents back through the IO manager from the shared folder.
    result = materialize(dg.AssetSelection.groups("curation") | dg.AssetSelection.assets("rag_chunks"))
    assert result.success
    chunks = pd.read_parquet(shared / "rag_chunks.parquet")
    assert len(chunks) > 0 and set(chunks["doc_id"]) <= set(
        pd.read_parquet(shared / "curated_documents.parquet")["doc_id"])
    assert local_files(isolated_home) == []
    assert status(Settings.from_env())["candidates"] == []  # reads the share, finds no summary yet


def test_credentials_in_the_uri_never_reach_metadata_or_logs(openai_env, isolated_home,
                                                             monkeypatch) -> None:
    bucket = f"llmops-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("LLMOPS_TABLES_URI",
                       f"memory://alice:hunter2-secret@{bucket}/tables?token=tok-secret-99")
    result = materialize(dg.AssetSelection.groups("curation"))
    assert result.success
    text = every_metadata_text(result)
    assert "***@" in text  # the path is reported, masked
    assert "hunter2-secret" not in text and "tok-secret-99" not in text and "alice" not in text
    fs = fsspec.filesystem("memory")
    assert any(bucket in p for p in fs.find("/"))
    for p in [p for p in fs.find("/") if bucket in p]:
        fs.rm(p)
