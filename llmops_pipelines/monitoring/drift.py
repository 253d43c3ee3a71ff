"""Provider drift: tonight's fresh answers against the evaluation each candidate was judged by.

The evaluation reads answers from the content-keyed call cache, so it never sees a provider
that silently changed its model. The nightly run salts the keys with its date (fresh calls,
reused only within the same night), then pairs tonight's rows with the baseline on qa_id:
the eval split against the rows the candidate was evaluated (or promoted) with, the test
split against the previous night. The test split only reports; it never feeds selection.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from llmops_pipelines import tables
from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.promotion.paired_bootstrap import ROW_METRICS, paired_diff

SPLITS = ("eval", "test")
DRIFT_METRICS = ("quality", "groundedness")  # a significant drop in either fails the check
REPORTED = ("quality", "groundedness", "harm_rate", "coverage")


def nightly_date(value: str | None, now: dt.datetime | None = None) -> str:
    """The night a run belongs to: the schedule's date (YYYY-MM-DD), else today's UTC date."""
    if not value:
        return (now or dt.datetime.now(dt.UTC)).date().isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise LlmopsError(f"nightly date {value!r} is not YYYY-MM-DD (tag llmops/nightly_date)") \
            from exc


def cache_salt(date: str) -> str:
    """The call-cache salt of one night: the same night re-uses its answers, a new one asks again."""
    return f"nightly:{date}"


@dataclass(frozen=True)
class Baseline:
    label: str  # where the rows come from, shown in the table
    rows: pd.DataFrame


class NightlyHistory:
    """Each night's scored rows as tables/nightly/<date>.parquet: the next night compares with them."""

    def __init__(self, folder: tables.TablePath) -> None:
        self.folder = folder  # a local folder or one on LLMOPS_TABLES_URI's filesystem

    def save(self, date: str, rows: pd.DataFrame) -> tables.TablePath:
        path = self.folder / f"{date}.parquet"
        tables.write_table(path, rows)
        return path

    def previous(self, date: str) -> tuple[str, pd.DataFrame] | None:
        """The newest night before `date`, if any."""
        nights = [n.removesuffix(".parquet") for n in tables.names(self.folder, "????-??-??.parquet")]
        nights = [n for n in nights if n < date]
        if not nights:
            return None
        return nights[-1], tables.read_table(self.folder / f"{nights[-1]}.parquet")


def _statistic(metric: str, rows: pd.DataFrame) -> float:
    value, stat = ROW_METRICS[metric]
    values = value(rows).to_numpy(dtype=float)
    if metric != "coverage":
        values = values[~pd.isna(values)]
    return float(stat(values)) if len(values) else math.nan


def compare_one(candidate_id: str, split: str, rows: pd.DataFrame, baseline: Baseline | None,
                gates: Gates) -> dict:
    """One table row: tonight's figures, the paired difference to the baseline, drifted or not."""
    out: dict = {"candidate_id": candidate_id, "split": split, "rows": len(rows),
                 "baseline": baseline.label if baseline else "none", "paired_questions": 0}
    out.update({m: _statistic(m, rows) for m in REPORTED})
    worse: list[str] = []
    for metric in DRIFT_METRICS:
        if baseline is None:
            out.update({f"{metric}_diff": math.nan, f"{metric}_ci_low": math.nan,
                        f"{metric}_ci_high": math.nan})
            continue
        diff = paired_diff(metric, rows, baseline.rows, samples=gates.bootstrap_samples,
                           confidence=gates.confidence)
        out.update({f"{metric}_diff": diff.diff, f"{metric}_ci_low": diff.ci_low,
                    f"{metric}_ci_high": diff.ci_high})
        out["paired_questions"] = max(out["paired_questions"], diff.pairs)
        # The promotion rule: the whole CI below zero, beyond the gate's margin for the metric.
        if not math.isnan(diff.ci_high) and diff.ci_high < -gates.margins.get(metric, 0.0):
            worse.append(f"{metric} {diff.diff:+.3f} [{gates.confidence:.0%} CI "
                         f"{diff.ci_low:+.3f}, {diff.ci_high:+.3f}] vs {baseline.label}")
    out["drifted"] = bool(worse)
    out["drift_reason"] = "; ".join(worse)
    return out


def compare(rows: pd.DataFrame, baselines: dict[tuple[str, str], Baseline],
            gates: Gates) -> pd.DataFrame:
    """One row per candidate x split of tonight's rows (which carry a `split` column)."""
    table = [compare_one(str(cid), str(split), group, baselines.get((str(cid), str(split))), gates)
             for (cid, split), group in rows.groupby(["candidate_id", "split"], sort=True)]
    return pd.DataFrame(table)


def drift_failures(table: pd.DataFrame) -> list[str]:
    """'candidate: metric drop' for every candidate that drifted on the eval split."""
    drifted = table[(table["split"] == "eval") & table["drifted"]]
    return [f"{r.candidate_id}: {r.drift_reason}" for r in drifted.itertuples(index=False)]
