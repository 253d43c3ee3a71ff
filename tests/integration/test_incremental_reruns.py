"""What each change re-runs, counted at the test server: only the rows whose model input changed.

Each test builds the lifecycle once, changes one thing, re-materializes, and compares the chat
calls the server answered with the set of rows the test computes itself from the retrieved
context ids before and after (chunk ids are content hashes: an id changes iff its text does).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmops_pipelines.automation import triggers
from tests.integration.test_evaluation_assets import chat_calls, materialize
from tests.integration.test_lifecycle import REPO, lenient_gates, table
from tests.support.openai_server import FakeOpenAIServer

ROW = ["candidate_id", "qa_id"]


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's dataset folder that the test may edit, without conversations:
    the call counts here are evaluation_rows' (conversations: test_conversation_eval)."""
    folder = tmp_path / "datasets"
    shutil.copytree(REPO / "datasets", folder)
    (folder / "conversations.jsonl").unlink()
    monkeypatch.setenv("LLMOPS_DATASETS_DIR", str(folder))
    return folder


def contexts(home: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """Each row's retrieved chunk ids, in the order the prompt renders them."""
    rows = table(home, "evaluation_rows")
    return {(r.candidate_id, r.qa_id): tuple(r.context_ids) for r in rows.itertuples()}


def changed_rows(before: dict, after: dict) -> set[tuple[str, str]]:
    return {row for row, ids in after.items() if before.get(row) != ids}


def edit_retrieved_section(home: Path, docs: Path, sentence: str) -> str:
    """Append a sentence to the section of the chunk retrieved most often; returns its doc id."""
    rows = table(home, "evaluation_rows")
    top = pd.Series([c for ids in rows["context_ids"] for c in ids]).value_counts().index[0]
    chunk = table(home, "rag_chunks").set_index("chunk_id").loc[top]
    path = next(docs.rglob(f"{chunk['doc_id']}.*"))
    lines = path.read_text().splitlines()
    heading = str(chunk["heading"]).split(" > ")[-1].strip()
    start = next((i for i, line in enumerate(lines)
                  if line.startswith("#") and line.lstrip("#").strip() == heading), 0)
    at = next(i for i in range(start + 1, len(lines))
              if lines[i].strip() and not lines[i].startswith("#"))
    lines[at] = lines[at] + " " + sentence
    path.write_text("\n".join(lines) + "\n")
    return str(chunk["doc_id"])


def rows_metadata(result: dg.ExecuteInProcessResult) -> dict:
    """evaluation_rows' materialization metadata, as plain values."""
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey("evaluation_rows"))
    return {k: v.value for k, v in event.materialization.metadata.items()}


def run(selection: dg.AssetSelection | None = None) -> None:
    assert materialize(selection).success


def by_name(names: list[str]) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*names)


def test_one_document_edit_reanswers_only_rows_whose_contexts_changed(
        openai_env: FakeOpenAIServer, isolated_home: Path, data: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    run()
    before = contexts(isolated_home)
    doc = edit_retrieved_section(isolated_home, data,
                                 "Staff at every Certified Service Center can check this for you.")
    server.reset()
    result = materialize()
    assert result.success
    after = contexts(isolated_home)
    expected = changed_rows(before, after)
    assert expected, "the edited document is retrieved by some eval question"
    assert len(expected) < len(after)
    assert chat_calls(server) == {"judge": 0, "synthetic": 0, "answer": len(expected)}
    rows = table(isolated_home, "evaluation_rows").set_index(ROW)
    # The prompt playground asks the first questions under the same keys just before: those
    # rows are answered there and found cached here; no other row is asked again.
    assert set(rows.index[~rows["cached"]]) <= expected
    # A remote fine-tune costs money: a small drift keeps the current model, and says so.
    assert server.counts["ft_create"] == 0
    # The asset says why: the count computed here, and the edited document among the sources.
    logged = rows_metadata(result)["reruns"]
    assert logged.startswith(f"{len(expected)} of {len(after)} rows re-run because their "
                             "contexts changed (documents: ")
    assert doc in logged
    model = json.loads((isolated_home / "finetune" / "current_model.json").read_text())
    assert model["value"]["model_id"] in set(rows["model"])


def test_ground_truth_edit_rescores_its_rows_without_a_chat_call(
        openai_env: FakeOpenAIServer, isolated_home: Path, data: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    run()
    first = table(isolated_home, "evaluation_rows")
    lines = [json.loads(line) for line in (data / "qa.jsonl").read_text().splitlines() if line]
    # A hand-written pair (not one mined from a manual's FAQ) that the eval split holds.
    question = next(e["question"] for e in lines if e["question"] in set(first["question"]))
    qa_id = first.loc[first["question"] == question, "qa_id"].iloc[0]
    for entry in lines:
        if entry["question"] == question:
            entry["ground_truth"] = entry["ground_truth"].rstrip(".") + ", as the manual says."
    (data / "qa.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    server.reset()
    run()
    assert server.counts["chat"] == 0
    rows = table(isolated_home, "evaluation_rows")
    # Only that question's rows were scored again (their metric embeddings were requested).
    assert server.counts["embeddings"] > 0
    assert rows["cached"].all()
    edited = rows["qa_id"] == qa_id
    assert (rows.loc[edited, "ground_truth"].str.endswith("as the manual says.")).all()


def test_added_question_costs_one_call_per_candidate(
        openai_env: FakeOpenAIServer, isolated_home: Path, data: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    run()
    first = table(isolated_home, "evaluation_rows")
    source = table(isolated_home, "curated_qa").query("split == 'eval'")["doc_id"].iloc[0]
    with (data / "qa.jsonl").open("a") as out:
        out.write(json.dumps({"id": "q999", "question": "Who should I call about a flashing light?",
                              "ground_truth": "A Certified Service Center.",
                              "source": source}) + "\n")
    server.reset()
    run()
    rows = table(isolated_home, "evaluation_rows")
    candidates = first["candidate_id"].nunique()
    assert len(rows) == len(first) + candidates
    assert chat_calls(server)["answer"] == candidates == int((~rows["cached"]).sum())
    assert set(rows.loc[~rows["cached"], "qa_id"]) == {"q999"}


def test_gates_edit_makes_no_model_call_and_rubric_edit_only_judge_calls(
        openai_env: FakeOpenAIServer, isolated_home: Path, data: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    monkeypatch.setenv("LLMOPS_JUDGE_MODEL", "gpt-4o-mini")
    run()
    assets = tmp_path / "assets"
    gates = assets / "gates.yaml"
    gates.write_text(gates.read_text().replace("{min: 0.05}", "{min: 0.04}"))
    server.reset()
    # What the prompt/asset-file sensor launches for this file.
    run(by_name(triggers.targets_for_asset_files(["gates.yaml"])))
    assert sum(server.counts.values()) == 0, dict(server.counts)

    rubric = assets / "evaluators" / "groundedness_judge.prompty"
    rubric.write_text(rubric.read_text().replace("user:", "Be strict.\n\nuser:", 1))
    server.reset()
    run(by_name(triggers.targets_for_asset_files(["evaluators/groundedness_judge.prompty"])))
    rows = table(isolated_home, "evaluation_rows")
    # One groundedness call per distinct (context, answer); the quality rubric is unchanged.
    distinct = len({(tuple(r.context_ids), r.answer) for r in rows.itertuples()})
    assert chat_calls(server) == {"judge": distinct, "synthetic": 0, "answer": 0}


@pytest.mark.parametrize("change", [{"LLMOPS_TOP_K": "2"}, {"LLMOPS_RETRIEVAL": "hybrid"}])
def test_retrieval_change_reanswers_only_rows_whose_contexts_changed(
        change: dict[str, str], openai_env: FakeOpenAIServer, isolated_home: Path, data: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_FINETUNE", "off")
    run()
    before = contexts(isolated_home)
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    server.reset()
    run()
    expected = changed_rows(before, contexts(isolated_home))
    assert expected
    assert chat_calls(server)["answer"] == len(expected)
