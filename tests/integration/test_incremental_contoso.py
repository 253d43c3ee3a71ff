"""Acceptance on the Contoso corpus through Dagster: one manual's section edited, and the chat
calls the test server counts equal the rows whose retrieved context ids changed (> 0)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import CONTOSO, needs_contoso
from tests.integration.test_evaluation_assets import chat_calls, materialize
from tests.integration.test_incremental_reruns import (
    changed_rows,
    contexts,
    edit_retrieved_section,
    rows_metadata,
)
from tests.integration.test_lifecycle import lenient_gates, table
from tests.support.openai_server import FakeOpenAIServer


@needs_contoso
def test_one_contoso_manual_section_edited_reanswers_exactly_the_rows_whose_contexts_changed(
        openai_env: FakeOpenAIServer, isolated_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    corpus = tmp_path / "contoso"
    shutil.copytree(CONTOSO, corpus)
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(corpus))
    lenient_gates(tmp_path, monkeypatch)
    assert materialize().success
    before = contexts(isolated_home)
    doc = edit_retrieved_section(isolated_home, corpus,
                                 "Contoso replaces this part free of charge within two years.")
    server.reset()
    result = materialize()
    assert result.success
    after = contexts(isolated_home)
    expected = changed_rows(before, after)
    assert 0 < len(expected) < len(after)
    assert chat_calls(server) == {"judge": 0, "synthetic": 0, "answer": len(expected)}
    assert server.counts["ft_create"] == 0  # a small drift keeps the remote model
    assert rows_metadata(result)["reruns"].startswith(
        f"{len(expected)} of {len(after)} rows re-run because their contexts changed")
    assert doc in rows_metadata(result)["reruns"]
    rows = table(isolated_home, "evaluation_rows")
    assert rows["error"].isna().all()
