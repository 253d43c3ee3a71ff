"""The side-by-side view: which model is best for each prompt, at what cost and latency."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.evaluation.side_by_side import (
    BY_MODEL_COLUMNS,
    BY_PROMPT_COLUMNS,
    by_model,
    by_prompt,
    markdown,
    records,
)
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.settings import Settings
from llmops_pipelines.status import render_table, status

NAN = math.nan


def _row(prompt: str, model: str, endpoint: str | None, digest: str, *, quality: float,
         groundedness: float = 0.8, cost: float = 0.5, latency: float = 20.0) -> dict[str, object]:
    row: dict[str, object] = {
        "candidate_id": f"{prompt}@{model}#{digest}", "prompt_name": prompt, "prompt_version": "v1",
        "model": model, "rows": 20, "coverage": 1.0, "quality": quality,
        "groundedness": groundedness, "harm_rate": 0.0, "cost_usd": cost / 100,
        "cost_per_1k_answers_usd": cost, "latency_ms_per_token": latency, "errors": 0,
    }
    if endpoint is not None:
        row["endpoint"] = endpoint
    return row


def _summary() -> pd.DataFrame:
    """Two prompts x three models; gpt-4o-mini on two endpoints; some metrics unscored."""
    return pd.DataFrame([
        _row("terse", "qwen2.5-0.5b", "local", "q1", quality=0.55, cost=0.0, latency=4.0),
        _row("terse", "gpt-4o-mini", "openai", "o1", quality=0.70, cost=0.6),
        _row("terse", "gpt-4o-mini", "ollama", "l1", quality=0.70, groundedness=0.9, cost=0.0,
             latency=NAN),
        _row("grounded", "gpt-4o-mini", "openai", "o2", quality=0.80, cost=0.6),
        _row("grounded", "gpt-4o-mini", "ollama", "l2", quality=NAN, groundedness=NAN, cost=NAN),
        _row("grounded", "qwen2.5-0.5b", "local", "q2", quality=0.60, cost=0.0, latency=4.0),
    ])


def test_by_prompt_groups_prompts_in_name_order_best_first() -> None:
    table = by_prompt(_summary())
    assert list(table.columns) == BY_PROMPT_COLUMNS
    assert list(table["prompt"]) == ["grounded"] * 3 + ["terse"] * 3
    grounded = table[table["prompt"] == "grounded"]
    assert list(grounded["model"]) == ["openai/gpt-4o-mini", "qwen2.5-0.5b", "ollama/gpt-4o-mini"]
    assert list(grounded["rank"]) == [1, 2, 3]
    # Equal quality: the more grounded one wins the tie.
    terse = table[table["prompt"] == "terse"]
    assert list(terse["model"]) == ["ollama/gpt-4o-mini", "openai/gpt-4o-mini", "qwen2.5-0.5b"]
    assert list(table["best"]) == [True, False, False, True, False, False]


def test_quality_and_groundedness_tie_goes_to_the_cheaper() -> None:
    summary = pd.DataFrame([_row("p", "dear", "openai", "a", quality=0.7, cost=2.0),
                            _row("p", "cheap", "openai", "b", quality=0.7, cost=0.1)])
    assert list(by_prompt(summary)["model"]) == ["cheap", "dear"]


def test_model_name_is_qualified_only_where_two_endpoints_serve_it() -> None:
    table = by_prompt(_summary())
    assert set(table["model"]) == {"openai/gpt-4o-mini", "ollama/gpt-4o-mini", "qwen2.5-0.5b"}
    assert set(table.loc[table["model"] == "qwen2.5-0.5b", "endpoint"]) == {"local"}


def test_same_model_other_params_stay_separate_with_the_hash_suffix() -> None:
    summary = pd.DataFrame([_row("p", "m", "local", "aaaa", quality=0.6),
                            _row("p", "m", "local", "bbbb", quality=0.7),
                            _row("q", "m", "local", "cccc", quality=0.5)])
    table = by_prompt(summary)
    assert list(table["model"]) == ["m#bbbb", "m#aaaa", "m"]
    assert list(table["rank"]) == [1, 2, 1]
    # by_model counts prompt p once, at its best candidate.
    model = by_model(summary).iloc[0]
    assert (model["model"], model["prompts"], model["best_prompt"]) == ("m", 2, "p")
    assert math.isclose(model["mean_quality"], (0.7 + 0.5) / 2)
    assert model["candidate_id"] == "p@m#bbbb"


def test_summary_without_the_endpoint_column_still_compares() -> None:
    old = pd.DataFrame([_row("p", "m1", None, "a", quality=0.5),
                        _row("p", "m2", None, "b", quality=0.9)])
    table = by_prompt(old)
    assert list(table["model"]) == ["m2", "m1"]
    assert table["endpoint"].isna().all()
    assert "| p | m2 | n/a | 0.900 |" in markdown(table)


def test_unscored_metrics_stay_missing_and_sort_last() -> None:
    table = by_prompt(_summary())
    unscored = table[table["candidate_id"] == "grounded@gpt-4o-mini#l2"].iloc[0]
    assert math.isnan(unscored["quality"]) and unscored["rank"] == 3 and not unscored["best"]
    alone = by_prompt(pd.DataFrame([_row("p", "m", "local", "a", quality=NAN)]))
    assert not alone["best"].iloc[0]  # nothing scored: no "best" to claim


def test_by_model_mean_quality_best_prompt_cost_and_latency() -> None:
    table = by_model(_summary())
    assert list(table.columns) == BY_MODEL_COLUMNS
    assert list(table["model"]) == ["openai/gpt-4o-mini", "ollama/gpt-4o-mini", "qwen2.5-0.5b"]
    openai = table.iloc[0]
    assert math.isclose(openai["mean_quality"], 0.75)
    assert (openai["best_prompt"], openai["cost_per_1k_answers_usd"]) == ("grounded", 0.6)
    ollama = table.iloc[1]
    # Unscored at "grounded": the mean is over the prompt it was scored on, not a made-up 0.
    assert math.isclose(ollama["mean_quality"], 0.70) and ollama["best_prompt"] == "terse"
    assert math.isnan(ollama["latency_ms_per_token"])


def test_markdown_shows_missing_as_na_never_zero() -> None:
    text = markdown(by_prompt(_summary()))
    lines = text.splitlines()
    assert lines[0].startswith("| prompt | model | endpoint | quality |")
    unscored = next(line for line in lines if "#l2" in line)
    assert "| n/a | n/a |" in unscored and "nan" not in text.lower()


def test_empty_summary_gives_empty_tables() -> None:
    assert by_prompt(pd.DataFrame()).empty and by_model(pd.DataFrame()).empty
    assert records(by_prompt(pd.DataFrame())) == []


def _home_with(summary: pd.DataFrame, home: Path, champion_id: str) -> None:
    tables = home / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    summary.to_parquet(tables / "evaluation_summary.parquet", index=False)
    champion = summary[summary["candidate_id"] == champion_id].iloc[0]
    Registry(home / "registry.sqlite").promote(
        {"candidate_id": champion_id, "prompt_name": champion["prompt_name"],
         "prompt_version": "v1", "model": champion["model"]}, {"index": "i", "data": "d"},
        reason="test", actor="ci")


def test_status_json_has_side_by_side_and_by_model_without_nan(isolated_home: Path,
                                                                capsys) -> None:
    _home_with(_summary(), isolated_home, "grounded@gpt-4o-mini#o2")
    report = status(Settings.from_env())
    assert [r["model"] for r in report["side_by_side"]][:3] == \
        ["openai/gpt-4o-mini", "qwen2.5-0.5b", "ollama/gpt-4o-mini"]
    assert report["side_by_side"][2]["quality"] is None
    assert report["by_model"][0]["best_prompt"] == "grounded"
    assert len(report["candidates"]) == 6  # the per-candidate list is still there
    json.dumps(report, allow_nan=False)  # NaN would raise here
    assert llmops_main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["side_by_side"] == report["side_by_side"]


def test_render_table_groups_by_prompt_and_marks_the_champion(isolated_home: Path) -> None:
    _home_with(_summary(), isolated_home, "grounded@gpt-4o-mini#o2")
    text = render_table(status(Settings.from_env()))
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("prompt ")]
    assert [lines[i] for i in headers] == ["prompt grounded", "prompt terse"]
    champion_row = lines[headers[0] + 1]
    assert champion_row.startswith("*  1 openai/gpt-4o-mini")
    assert champion_row.endswith("grounded@gpt-4o-mini#o2")
    assert lines[headers[1] + 1].startswith("   1 ollama/gpt-4o-mini")
    assert "n/a" in lines[headers[0] + 3] and "nan" not in text.lower()
    assert "champion: grounded@gpt-4o-mini#o2" in text and "versions: data" in text


def test_render_table_without_an_evaluation(isolated_home: Path) -> None:
    text = render_table(status(Settings.from_env()))
    assert "no evaluation yet" in text and "champion: none" in text
