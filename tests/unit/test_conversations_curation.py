"""Conversation curation: every malformed line rejected with file:line, splits by conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_pipelines.curation import conversations as cc
from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.retention import LOCAL_ENTITIES, LOCAL_FACTS, local_retention

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "data" / "conversations" / "malformed.jsonl"


def line(cid: str, turns: list[tuple[str, str]], **extra: object) -> str:
    return json.dumps({"conversation_id": cid, "turns": [{"role": r, "content": c}
                                                         for r, c in turns],
                       "expected": "an answer", **extra})


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "conversations.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fixture_rejects_name_file_line_and_rule() -> None:
    result = cc.read(FIXTURE)
    assert result.conversations["conversation_id"].tolist() == ["ok-1"]
    assert [(r.line, r.rule) for r in result.rejects.itertuples()] == [
        (2, "invalid_json"), (3, "missing_field"), (4, "wrong_role"),
        (5, "last_turn_not_user"), (6, "duplicate_conversation_id")]
    assert result.errors[0].startswith(f"{FIXTURE}:2: invalid_json: malformed JSON")
    assert "'conversation_id' is missing" in result.errors[1]
    assert "turns[0].role='system'" in result.errors[2]
    assert f"already used at {FIXTURE}:1" in result.errors[4]


@pytest.mark.parametrize(("bad", "rule", "says"), [
    (json.dumps([1, 2]), "invalid_json", "expected a JSON object"),
    (line("a", [("user", "q")]).replace('"an answer"', '""'), "missing_field", "'expected'"),
    (line("a", [("user", "q"), ("user", "again")]), "wrong_role", "turns[1].role='user'"),
    (line("a", [("user", "")]), "missing_field", "turns[0].content"),
    (line("a", [("user", "q")], retention="Fold F2"), "wrong_type", "'retention'"),
    (json.dumps({"conversation_id": 7, "turns": [{"role": "user", "content": "q"}],
                 "expected": "x"}), "wrong_type", "'conversation_id'"),
])
def test_each_problem_is_one_reject_on_its_line(tmp_path: Path, bad: str, rule: str,
                                                says: str) -> None:
    path = write(tmp_path, line("good", [("user", "q")]), bad)
    result = cc.read(path)
    assert result.rejects[["line", "rule"]].values.tolist() == [[2, rule]]
    assert says in result.rejects["reason"].iloc[0]
    assert result.errors[0].startswith(f"{path}:2: {rule}")
    assert len(result.conversations) == 1


def test_a_file_that_is_not_text_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "conversations.jsonl"
    path.write_bytes(b'{"conversation_id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=rf"{path.name}:1: not UTF-8"):
        cc.read(path)


def test_no_file_is_an_empty_set(tmp_path: Path) -> None:
    result = cc.curate(tmp_path)
    assert result.conversations.empty and result.rejects.empty


def test_split_is_per_conversation_and_deterministic(tmp_path: Path) -> None:
    lines = [line(f"c{i}", [("user", "a"), ("assistant", "b"), ("user", "c")]) for i in range(40)]
    first = cc.read(write(tmp_path, *lines)).conversations
    again = cc.read(write(tmp_path, *reversed(lines))).conversations
    assert dict(zip(first["conversation_id"], first["split"], strict=True)) == dict(
        zip(again["conversation_id"], again["split"], strict=True))
    assert set(first["split"]) >= {"train", "test"}
    # One row per conversation: its turns travel together, so no split can hold half of one.
    assert first["conversation_id"].is_unique
    assert all(len(cc.turns_of(r)) == 3 for r in first.to_dict("records"))


def test_the_sample_set_is_valid_and_multi_turn() -> None:
    result = cc.curate(REPO / "datasets")
    frame = result.conversations
    assert result.rejects.empty
    assert 8 <= len(frame) <= 12
    assert frame["expected_doc_id"].notna().all() and frame["retention"].map(len).gt(0).all()
    assert all(len(cc.turns_of(r)) >= 3 for r in frame.to_dict("records"))
    docs = {p.stem for p in (REPO / "datasets" / "docs").glob("*.md")}
    assert set(frame["expected_doc_id"]) <= docs


def test_local_retention_depends_on_the_answer() -> None:
    history = [{"role": "user", "content": "Which bike folds?"},
               {"role": "assistant", "content": "The Fold F2."}]
    full, method, _ = local_retention("The Fold F2 charges in 4 hours.", ["Fold F2"], history)
    none, _, _ = local_retention("About 4 hours.", ["Fold F2"], history)
    half, _, _ = local_retention("The F2 takes 4 hours.", ["Fold F2"], history)
    assert (full, none, half, method) == (1.0, 0.0, 0.5, LOCAL_FACTS)
    by_name, method, _ = local_retention("The Fold F2 charges fast.", [], history)
    assert method == LOCAL_ENTITIES and by_name == 1.0


def test_judged_retention_parses_the_score_or_says_why_not() -> None:
    from llmops_pipelines.evaluation.retention import judged_retention

    history = [{"role": "user", "content": "Which bike folds?"}]
    seen: list[list] = []

    def judge(messages: list) -> str:
        seen.append(messages)
        return "Score: 4. It names the Fold F2." if "Fold" in messages[-1]["content"] else "meh"

    good = judged_retention(judge, "judge-m", history, "Charge time?", "The Fold F2: 4 h.")
    bad = judged_retention(judge, "judge-m", history, "Charge time?", "4 h.")
    assert good[0] == 0.75 and good[1] == "judge:judge-m"
    assert bad[0] != bad[0] and "no 'Score: 1-5'" in bad[2]  # NaN, with the reason
    assert "Which bike folds?" in seen[0][-1]["content"]
