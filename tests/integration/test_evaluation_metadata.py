"""What the evaluation assets show in the Dagster UI: short stable labels, numbers to chart,
tables with CIs, rounded figures, and what a run paid vs what the cache saved."""

from __future__ import annotations

import math

import dagster as dg
import pandas as pd

from llmops_pipelines.defs import metadata as meta

NAN = math.nan


def _row(prompt: str, model: str, endpoint: str, digest: str, quality: float,
         **more: object) -> dict[str, object]:
    return {"candidate_id": f"{prompt}@{model}#{digest}", "prompt_name": prompt, "model": model,
            "endpoint": endpoint, "rows": 10, "coverage": 1.0, "quality": quality,
            "quality_ci_low": quality - 0.05, "quality_ci_high": quality + 0.05,
            "groundedness": 0.8, "groundedness_ci_low": 0.7, "groundedness_ci_high": 0.9,
            "harm_rate": 0.0, "harm_rate_ci_low": 0.0, "harm_rate_ci_high": 0.0,
            "cost_per_1k_answers_usd": 0.0042087, "cost_per_1k_answers_ci_low": 0.004,
            "cost_per_1k_answers_ci_high": 0.0045, "latency_ms_per_token": 12.3456,
            "latency_ms_per_token_ci_low": 10.0, "latency_ms_per_token_ci_high": 15.0,
            "cost_usd": 0.0042087 / 100, **more}


def _summary() -> pd.DataFrame:
    return pd.DataFrame([
        _row("terse", "gpt-4o-mini", "openai", "aaaa1111", 0.70),
        _row("terse", "gpt-4o-mini", "ollama", "bbbb2222", 0.72),  # same name, other endpoint
        _row("terse", "ft:gpt-4o-mini-2024-07-18:org:llmops:AbC123", "openai", "cccc3333", 0.80),
        _row("grounded", "local-ft:0123456789abcdef", "local", "dddd4444", 0.60),
        _row("grounded", "smollm2", "local", "eeee5555", 0.50),
        _row("grounded", "smollm2", "local", "ffff6666", NAN),  # other params, unscored
    ])


def test_labels_are_short_and_survive_a_prompt_edit_or_a_retrain() -> None:
    labels = meta.candidate_labels(_summary())
    assert list(labels.values()) == [
        "terse@openai/gpt-4o-mini", "terse@ollama/gpt-4o-mini",
        "terse@ft:gpt-4o-mini-2024-07-18", "grounded@local-ft",
        "grounded@smollm2#eeee5555", "grounded@smollm2#ffff6666"]
    # Another prompt version and another fine-tune job: other ids, the same labels.
    moved = _summary().assign(candidate_id=lambda f: f["candidate_id"] + "x")
    moved.loc[2, "model"] = "ft:gpt-4o-mini-2024-07-18:org:llmops:ZzZ999"
    assert list(meta.candidate_labels(moved).values())[:4] == list(labels.values())[:4]


def test_metrics_are_numbers_under_stable_keys_and_the_best_is_named() -> None:
    values = meta.metric_metadata(_summary())
    key = "terse@ft:gpt-4o-mini-2024-07-18/cost_per_1k_answers_usd"
    assert isinstance(values[key], dg.FloatMetadataValue) and values[key].value == 0.004209
    assert values["terse@openai/gpt-4o-mini/latency_ms_per_token"].value == 12.35
    assert isinstance(values["grounded@smollm2#ffff6666/quality"], dg.NullMetadataValue)
    assert values["best/candidate"].value.startswith("terse@ft:gpt-4o-mini-2024-07-18:org")
    assert values["best/quality"].value == 0.8
    assert {k.rpartition("/")[2] for k in values} == {*meta.METRICS, "candidate"}


def test_the_summary_table_shows_cis_short_labels_and_missing_as_missing() -> None:
    table = meta.summary_table(_summary())
    assert isinstance(table, dg.TableMetadataValue)
    first, unscored = table.records[0].data, table.records[-1].data
    assert first["candidate"] == "terse@openai/gpt-4o-mini" and first["id"] == "#aaaa1111"
    assert first["quality [95% CI]"] == "0.700 [0.650, 0.750]"
    assert first["cost_per_1k_answers_usd [95% CI]"] == "0.004209 [0.004, 0.0045]"
    assert unscored["quality [95% CI]"] == "n/a"
    assert [c.name for c in table.schema.columns][:2] == ["candidate", "id"]


def test_spent_is_what_this_run_paid_and_cached_what_the_cache_saved() -> None:
    rows = pd.DataFrame({"cached": [False, True, True], "cost_usd": [0.001, 0.002, NAN],
                         "judge_cost_usd": [0.0005, 0.0001, 0.0]})
    assert meta.spend(rows) == {"spent_usd": 0.0015, "cached_usd": 0.0021,
                                "total_usd_incl_cached": 0.0036}


def test_markdown_and_rounding_never_show_float_noise_or_nan() -> None:
    assert meta.rounded(0.004208699999999999) == 0.004209
    assert meta.rounded(NAN) is None and meta.rounded(None) is None
    text = meta.markdown_table(pd.DataFrame({"a": [0.004208699999999999, NAN]}))
    assert "0.004209" in text and "n/a" in text and "nan" not in text
