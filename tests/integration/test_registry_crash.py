"""Acceptance: a promotion killed at any point leaves the old or the new champion, never a mix."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from llmops_pipelines.promotion.registry import Registry

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"index": "idx", "data": "data"}
# The child promotes B over A and stops dead (sleeps) at `stop`, where the test SIGKILLs it.
CHILD = textwrap.dedent("""
    import sys, time
    from llmops_pipelines.promotion.registry import Registry

    path, stop = sys.argv[1], sys.argv[2]

    def hook(step):
        if step == stop:
            print(step, flush=True)
            time.sleep(600)

    Registry(path, step_hook=hook).promote(
        {"candidate_id": "B", "prompt_name": "p", "model": "m", "quality": 0.9},
        {"index": "idx", "data": "data"}, reason="B is better", actor="ci",
        rows=[{"qa_id": "q1", "quality": 0.9}])
    print("committed", flush=True)
    time.sleep(600)
""")


def kill_at(path: Path, stop: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), stop], cwd=REPO,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = child.stdout.readline().strip()  # blocks until the child reached `stop`
        assert line == stop, f"child said {line!r}, exit {child.poll()}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()


def consistent(path: Path) -> tuple[str, int]:
    """The champion, checked against the history and deployments it must agree with."""
    registry = Registry(path)
    champion = registry.get()
    history = registry.history()
    moves = [h for h in history if h["action"] in ("promote", "rollback")]
    assert champion is not None
    assert moves[0]["deployment_id"] == champion.deployment_id  # alias and history agree
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        deployments = conn.execute("SELECT COUNT(*) FROM deployments").fetchone()[0]
        kept_rows = conn.execute("SELECT COUNT(*) FROM deployment_rows").fetchone()[0]
    assert kept_rows <= deployments
    return champion.candidate_id, len(moves)


@pytest.mark.parametrize("stop", ["registered", "alias-moved", "history-written"])
def test_killed_inside_the_transaction_keeps_the_old_champion(tmp_path: Path, stop: str) -> None:
    path = tmp_path / "registry.sqlite"
    Registry(path).promote({"candidate_id": "A", "quality": 0.5}, VERSIONS, reason="first",
                           actor="ci")
    kill_at(path, stop)
    assert consistent(path) == ("A", 1)
    registry = Registry(path)
    assert registry.find("B") is None  # the registration rolled back with the rest
    # The registry is usable afterwards: the write lock died with the process.
    registry.promote({"candidate_id": "C", "quality": 0.7}, VERSIONS, reason="next", actor="ci")
    assert consistent(path) == ("C", 2)


def test_killed_after_commit_keeps_the_new_champion(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    Registry(path).promote({"candidate_id": "A", "quality": 0.5}, VERSIONS, reason="first",
                           actor="ci")
    kill_at(path, "committed")
    assert consistent(path) == ("B", 2)
    assert Registry(path).rows(Registry(path).get().deployment_id) == [{"qa_id": "q1",
                                                                         "quality": 0.9}]
