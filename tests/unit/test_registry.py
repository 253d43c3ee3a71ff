"""The deployment registry: aliases over immutable deployments, with who/when/why history."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.promotion.registry import Registry

VERSIONS = {"index": "idx-1", "data": "data-1"}


def summary(candidate_id: str, quality: float = 0.5) -> dict[str, Any]:
    return {"candidate_id": candidate_id, "prompt_name": "grounded_concise",
            "prompt_version": f"pv-{candidate_id}", "model": "gpt-4o-mini",
            "params": '{"temperature": 0}', "quality": quality}


def dep_id(candidate_id: str, versions: dict[str, str] = VERSIONS) -> str:
    return "dep-" + content_hash(candidate_id, versions["index"], versions["data"], length=12)


def count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "state" / "registry.sqlite")


def test_empty_registry(registry: Registry) -> None:
    assert registry.path.is_file()
    assert registry.get() is None
    assert registry.history() == []


def test_promote_registers_and_points_the_alias(registry: Registry) -> None:
    returned = registry.promote(summary("A", 0.5), VERSIONS, reason="first", actor="alice")
    assert returned == dep_id("A")
    champion = registry.get()
    assert champion is not None
    assert champion.deployment_id == dep_id("A")
    assert champion.candidate_id == "A"
    assert champion.prompt_version == "pv-A"
    assert (champion.index_version, champion.data_version) == ("idx-1", "data-1")
    assert champion.summary == summary("A", 0.5)
    assert registry.get("challenger") is None


def test_promote_promote_rollback(registry: Registry) -> None:
    a = registry.promote(summary("A", 0.5), VERSIONS, reason="first deployment", actor="alice")
    b = registry.promote(summary("B", 0.6), VERSIONS, reason="quality 0.6 >= 0.5", actor="bob")
    assert registry.get().deployment_id == b

    back = registry.rollback(reason="B answers in French")
    assert back == a
    assert registry.get().deployment_id == a
    assert registry.get().candidate_id == "A"

    history = registry.history()
    assert [h["action"] for h in history] == ["rollback", "promote", "promote"]
    assert [h["id"] for h in history] == sorted((h["id"] for h in history), reverse=True)
    rollback, second, first = history
    assert (rollback["deployment_id"], rollback["previous_deployment_id"]) == (a, b)
    assert rollback["reason"] == "B answers in French"
    assert rollback["alias"] == "champion"
    assert rollback["actor"]  # the OS user, whoever runs the tests
    assert (second["deployment_id"], second["previous_deployment_id"]) == (b, a)
    assert (second["actor"], second["reason"]) == ("bob", "quality 0.6 >= 0.5")
    assert (first["deployment_id"], first["previous_deployment_id"]) == (a, None)
    assert (first["actor"], first["reason"]) == ("alice", "first deployment")


def test_history_limit_keeps_the_newest(registry: Registry) -> None:
    for name in "ABC":
        registry.promote(summary(name), VERSIONS, reason=f"promote {name}", actor="ci")
    assert [h["reason"] for h in registry.history(limit=2)] == ["promote C", "promote B"]


def test_rollback_without_previous_is_an_error(registry: Registry) -> None:
    with pytest.raises(LlmopsError, match="'champion' has no previous deployment"):
        registry.rollback()
    registry.promote(summary("A"), VERSIONS, reason="first", actor="ci")
    with pytest.raises(LlmopsError) as err:
        registry.rollback()
    assert "champion" in str(err.value)
    # The failed rollback changed nothing.
    assert registry.get().deployment_id == dep_id("A")
    assert [h["action"] for h in registry.history()] == ["promote"]


def test_aliases_are_independent(registry: Registry) -> None:
    a = registry.promote(summary("A"), VERSIONS, reason="champ", actor="ci")
    c = registry.promote(summary("C"), VERSIONS, reason="try it", alias="challenger", actor="ci")
    assert registry.get("champion").deployment_id == a
    assert registry.get("challenger").deployment_id == c
    with pytest.raises(LlmopsError, match="challenger"):
        registry.rollback("challenger")


def test_record_reject_keeps_the_champion(registry: Registry) -> None:
    a = registry.promote(summary("A", 0.5), VERSIONS, reason="first", actor="ci")
    registry.record("reject", summary("R", 0.3), VERSIONS,
                    reason="quality 0.3 is worse than the champion's 0.5", actor="ci")
    assert registry.get().deployment_id == a
    latest = registry.history()[0]
    assert latest["action"] == "reject"
    assert latest["alias"] is None
    assert latest["deployment_id"] == dep_id("R")  # the evidence is kept
    assert latest["reason"] == "quality 0.3 is worse than the champion's 0.5"
    assert count(registry.path, "deployments") == 2
    # A reject is not a promotion: rollback still has nothing to go back to.
    with pytest.raises(LlmopsError):
        registry.rollback()


def test_record_without_summary(registry: Registry) -> None:
    registry.record("reject", None, {}, reason="no candidate was evaluated", actor="ci")
    (row,) = registry.history()
    assert (row["action"], row["deployment_id"], row["reason"]) == (
        "reject", None, "no candidate was evaluated")
    assert count(registry.path, "deployments") == 0


def test_rollback_is_not_confused_by_a_reject(registry: Registry) -> None:
    a = registry.promote(summary("A"), VERSIONS, reason="1", actor="ci")
    registry.promote(summary("B"), VERSIONS, reason="2", actor="ci")
    registry.record("reject", summary("R"), VERSIONS, reason="worse", actor="ci")
    assert registry.rollback() == a


def test_failed_promotion_leaves_the_champion(registry: Registry) -> None:
    a = registry.promote(summary("A"), VERSIONS, reason="first", actor="ci")
    before = registry.history()
    # A reason sqlite cannot store fails the history insert, after the alias has moved
    # inside the transaction: the whole change must roll back.
    with pytest.raises(sqlite3.Error):
        registry.promote(summary("B"), VERSIONS, reason={"not": "text"}, actor="ci")  # type: ignore[arg-type]
    assert registry.get().deployment_id == a
    assert registry.history() == before
    assert count(registry.path, "deployments") == 1


class ExplodingRegistry(Registry):
    """Registers the deployment, then fails before the alias moves."""

    def register(self, conn: sqlite3.Connection, summary: dict[str, Any],
                 versions: dict[str, str]) -> str:
        super().register(conn, summary, versions)
        raise RuntimeError("disk full while registering")


def test_failure_after_register_rolls_back_the_registration(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    a = Registry(path).promote(summary("A"), VERSIONS, reason="first", actor="ci")
    with pytest.raises(RuntimeError, match="disk full"):
        ExplodingRegistry(path).promote(summary("B"), VERSIONS, reason="second", actor="ci")
    reopened = Registry(path)
    assert reopened.get().deployment_id == a
    assert count(path, "deployments") == 1
    assert [h["reason"] for h in reopened.history()] == ["first"]


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    Registry(path).promote(summary("A"), VERSIONS, reason="first", actor="ci")
    b = Registry(path).promote(summary("B"), VERSIONS, reason="second", actor="ci")
    assert Registry(path).get().deployment_id == b


def test_deployment_id_depends_on_versions(registry: Registry) -> None:
    first = registry.promote(summary("A"), VERSIONS, reason="1", actor="ci")
    reindexed = registry.promote(summary("A"), {"index": "idx-2", "data": "data-1"},
                                 reason="2", actor="ci")
    again = registry.promote(summary("A"), VERSIONS, reason="3", actor="ci")
    assert first != reindexed
    assert again == first
    assert count(registry.path, "deployments") == 2


def test_rollback_walks_back_through_history(registry: Registry) -> None:
    a = registry.promote(summary("A"), VERSIONS, reason="1", actor="ci")
    b = registry.promote(summary("B"), VERSIONS, reason="2", actor="ci")
    c = registry.promote(summary("C"), VERSIONS, reason="3", actor="ci")
    assert registry.rollback(reason="C is broken") == b
    assert registry.rollback(reason="so is B") == a  # walks back, does not toggle to C
    assert registry.get().deployment_id == a
    with pytest.raises(LlmopsError, match="no previous deployment"):
        registry.rollback()
    # A promotion after rollbacks starts a new line: rolling it back returns to A.
    d = registry.promote(summary("D"), VERSIONS, reason="4", actor="ci")
    assert registry.rollback() == a
    moves = [(h["action"], h["deployment_id"], h["previous_deployment_id"])
             for h in reversed(registry.history())]
    assert moves == [("promote", a, None), ("promote", b, a), ("promote", c, b),
                     ("rollback", b, c), ("rollback", a, b), ("promote", d, a),
                     ("rollback", a, d)]


def test_history_keeps_the_metrics_and_candidate(registry: Registry) -> None:
    evidence = {"quality": {"passed": True, "diff_vs_champion": 0.1, "ci": [0.05, float("nan")]}}
    registry.promote(summary("A", 0.7), VERSIONS, reason="better", actor="ci", metrics=evidence)
    registry.record("reject", summary("R"), VERSIONS, reason="worse", actor="ci")
    reject, promote = registry.history()
    assert promote["candidate_id"] == "A"
    assert promote["metrics"] == {"quality": {"passed": True, "diff_vs_champion": 0.1,
                                              "ci": [0.05, None]}}  # NaN stored as null
    assert reject["metrics"] == summary("R")  # without evidence, the summary justifies it


def test_rows_kept_with_the_deployment_and_find(registry: Registry) -> None:
    rows = [{"qa_id": "q1", "quality": 0.5, "groundedness": None}]
    a = registry.promote(summary("A"), VERSIONS, reason="1", actor="ci", rows=rows)
    assert registry.rows(a) == rows
    assert registry.find("A").deployment_id == a == registry.find(a).deployment_id
    assert registry.find("nope") is None
    b = registry.promote(summary("B"), VERSIONS, reason="2", actor="ci")
    assert registry.rows(b) is None


def test_promoting_the_current_champion_again_is_refused(registry: Registry) -> None:
    registry.promote(summary("A"), VERSIONS, reason="1", actor="ci")
    with pytest.raises(LlmopsError, match="already is the champion"):
        registry.promote(summary("A"), VERSIONS, reason="again", actor="ci")
    assert len(registry.history()) == 1


def test_an_old_registry_gains_the_metrics_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
            "action TEXT NOT NULL, alias TEXT, deployment_id TEXT, previous_deployment_id TEXT, "
            "actor TEXT, reason TEXT);")
    registry = Registry(path)
    registry.promote(summary("A"), VERSIONS, reason="1", actor="ci")
    assert registry.history()[0]["metrics"]["candidate_id"] == "A"
