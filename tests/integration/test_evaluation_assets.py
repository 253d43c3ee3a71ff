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
    # conversation_evaluation answers its conversations again with the edited variant too (its
    # context_retention judge sees unchanged answers: cached).
    conversations = table(isolated_home, "conversation_evaluation")["conversation_id"].nunique()
    assert chat_calls(server) == {"judge": 0, "synthetic": 0,
                                  "answer": (eval_questions(isolated_home) + conversations)
                                  * models}
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
    # The cap is on spend: rows answered from the call cache (the playground's) cost nothing now.
    assert len(partial) > 0 and partial.loc[~partial["cached"], "cost_usd"].sum() <= 0.0003
    assert not (isolated_home / "tables" / "evaluation_rows.parquet").exists()


def metadata_of(result: dg.ExecuteInProcessResult, name: str) -> dict[str, dg.MetadataValue]:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(name)]
    return dict(event.materialization.metadata)


METRICS = ("quality", "groundedness", "harm_rate", "cost_per_1k_answers_usd",
           "latency_ms_per_token")


def test_the_summary_charts_each_candidates_metrics_and_rows_say_what_was_spent(
        openai_env, isolated_home, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "3")
    lineage = dg.AssetSelection.assets("evaluation_summary").upstream()
    first = materialize(lineage.required_multi_asset_neighbors())
    assert first.success
    summary = metadata_of(first, "evaluation_summary")
    frame = table(isolated_home, "evaluation_summary")
    # Short labels that survive a prompt edit or a retrain: prompt@model, fine-tunes by base.
    labels = {f"{p}@{m}" for p in frame["prompt_name"] for m in
              ("gpt-4o-mini", "ft:gpt-4o-mini-2024-07-18")}
    assert len(labels) == len(frame) == 4
    for key in [f"{label}/{metric}" for label in labels for metric in METRICS] + [
            f"best/{metric}" for metric in METRICS]:
        value = summary[key]
        assert isinstance(value, dg.FloatMetadataValue), (key, value)
        assert value.value == float(f"{value.value:.4g}"), key  # rounded for display
    best = frame.sort_values(["quality", "groundedness"], ascending=False).iloc[0]
    assert summary["best/candidate"].value == best["candidate_id"]
    assert summary["best/quality"].value == float(f"{best['quality']:.4g}")
    assert "candidates" not in summary  # the Plots tab charts metrics, not the count
    assert summary["dagster/row_count"].value == 4

    table_value = summary["summary"]
    assert isinstance(table_value, dg.TableMetadataValue)
    columns = [c.name for c in table_value.schema.columns]
    assert columns[:2] == ["candidate", "id"] and "quality [95% CI]" in columns
    assert {r.data["candidate"] for r in table_value.records} == labels
    assert all(r.data["quality [95% CI]"].count("[") == 1 for r in table_value.records)

    rows = metadata_of(first, "evaluation_rows")
    assert rows["spent_usd"].value > 0 and rows["cached_usd"].value == 0
    assert rows["total_usd_incl_cached"].value == rows["spent_usd"].value
    preview = rows["preview"]
    assert {r.data["candidate"] for r in preview.records} == labels  # every candidate
    record = preview.records[0].data
    for column in ("question", "ground_truth", "answer", "quality", "quality_reason",
                   "groundedness", "groundedness_reason", "harm", "harm_categories",
                   "cost_usd", "cost_reason", "ms_per_output_token", "latency_reason",
                   "context_doc_ids"):
        assert record[column] is not None, column

    # Everything from the cache: nothing spent now, what it cost then is `cached_usd`.
    openai_env.reset()
    again = materialize(dg.AssetSelection.assets("evaluation_rows"))
    assert again.success and openai_env.counts["chat"] == 0
    cached = metadata_of(again, "evaluation_rows")
    assert cached["spent_usd"].value == 0
    assert cached["cached_usd"].value == rows["spent_usd"].value
