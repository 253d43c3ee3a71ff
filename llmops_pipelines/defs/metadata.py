"""Small helpers that turn frames into Dagster metadata people can read in the UI."""

from __future__ import annotations

import math

import dagster as dg
import pandas as pd
import pyarrow as pa

from llmops_pipelines.evaluation import side_by_side
from llmops_pipelines.providers.local_files import LOCAL_FT_PREFIX as LOCAL_FT


def markdown_table(frame: pd.DataFrame, max_chars: int = 80) -> str:
    """A GitHub markdown table; long cells are cut and pipes escaped so the UI stays readable."""
    if frame.empty:
        return "_empty_"

    def cell(value: object) -> str:
        if isinstance(value, float):
            text = "n/a" if math.isnan(value) else f"{value:.4g}"  # missing is never 0 or "nan"
        else:
            text = str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text[:max_chars] + "…" if len(text) > max_chars else text

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame.head(rows)))


def counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """A declared pyarrow schema as the column schema the Dagster UI shows on an asset."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


# ---- Evaluation numbers the UI can chart and tables people can read -------------------------

# The five metrics every candidate is judged by: summary column -> its CI columns' prefix.
METRICS = {"quality": "quality", "groundedness": "groundedness", "harm_rate": "harm_rate",
           "cost_per_1k_answers_usd": "cost_per_1k_answers", "latency_ms_per_token":
           "latency_ms_per_token"}
BEST = "best"  # metadata key prefix of the best candidate's metrics
_TEXT_CHARS = 240  # longer answers and reasons are cut in table previews


def rounded(value: object, digits: int = 4) -> float | None:
    """A number at `digits` significant digits for display (0.0042087 -> 0.004209); None when
    missing (NaN or None), so it is shown as missing and never as 0."""
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else float(f"{number:.{digits}g}")


def number(value: object) -> dg.MetadataValue:
    """A float metadata value (charted in the Plots tab), or null when there is none."""
    shown = rounded(value)
    return dg.MetadataValue.null() if shown is None else dg.MetadataValue.float(shown)


def short_model(model: str) -> str:
    """A model name without what changes on every fine-tune job: `ft:<base>:org:suffix:id` ->
    `ft:<base>`, `local-ft:<hash>` -> `local-ft`; other names as they are."""
    if model.startswith("ft:"):
        return ":".join(model.split(":")[:2])
    if model.startswith(LOCAL_FT):
        return LOCAL_FT.rstrip(":")
    return model


def candidate_labels(frame: pd.DataFrame) -> dict[str, str]:
    """candidate_id -> a short label that stays the same across runs: `prompt@model` (model as
    side_by_side labels it, endpoint-qualified where two endpoints serve one name, fine-tunes
    without their job id). A prompt edit or a retrain keeps the label, so a chart of
    `<label>/quality` follows one line of candidates; labels that would collide (the same
    prompt and model with other params) keep their candidate's `#hash`."""
    firsts = frame.drop_duplicates("candidate_id").reset_index(drop=True)
    if firsts.empty:
        return {}
    models = side_by_side.model_labels(firsts.assign(model=firsts["model"].astype(str)
                                                     .map(short_model)))
    labels = firsts["prompt_name"].astype(str) + "@" + models
    ids = firsts["candidate_id"].astype(str)
    repeated = labels.duplicated(keep=False)
    labels = labels.where(~repeated, labels + "#" + ids.str.rpartition("#")[2])
    return dict(zip(ids, labels, strict=True))


def best_candidate(summary: pd.DataFrame) -> pd.Series | None:
    """The best-scoring row: highest quality, then groundedness, then cheapest (unscored: never)."""
    scored = summary[pd.to_numeric(summary["quality"], errors="coerce").notna()]
    if scored.empty:
        return None
    order = scored.sort_values(["quality", "groundedness", "cost_per_1k_answers_usd",
                                "candidate_id"], ascending=[False, False, True, True],
                               na_position="last", kind="stable")
    return order.iloc[0]


def metric_metadata(summary: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """`<label>/<metric>` for each candidate and `best/<metric>` as numbers: one chart each in
    the asset's Plots tab, over materializations."""
    labels = candidate_labels(summary)
    out: dict[str, dg.MetadataValue] = {}
    for row in summary.to_dict("records"):
        for metric in METRICS:
            out[f"{labels[str(row['candidate_id'])]}/{metric}"] = number(row.get(metric))
    best = best_candidate(summary)
    if best is not None:
        out[f"{BEST}/candidate"] = dg.MetadataValue.text(str(best["candidate_id"]))
        out.update({f"{BEST}/{metric}": number(best.get(metric)) for metric in METRICS})
    return out


# Scores in [0, 1] at three decimals; dollars and milliseconds at a few significant digits.
_CI_FORMATS = {"quality": ".3f", "groundedness": ".3f", "harm_rate": ".3f",
               "cost_per_1k_answers_usd": ".4g", "latency_ms_per_token": ".3g"}


def _with_ci(row: dict[str, object], metric: str) -> str:
    """`0.412 [0.351, 0.470]`: the mean and its 95 % bootstrap CI, `n/a` when unscored."""
    prefix, spec = METRICS[metric], _CI_FORMATS[metric]
    mean, low, high = (rounded(row.get(c)) for c in
                       (metric, f"{prefix}_ci_low", f"{prefix}_ci_high"))
    if mean is None:
        return "n/a"
    if low is None or high is None:
        return format(mean, spec)
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


def summary_table(summary: pd.DataFrame) -> dg.MetadataValue:
    """The summary as a Dagster table: short labels first (the full ids are `best/candidate`,
    the parquet file and by_prompt), each metric with its CI."""
    labels = candidate_labels(summary)
    columns = [
        dg.TableColumn("candidate", "string", description="prompt@model; #hash when ambiguous"),
        dg.TableColumn("id", "string", description="the candidate id's content hash"),
        dg.TableColumn("endpoint", "string"), dg.TableColumn("rows", "int"),
        dg.TableColumn("coverage", "float", description="share of rows with every metric"),
        *[dg.TableColumn(f"{m} [95% CI]", "string", description="mean [bootstrap 95 % CI]")
          for m in METRICS],
        dg.TableColumn("cost_usd", "float", description="the answers' cost, cached ones too"),
    ]
    records = [dg.TableRecord({
        "candidate": labels[str(row["candidate_id"])],
        "id": "#" + str(row["candidate_id"]).rpartition("#")[2],
        "endpoint": None if row.get("endpoint") is None else str(row["endpoint"]),
        "rows": int(row["rows"]), "coverage": rounded(row["coverage"], 3),
        **{f"{m} [95% CI]": _with_ci(row, m) for m in METRICS},
        "cost_usd": rounded(row["cost_usd"]),
    }) for row in summary.to_dict("records")]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def labelled(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The frame with candidate_id replaced by its short label (for markdown tables)."""
    return frame.assign(candidate_id=frame["candidate_id"].map(labels)).rename(
        columns={"candidate_id": "candidate"})


def _cut(value: object, chars: int = _TEXT_CHARS) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).replace("\n", " ")
    return text if len(text) <= chars else text[:chars - 1] + "…"


# evaluation_rows' preview: what was asked, what came back, and each metric with its reason.
ROW_PREVIEW = [
    ("quality", "quality_reason"), ("groundedness", "groundedness_reason"),
    ("harm", "harm_categories"), ("cost_usd", "cost_reason"),
    ("ms_per_output_token", "latency_reason"),
]


def rows_preview(rows: pd.DataFrame, labels: dict[str, str], max_rows: int = 40,
                 max_questions: int = 3) -> dg.MetadataValue:
    """The same first questions answered by every candidate (not the first rows of one):
    question, ground truth, answer, the five metric scores with their reasons, context doc ids."""
    candidates = max(1, rows["candidate_id"].nunique())
    questions = sorted(rows["qa_id"].astype(str).unique())[:max(1, min(max_questions,
                                                                         max_rows // candidates))]
    shown = rows[rows["qa_id"].astype(str).isin(questions)].sort_values(["qa_id", "candidate_id"])
    columns = [dg.TableColumn("qa_id", "string"), dg.TableColumn("candidate", "string"),
               dg.TableColumn("question", "string"), dg.TableColumn("ground_truth", "string"),
               dg.TableColumn("answer", "string")]
    for score, reason in ROW_PREVIEW:
        columns += [dg.TableColumn(score, "float"), dg.TableColumn(reason, "string")]
    columns += [dg.TableColumn("context_doc_ids", "string"), dg.TableColumn("cached", "bool"),
                dg.TableColumn("error", "string")]
    records = []
    for row in shown.head(max_rows).to_dict("records"):
        docs = row.get("context_doc_ids")
        records.append(dg.TableRecord({
            "qa_id": str(row["qa_id"]), "candidate": labels.get(str(row["candidate_id"])),
            "question": _cut(row.get("question")), "ground_truth": _cut(row.get("ground_truth")),
            "answer": _cut(row.get("answer")),
            **{k: v for score, reason in ROW_PREVIEW
               for k, v in ((score, rounded(row.get(score))), (reason, _cut(row.get(reason))))},
            "context_doc_ids": ", ".join(map(str, docs)) if docs is not None else None,
            "cached": bool(row.get("cached")), "error": _cut(row.get("error")),
        }))
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def spend(rows: pd.DataFrame) -> dict[str, float]:
    """What this run paid (rows answered now: their answers and judges) vs what the rows read
    from the cache cost when they were first made; their sum is the table's full cost."""
    cached = rows["cached"].astype(bool)
    per_row = (pd.to_numeric(rows["cost_usd"], errors="coerce").fillna(0.0)
               + pd.to_numeric(rows["judge_cost_usd"], errors="coerce").fillna(0.0))
    spent, reused = float(per_row[~cached].sum()), float(per_row[cached].sum())
    return {"spent_usd": rounded(spent) or 0.0, "cached_usd": rounded(reused) or 0.0,
            "total_usd_incl_cached": rounded(spent + reused) or 0.0}
