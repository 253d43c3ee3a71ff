"""Which model is best for each prompt, at what cost and latency: the evaluation summary side by side.

Model labels: a model name is shown bare unless two endpoints in the same summary serve it; then
every row of that name reads "endpoint/model" (e.g. "openai/gpt-4o-mini", "ollama/gpt-4o-mini").
Qualifying only the ambiguous names keeps the usual case short, and the `endpoint` column is
always there for the rest. A summary without an `endpoint` column (written before it existed)
has no ambiguity to resolve: bare names, endpoint missing. Where one prompt has several
candidates of the same model (other params), each label gets its candidate id's "#hash" suffix.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

METRICS = ("quality", "groundedness", "harm_rate", "cost_per_1k_answers_usd",
           "latency_ms_per_token", "coverage")
BY_PROMPT_COLUMNS = ["prompt", "model", "endpoint", *METRICS, "rank", "best", "candidate_id", "rows"]
BY_MODEL_COLUMNS = ["model", "endpoint", "prompts", "mean_quality", "best_prompt", "quality",
                    "cost_per_1k_answers_usd", "latency_ms_per_token", "candidate_id"]
# Best first: higher quality, then higher groundedness, then cheaper; unscored (NaN) sorts last.
# The candidate id last only makes the order reproducible.
_ORDER = ["quality", "groundedness", "cost_per_1k_answers_usd", "candidate_id"]
_ASCENDING = [False, False, True, True]
_FORMATS = {"quality": ".3f", "groundedness": ".3f", "harm_rate": ".3f", "coverage": ".2f",
            "mean_quality": ".3f", "latency_ms_per_token": ".1f"}


def _numbers(summary: pd.DataFrame, column: str) -> pd.Series:
    # Older summaries on disk may lack a metric: missing is NaN, never 0.
    if column not in summary:
        return pd.Series(math.nan, index=summary.index, dtype=float)
    return pd.to_numeric(summary[column], errors="coerce").astype(float)


def _endpoints(summary: pd.DataFrame) -> pd.Series:
    if "endpoint" not in summary:
        return pd.Series(None, index=summary.index, dtype=object)
    endpoint = summary["endpoint"].astype(object)
    return endpoint.where(endpoint.notna() & (endpoint.astype(str).str.strip() != ""), None)


def model_labels(summary: pd.DataFrame) -> pd.Series:
    """Each row's model name, "endpoint/model" where two endpoints serve that name."""
    model = summary["model"].astype(str)
    endpoint = _endpoints(summary)
    known = endpoint.notna()
    endpoints_per_name = endpoint[known].groupby(model[known]).nunique()
    shared = model.map(endpoints_per_name).fillna(0).gt(1) & known
    return model.where(~shared, endpoint.astype(str) + "/" + model)


def _ranked(summary: pd.DataFrame) -> pd.DataFrame:
    """by_prompt's rows plus `base_model` (the label without the params suffix)."""
    ids = summary["candidate_id"].astype(str)
    frame = pd.DataFrame({
        "prompt": summary["prompt_name"].astype(str), "base_model": model_labels(summary),
        "endpoint": _endpoints(summary), **{m: _numbers(summary, m) for m in METRICS},
        "candidate_id": ids,
        "rows": _numbers(summary, "rows").fillna(0).astype(int),
    }, index=summary.index)
    # Same prompt, same model, other params: the candidate id's hash tells them apart.
    repeated = frame.duplicated(["prompt", "base_model"], keep=False)
    suffix = "#" + ids.str.rpartition("#")[2]
    frame["model"] = frame["base_model"].where(~repeated, frame["base_model"] + suffix)
    frame = frame.sort_values(["prompt", *_ORDER], ascending=[True, *_ASCENDING],
                              na_position="last", kind="stable").reset_index(drop=True)
    frame["rank"] = frame.groupby("prompt").cumcount() + 1
    # An unscored candidate is never "best", even when it is alone.
    frame["best"] = frame["rank"].eq(1) & frame["quality"].notna()
    return frame


def by_prompt(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt x model (x params), prompts in name order, each prompt best first."""
    if summary.empty:
        return pd.DataFrame(columns=BY_PROMPT_COLUMNS)
    return _ranked(summary)[BY_PROMPT_COLUMNS]


def by_model(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per model: mean quality over the prompts it ran, and its best prompt's figures.

    A model with several candidates for one prompt counts that prompt once, at its best one.
    """
    if summary.empty:
        return pd.DataFrame(columns=BY_MODEL_COLUMNS)
    ranked = _ranked(summary)
    per_prompt = ranked.drop_duplicates(["prompt", "base_model"], keep="first")
    out = []
    for model, group in per_prompt.groupby("base_model", sort=True):
        best = group.sort_values(_ORDER, ascending=_ASCENDING, na_position="last").iloc[0]
        quality = group["quality"].dropna()
        out.append({
            "model": model, "endpoint": best["endpoint"], "prompts": len(group),
            "mean_quality": float(quality.mean()) if len(quality) else math.nan,
            "best_prompt": best["prompt"], "quality": best["quality"],
            "cost_per_1k_answers_usd": best["cost_per_1k_answers_usd"],
            "latency_ms_per_token": best["latency_ms_per_token"], "candidate_id": best["candidate_id"],
        })
    frame = pd.DataFrame(out, columns=BY_MODEL_COLUMNS)
    return frame.sort_values(["mean_quality", "model"], ascending=[False, True],
                             na_position="last").reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def format_cell(value: Any, column: str = "") -> str:
    """One value for people: missing is "n/a" (never 0), flags yes/no, metrics at fixed digits."""
    if _missing(value):
        return "n/a"
    if pd.api.types.is_bool(value):
        return "yes" if value else "no"
    if pd.api.types.is_float(value):
        return format(value, _FORMATS.get(column, ".4g"))
    return str(value)


def markdown(frame: pd.DataFrame) -> str:
    """The frame as a markdown table (by_prompt or by_model)."""
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = (format_cell(v, c).replace("|", "\\|") for v, c in zip(row, columns, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN and missing are null (JSON has no NaN), numbers are Python numbers."""
    return [{k: None if _missing(v) else v for k, v in row.items()}
            for row in frame.to_dict("records")]
