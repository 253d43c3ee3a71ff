"""Evaluation as Dagster assets against the test server: faults, re-runs, and what a change re-runs.

Calls are counted at the server, so every caller counts: the prompt playground, synthetic Q&A,
the fine-tune job, evaluation answers and the LLM judges.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from llmops_pipelines.definitions import defs
from tests.integration.test_lifecycle import lenient_gates, table
from tests.support.openai_server import FakeOpenAIServer

EVALUATION = ["evaluation_rows", "evaluation_summary"]


def materialize(selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
    if selection is None:  # the nightly re-evaluation asks again by design: its own test file
        selection = dg.AssetSelection.all() - dg.AssetSelection.assets("nightly_reevaluation")
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(), selection=selection)


def evaluation() -> dg.AssetSelection:
    """evaluation_rows and evaluation_summary with their checks."""
    return dg.AssetSelection.assets(*EVALUATION)


def upstream() -> dg.AssetSelection:
    """Every asset evaluation_rows needs (materialized first, fault-free), with its checks."""
    # Everything but evaluation and what follows it (curation is one multi-asset: all or none).
    return dg.AssetSelection.all() - dg.AssetSelection.assets("evaluation_rows").downstream()


def chat_calls(server: FakeOpenAIServer) -> dict[str, int]:
    """Successful chat calls by caller: judge (structured output), synthetic Q&A, app answers."""
    out = {"judge": 0, "synthetic": 0, "answer": 0}
    for kind, body in server.requests:
        if kind != "chat":
            continue
        text = " ".join(str(m.get("content")) for m in body["messages"])
        caller = ("judge" if body.get("response_format") else
                  "synthetic" if "<passage>" in text else "answer")
        out[caller] += 1
    return out


def eval_questions(home: Path) -> int:
    qa = table(home, "curated_qa")
    return int((qa["split"] == "eval").sum())


def test_every_row_once_in_evaluation_rows_with_faults(openai_env, isolated_home, monkeypatch) -> None:
    server = openai_env
    # The client's own retries cover the sync calls outside the engine (question embeddings).
    monkeypatch.setenv("LLMOPS_OPENAI_MAX_RETRIES", "8")
    monkeypatch.setenv("LLMOPS_OPENAI_TIMEOUT_S", "0.5")
    monkeypatch.setenv("LLMOPS_EVAL_MAX_ATTEMPTS", "10")
    assert materialize(upstream()).success
    server.error_rate, server.rate_limit_rps, server.hang_rate, server.hang_s = 0.1, 30.0, 0.04, 1.5
    result = materialize(evaluation())
    assert result.success
    assert server.faults["500:chat"] > 0 and server.faults["429:chat"] > 0
    assert server.faults["hang"] > 0
    rows = table(isolated_home, "evaluation_rows")
    candidates = table(isolated_home, "candidates")
    expected = eval_questions(isolated_home) * len(candidates)
    assert len(rows) == expected == len(rows.drop_duplicates(["candidate_id", "qa_id"]))
    assert set(rows["candidate_id"]) == set(candidates["candidate_id"])
    assert rows["error"].isna().all()
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"one_row_per_question_and_candidate": True, "coverage_complete": True}


def test_second_run_makes_no_call_and_a_prompt_edit_reruns_only_its_rows(
        openai_env, isolated_home, tmp_path, monkeypatch) -> None:
    server = openai_env
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_JUDGE_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("LLMOPS_JUDGE_REPEATS", "2")
    monkeypatch.setenv("LLMOPS_SYNTHETIC_QA", "1")
    assert materialize().success
    first = chat_calls(server)
    assert min(first.values()) > 0, first  # every kind of caller really called
    assert table(isolated_home, "evaluation_rows")["groundedness_source"].str.startswith("judge:").all()

    server.reset()
    assert materialize().success
    assert server.counts["chat"] == 0, chat_calls(server)
    assert server.counts["ft_create"] == 0 and server.counts["files"] == 0

    # Edit the variant that is not used for fine-tuning data: the fine-tuned model stays.
    prompt = tmp_path / "assets" / "prompts" / "friendly_detailed.prompty"
    prompt.write_text(prompt.read_text().replace("user:", "Answer in English.\n\nuser:", 1))
    server.reset()
    assert materialize().success
    rows = table(isolated_home, "evaluation_rows")
    edited = rows["prompt_name"] == "friendly_detailed"
    models = rows["model"].nunique()
    assert models == 2  # the base model and the fine-tuned one
    # Exactly one new answer per eval question x model of the edited variant; the playground
    # asks the same keys, so it adds nothing. The judges see the same answers (the test server
    # answers from the context alone), so their cached verdicts are reused.
    assert chat_calls(server) == {"judge": 0, "synthetic": 0,
                                  "answer": eval_questions(isolated_home) * models}
    assert server.counts["ft_create"] == 0
    assert rows.loc[~edited, "cached"].all()
    # The playground answered its first 5 questions with the base model just before.
    playground = table(isolated_home, "prompt_playground")
    assert rows.loc[edited, "cached"].sum() == (playground["prompt_name"] == prompt.stem).sum() == 5


def test_budget_cap_fails_the_asset_with_the_reason_and_keeps_partial_rows(
        openai_env, isolated_home, monkeypatch) -> None:
    assert materialize(upstream()).success
    monkeypatch.setenv("LLMOPS_MAX_COST_USD", "0.0003")
    result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral(),
                            selection=dg.AssetSelection.assets("evaluation_rows"),
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.event_specific_data.error)
    assert "LLMOPS_MAX_COST_USD=$0.0003" in text and "partial results in" in text
    partial = pd.read_parquet(isolated_home / "tables" / "evaluation_rows.partial.parquet")
    assert len(partial) > 0 and partial["cost_usd"].sum() <= 0.0003
    assert not (isolated_home / "tables" / "evaluation_rows.parquet").exists()
