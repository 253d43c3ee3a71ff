"""Two runs at once: a fresh Dagster instance created before the first run, a champion step
that finds its candidate already champion (another run promoted it) succeeding as a no-op."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs
from llmops_pipelines.promotion.registry import Registry
from tests.support.eval_tables import candidate_rows, write_evaluation

REPO = Path(__file__).resolve().parents[2]
OPEN_INSTANCE = "import dagster as dg; print(len(dg.DagsterInstance.get().get_runs()))"


def run(selection: list[str]) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                          resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def test_champion_step_finding_its_candidate_already_champion_is_a_no_op(isolated_home) -> None:
    write_evaluation(isolated_home, candidate_rows("best@gpt-4o-mini#1", quality=0.6,
                                                   groundedness=0.8, seed=1))
    decided = run(["promotion_decision"])
    assert decided.success
    # Two runs decided before either moved the alias: both champion steps read this decision.
    first, second = run(["champion"]), run(["champion"])
    assert first.success
    assert second.success, [e.message for e in second.all_events if e.is_failure]
    first_value = first.output_for_node("champion")
    second_value = second.output_for_node("champion")
    assert first_value["changed"] is True and second_value["changed"] is False
    assert first_value["deployment_id"] == second_value["deployment_id"]
    history = Registry(isolated_home / "registry.sqlite").history()
    assert [e["action"] for e in history] == ["promote"]  # one promotion, not two


def test_manual_promote_of_the_current_champion_still_says_so(isolated_home, capsys) -> None:
    write_evaluation(isolated_home, candidate_rows("best@gpt-4o-mini#1", quality=0.6,
                                                   groundedness=0.8, seed=1))
    assert llmops_main(["promote", "best", "--reason", "first"]) == 0
    assert llmops_main(["promote", "best", "--reason", "again"]) == 2
    assert "already is the champion" in capsys.readouterr().err


def test_llmops_init_creates_the_instance_storage_before_the_first_run(tmp_path: Path,
                                                                       monkeypatch) -> None:
    fresh = tmp_path / "fresh-dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(fresh))
    assert llmops_main(["init"]) == 0
    assert (fresh / "dagster.yaml").exists()
    with closing(sqlite3.connect(fresh / "history" / "runs.db")) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "run_tags", "daemon_heartbeats"} <= tables
    assert llmops_main(["init"]) == 0  # idempotent
    # Concurrent first runs now only open existing storage: none may fail creating a table.
    env = {**os.environ, "DAGSTER_HOME": str(fresh)}
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_INSTANCE], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert all(rc == 0 for rc, _ in outcomes), [err[-500:] for _, err in outcomes]


@pytest.mark.parametrize("target", ["demo", "ui"])
def test_makefile_creates_the_instance_storage_before_running(target: str) -> None:
    # Dry run: the instance step (llmops init) comes before the target's first dagster command.
    out = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "DAGSTER_HOME": "/nonexistent/dagster-home"},
                         check=True).stdout
    lines = out.splitlines()
    init = next(i for i, line in enumerate(lines) if "llmops init" in line)
    first_dagster = next(i for i, line in enumerate(lines) if "bin/dagster " in line)
    assert init < first_dagster
