"""The Dagster CLI entry points users and CI run: definitions load, and `materialize --select '*'`
(with a night: nightly_reevaluation is daily-partitioned, so the whole graph names one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_lifecycle import lenient_gates

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
NIGHT = "2025-01-02"  # the nightly_reevaluation partition the whole graph materializes


def test_the_whole_graph_without_a_night_is_refused_before_any_run(openai_env) -> None:
    """`--select '*'` alone would re-ask the provider for an unnamed night: Dagster refuses."""
    done = run([DAGSTER, "asset", "materialize", "-m", "llmops_pipelines.definitions",
                "--select", "*"])
    assert done.returncode != 0 and "--partition" in done.stdout + done.stderr
    assert sum(openai_env.counts.values()) == 0


def run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=timeout)


def test_definitions_validate() -> None:
    done = run([DAGSTER, "definitions", "validate", "-m", "llmops_pipelines.definitions"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful" in done.stderr + done.stdout


def test_cli_materializes_whole_graph_on_openai_compatible_server(openai_env, isolated_home,
                                                                 tmp_path, monkeypatch) -> None:
    # The gate checks are blocking: hold the test server's extractive answers to what they reach.
    lenient_gates(tmp_path, monkeypatch)
    done = run([DAGSTER, "asset", "materialize", "-m", "llmops_pipelines.definitions",
                "--select", "*", "--partition", NIGHT])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = (isolated_home / "tables" / "nightly_reevaluation.parquet")
    assert report.exists() and (isolated_home / "tables" / "nightly" / f"{NIGHT}.parquet").exists()
    decision = json.loads((isolated_home / "tables" / "promotion_decision.json").read_text())
    assert decision["candidate_id"]
    # The key reaches the server (auth passed) but never any file we wrote.
    assert openai_env.counts["chat"] > 0
    for path in isolated_home.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".parquet", ".jsonl", ".sqlite", ".yaml"}:
            assert b"test-key-not-secret" not in path.read_bytes(), path
    assert "test-key-not-secret" not in done.stdout + done.stderr


def test_missing_key_is_a_clear_error_at_run_start(monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_PROVIDER", "openai")
    done = run([DAGSTER, "asset", "materialize", "-m", "llmops_pipelines.definitions",
                "--select", "*", "--partition", NIGHT])
    assert done.returncode != 0
    assert "OPENAI_API_KEY" in done.stdout + done.stderr
