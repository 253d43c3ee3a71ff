"""Shared fixtures: an isolated home per test, and the local OpenAI-compatible test server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONTOSO = SHARED / "corpora" / "contoso-outdoors"
# The external corpus lies beside the checkout, not in it: a clone of this repo alone skips these
# tests with the reason, and .ci/run refuses to run without the corpus, so CI never skips them.
needs_contoso = pytest.mark.skipif(not (CONTOSO / "manuals").is_dir(),
                                   reason=f"the Contoso corpus is not at {CONTOSO} (../shared)")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LLMOPS_HOME and DAGSTER_HOME and no inherited LLMOPS_/OPENAI_ vars."""
    for name in list(os.environ):
        if name.startswith(("LLMOPS_", "OPENAI_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "llmops-home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(REPO / "datasets"))
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(REPO / "assets"))
    return home


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_env(openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Point the whole pipeline at the test server through the official client."""
    monkeypatch.setenv("LLMOPS_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    monkeypatch.setenv("LLMOPS_OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("LLMOPS_FINETUNE_POLL_S", "0.01")
    return openai_server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dataset folder of its own: tmp_path also holds the test's LLMOPS_HOME."""
    folder = tmp_path / "ds"
    folder.mkdir()
    return folder
