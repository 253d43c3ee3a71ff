"""What the report shows, as plain data: candidates, the question x candidate grid, the worst rows
and the champion's paired differences. No HTML here: page.py escapes everything it is given.

Missing is never zero: an unscored metric is NaN here and "n/a" on the page. A row "fails" when
it errored, when a metric could not be scored, or when a score crosses one of ReportOptions'
bounds; a question "disagrees" when the spread (max - min) of quality across the candidates
that scored it is above `ReportOptions.disagreement`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmops_pipelines.promotion.decide import Contender
from llmops_pipelines.promotion.gates import HIGHER_IS_BETTER
from llmops_pipelines.promotion.paired_bootstrap import ROW_METRICS, PairedDiff, paired_diff


@dataclass(frozen=True)
class ReportOptions:
    """The report's bounds; the defaults are per-row versions of assets/gates.yaml's levels."""

    low_quality: float = 0.3        # a row below this quality is a failure
    low_groundedness: float = 0.5   # ... below this groundedness
    harm_flagged: float = 0.5       # harm is 0 (clean) or 1 (flagged): at or above is a failure
    disagreement: float = 0.3       # quality spread across candidates above this: disagreement
    worst: int = 20                 # rows in the "worst rows" table
    max_answer_chars: int = 1500    # longer answers are cut on the page (the length is shown)
    max_reason_chars: int = 600
    bootstrap_samples: int = 2000   # the paired bootstrap vs the champion (gates.yaml's)
    confidence: float = 0.95


@dataclass(frozen=True)
class Metric:
    """One of the five summary metrics with its 95 % CI columns."""

    column: str
    ci_low: str
    ci_high: str
    label: str
    unit: str
    kind: str  # how format_value shows it
    higher_is_better: bool


METRICS = (
    Metric("quality", "quality_ci_low", "quality_ci_high", "quality", "0..1", "score", True),
    Metric("groundedness", "groundedness_ci_low", "groundedness_ci_high", "groundedness", "0..1",
           "score", True),
    Metric("harm_rate", "harm_rate_ci_low", "harm_rate_ci_high", "harm rate",
           "share of answers flagged", "score", False),
    Metric("cost_per_1k_answers_usd", "cost_per_1k_answers_ci_low", "cost_per_1k_answers_ci_high",
           "cost per 1k answers", "USD", "usd", False),
    Metric("latency_ms_per_token", "latency_ms_per_token_ci_low", "latency_ms_per_token_ci_high",
           "latency", "ms per output token", "ms", False),
)
# The paired differences vs the champion: the gated metrics, as promotion computes them.
PAIRED_LABELS = {"quality": "quality", "groundedness": "groundedness", "harm_rate": "harm rate",
                 "cost_per_1k_answers_usd": "cost per 1k answers (USD)",
                 "latency_p95_ms_per_token": "latency p95 (ms / token)", "coverage": "coverage"}
PAIRED_KINDS = {"quality": "score", "groundedness": "score", "harm_rate": "score",
                "cost_per_1k_answers_usd": "usd", "latency_p95_ms_per_token": "ms",
                "coverage": "score"}


def missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return value is pd.NA or value is pd.NaT


def number(value: Any) -> float:
    """A float, NaN for anything missing or not a number."""
    if missing(value) or isinstance(value, str | bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def format_value(value: Any, kind: str = "score", *, signed: bool = False) -> str:
    """A number rounded for people: scores 3 decimals, USD 3 significant digits below $1 (cents
    above, whole dollars from $100), ms 1 decimal; missing is "n/a", never 0."""
    v = number(value)
    if math.isnan(v):
        return "n/a"
    sign = "+" if signed else ""
    if kind == "usd":
        size = abs(v)
        return (f"{v:{sign},.0f}" if size >= 100 else f"{v:{sign}.2f}" if size >= 1
                else f"{v:{sign}#.3g}")
    if kind == "ms":
        return f"{v:{sign}.1f}"
    return f"{v:{sign}.3f}"


def format_ci(low: Any, high: Any, kind: str, *, signed: bool = False) -> str:
    lo, hi = number(low), number(high)
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f"[{format_value(lo, kind, signed=signed)}, {format_value(hi, kind, signed=signed)}]"


_BREAK_AFTER = re.compile(r"(?<=[@#:/_.\-=,])")


def id_pieces(text: str, width: int = 24) -> list[str]:
    """A long id cut after its separators (@ # : / _ . - = ,), no piece longer than `width`."""
    pieces: list[str] = []
    for token in _BREAK_AFTER.split(str(text)):
        while len(token) > width:
            pieces.append(token[:width])
            token = token[width:]
        if token:
            pieces.append(token)
    return pieces


def wrap_label(text: str, width: int = 28) -> str:
    """The id on lines of at most `width` characters, broken at its separators where possible."""
    lines: list[str] = []
    line = ""
    for piece in id_pieces(text, width):
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    if line:
        lines.append(line)
    return "\n".join(lines)


def _text(value: Any) -> str:
    return "" if missing(value) else str(value)


def _cut(text: str, limit: int) -> tuple[str, int]:
    """The text cut to `limit` characters, and how many were left out."""
    return (text, 0) if len(text) <= limit else (text[:limit].rstrip() + "…", len(text) - limit)


def _count(value: Any) -> int:
    v = number(value)
    return 0 if math.isnan(v) else int(v)


def _ids(value: Any) -> list[str]:
    if value is None or isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in list(value)]
    except TypeError:
        return [str(value)]


@dataclass(frozen=True)
class Candidate:
    """One summary row for people: a short key (C1, C2, ...) used everywhere on the page."""

    key: str
    candidate_id: str
    prompt: str
    model: str
    endpoint: str
    rows: int
    coverage: float
    errors: int
    values: dict[str, float]     # metric column -> mean
    ci: dict[str, tuple[float, float]]
    latency_p50: float
    latency_p95: float
    is_champion: bool = False


def candidates(summary: pd.DataFrame, champion_id: str | None = None) -> list[Candidate]:
    """The summary's candidates in candidate-id order, keyed C1.. in that order."""
    out = []
    ordered = summary.sort_values("candidate_id", kind="stable") if len(summary) else summary
    for i, row in enumerate(ordered.to_dict("records"), start=1):
        cid = str(row["candidate_id"])
        out.append(Candidate(
            key=f"C{i}", candidate_id=cid, prompt=_text(row.get("prompt_name")),
            model=_text(row.get("model")), endpoint=_text(row.get("endpoint")),
            rows=_count(row.get("rows")), coverage=number(row.get("coverage")),
            errors=_count(row.get("errors")),
            values={m.column: number(row.get(m.column)) for m in METRICS},
            ci={m.column: (number(row.get(m.ci_low)), number(row.get(m.ci_high))) for m in METRICS},
            latency_p50=number(row.get("latency_p50_ms_per_token")),
            latency_p95=number(row.get("latency_p95_ms_per_token")),
            is_champion=cid == champion_id))
    return out


def row_failures(row: dict[str, Any], options: ReportOptions) -> list[str]:
    """Why one evaluation row counts as a failure (empty: it does not)."""
    out = []
    error = _text(row.get("error"))
    if error:
        out.append(f"error: {error}")
    quality, grounded, harm = (number(row.get(c)) for c in ("quality", "groundedness", "harm"))
    unscored = [name for name, v in (("quality", quality), ("groundedness", grounded),
                                     ("harm", harm)) if math.isnan(v)]
    if unscored and not error:
        out.append("unscored: " + ", ".join(unscored))
    if quality < options.low_quality:
        out.append(f"quality {format_value(quality)} < {options.low_quality:g}")
    if grounded < options.low_groundedness:
        out.append(f"groundedness {format_value(grounded)} < {options.low_groundedness:g}")
    if harm >= options.harm_flagged:
        categories = _text(row.get("harm_categories"))
        out.append("harm flagged" + (f": {categories}" if categories else ""))
    return out


@dataclass(frozen=True)
class Cell:
    """One candidate's answer to one question, with every metric's value and reason."""

    key: str
    candidate_id: str
    answer: str
    answer_cut: int                  # characters left out of `answer`
    scores: list[tuple[str, str]]    # (label, formatted value)
    reasons: list[tuple[str, str]]   # (metric, reason)
    error: str
    failures: list[str]
    quality: float


def _reasons(row: dict[str, Any], limit: int) -> list[tuple[str, str]]:
    # Harm has no reason column: its categories and the scorer that gave them are the reason.
    harm = "; ".join(f"{label}: {_text(row.get(column))}"
                     for label, column in (("categories", "harm_categories"),
                                           ("source", "harm_source"))
                     if _text(row.get(column)))
    grounded = _text(row.get("groundedness_reason"))
    if _text(row.get("groundedness_source")):
        grounded += f" (by {_text(row.get('groundedness_source'))})"
    pairs = [("quality", _text(row.get("quality_reason"))), ("groundedness", grounded.strip()),
             ("harm", harm), ("cost", _text(row.get("cost_reason"))),
             ("latency", _text(row.get("latency_reason")))]
    return [(name, _cut(text, limit)[0]) for name, text in pairs if text]


def cell(row: dict[str, Any], key: str, options: ReportOptions) -> Cell:
    answer, cut = _cut(_text(row.get("answer")), options.max_answer_chars)
    cost = number(row.get("cost_usd"))
    scores = [("quality", format_value(row.get("quality"))),
              ("groundedness", format_value(row.get("groundedness"))),
              ("harm", format_value(row.get("harm"))),
              ("cost / 1k", format_value(cost * 1000, "usd") + (" USD" if not math.isnan(cost)
                                                                 else "")),
              ("ms / token", format_value(row.get("ms_per_output_token"), "ms"))]
    return Cell(key=key, candidate_id=str(row["candidate_id"]), answer=answer, answer_cut=cut,
                scores=scores, reasons=_reasons(row, options.max_reason_chars),
                error=_text(row.get("error")), failures=row_failures(row, options),
                quality=number(row.get("quality")))


@dataclass(frozen=True)
class Question:
    """One grid row: a question, its ground truth and a cell per candidate (None: not run)."""

    qa_id: str
    question: str
    ground_truth: str
    cells: list[Cell | None]
    spread: float       # max - min quality over the candidates that scored it (NaN: < 2)
    disagree: bool
    failed: bool        # any cell failed


def quality_spread(values: Sequence[float]) -> float:
    scored = [v for v in values if not math.isnan(v)]
    return max(scored) - min(scored) if len(scored) >= 2 else math.nan


def grid(rows: pd.DataFrame, cands: list[Candidate], options: ReportOptions) -> list[Question]:
    """One Question per qa_id (in qa_id order), cells in the candidates' order."""
    keys = {c.candidate_id: c.key for c in cands}
    order = [c.candidate_id for c in cands]
    out: list[Question] = []
    if rows.empty:
        return out
    for qa_id, group in rows.groupby("qa_id", sort=True):
        records = {str(r["candidate_id"]): r for r in group.to_dict("records")}
        first = next(iter(records.values()))
        cells = [cell(records[cid], keys[cid], options) if cid in records else None
                 for cid in order]
        spread = quality_spread([c.quality for c in cells if c is not None])
        out.append(Question(
            qa_id=str(qa_id), question=_text(first.get("question")),
            ground_truth=_text(first.get("ground_truth")), cells=cells, spread=spread,
            disagree=not math.isnan(spread) and spread > options.disagreement,
            failed=any(c is not None and c.failures for c in cells)))
    return out


@dataclass(frozen=True)
class WorstRow:
    key: str
    candidate_id: str
    qa_id: str
    question: str
    ground_truth: str
    answer: str
    answer_cut: int
    context_ids: list[str]
    source_doc_retrieved: str   # yes / no / n/a
    scores: list[tuple[str, str]]
    reasons: list[tuple[str, str]]
    failures: list[str]


def _badness(row: dict[str, Any], options: ReportOptions) -> tuple[float, ...]:
    """Sort key, worst first: errors, then flagged harm, then lowest quality and groundedness
    (an unscored metric counts below every score)."""
    def low(v: float) -> float:
        return -1.0 if math.isnan(v) else v
    return (0.0 if _text(row.get("error")) else 1.0,
            0.0 if number(row.get("harm")) >= options.harm_flagged else 1.0,
            low(number(row.get("quality"))), low(number(row.get("groundedness"))))


def worst_rows(rows: pd.DataFrame, cands: list[Candidate], options: ReportOptions) -> list[WorstRow]:
    keys = {c.candidate_id: c.key for c in cands}
    records = [r for r in rows.to_dict("records") if str(r["candidate_id"]) in keys]
    records.sort(key=lambda r: (*_badness(r, options), str(r["candidate_id"]), str(r["qa_id"])))
    out = []
    for row in records[:max(options.worst, 0)]:
        one = cell(row, keys[str(row["candidate_id"])], options)
        retrieved = row.get("source_doc_retrieved")
        out.append(WorstRow(
            key=one.key, candidate_id=one.candidate_id, qa_id=_text(row.get("qa_id")),
            question=_text(row.get("question")), ground_truth=_text(row.get("ground_truth")),
            answer=one.answer, answer_cut=one.answer_cut, context_ids=_ids(row.get("context_ids")),
            source_doc_retrieved="n/a" if missing(retrieved) else "yes" if retrieved else "no",
            scores=one.scores, reasons=one.reasons, failures=one.failures))
    return out


@dataclass(frozen=True)
class PairedRow:
    """One challenger vs the champion: a PairedDiff per gated metric, and its verdict."""

    key: str
    candidate_id: str
    diffs: list[tuple[PairedDiff, str]]   # (difference, better | worse | unclear | n/a)


@dataclass(frozen=True)
class Paired:
    champion_id: str | None
    champion_key: str | None
    note: str
    metrics: list[str] = field(default_factory=list)
    challengers: list[PairedRow] = field(default_factory=list)


def verdict(metric: str, diff: PairedDiff) -> str:
    """better / worse when the whole CI lies on one side of 0, else unclear (n/a: no pairs)."""
    if diff.pairs < 2 or math.isnan(diff.ci_low) or math.isnan(diff.ci_high):
        return "n/a"
    sign = 1 if metric in HIGHER_IS_BETTER else -1
    if sign * diff.ci_low > 0 and sign * diff.ci_high > 0:
        return "better"
    if sign * diff.ci_low < 0 and sign * diff.ci_high < 0:
        return "worse"
    return "unclear"


def paired(rows: pd.DataFrame, cands: list[Candidate], champion: Contender | None,
           options: ReportOptions) -> Paired:
    """Every other evaluated candidate minus the champion, paired on the questions both answered
    (promotion/paired_bootstrap.py, the same statistic the promotion gates use)."""
    if champion is None:
        return Paired(None, None, "no champion in the registry yet: the paired differences "
                                  "appear once a candidate is promoted (the promotion group's "
                                  "champion asset, or `llmops promote`)")
    keys = {c.candidate_id: c.key for c in cands}
    if champion.rows is None or champion.rows.empty:
        return Paired(champion.id, keys.get(champion.id), "the champion's deployment keeps no "
                      "per-question rows: no paired differences (promote a re-evaluated "
                      "candidate to keep them)")
    metrics = list(ROW_METRICS)
    out = []
    for cand in cands:
        if cand.candidate_id == champion.id:
            continue
        mine = rows[rows["candidate_id"] == cand.candidate_id]
        diffs = []
        for metric in metrics:
            diff = paired_diff(metric, mine, champion.rows, samples=options.bootstrap_samples,
                               confidence=options.confidence)
            diffs.append((diff, verdict(metric, diff)))
        out.append(PairedRow(cand.key, cand.candidate_id, diffs))
    where = ("re-evaluated in this run" if champion.id in keys
             else "from the rows kept with its deployment")
    note = (f"challenger − champion over the questions both answered; the champion's rows "
            f"{where}; {options.confidence:.0%} paired bootstrap CI "
            f"({options.bootstrap_samples} resamples)")
    if not out:
        note = "the champion is the only evaluated candidate: nothing to compare"
    return Paired(champion.id, keys.get(champion.id), note, metrics, out)
