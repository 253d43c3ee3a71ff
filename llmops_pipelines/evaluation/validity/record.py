"""The last validity run: written by `python -m bench validity`, read by the summary and the gates.

Stored as JSON under LLMOPS_HOME (validity/latest.json): per metric its measured false-alarm
and miss rates, per kind its detection, and what produced them (evaluator version, corpus,
judge model), so a gate can say how far its metric is to be trusted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmops_pipelines.errors import DataError

LATEST = ("validity", "latest.json")  # under LLMOPS_HOME
# A gate on a metric that misses more planted errors than this warns in the evidence table.
MAX_MISS_RATE = 0.20
# Gated summary metric -> the validity metric measuring the scorer behind it.
GATED = {"groundedness": "groundedness", "quality": "quality", "harm_rate": "harm"}


@dataclass(frozen=True)
class MetricValidity:
    """How often one metric was wrong on the planted benchmark."""

    metric: str
    false_alarm_rate: float
    miss_rate: float
    contradiction_detection: float
    supported: int
    planted: int

    def describe(self) -> str:
        return (f"{self.metric}: misses {self.miss_rate:.0%} of {self.planted} planted errors, "
                f"false alarms on {self.false_alarm_rate:.0%} of {self.supported} supported")


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def build(per_metric: pd.DataFrame, per_kind: pd.DataFrame, **about: Any) -> dict[str, Any]:
    """The JSON record of one run: `about` says what was measured (versions, corpus, judge)."""
    return {**about,
            "metrics": {r["metric"]: {k: _clean(v) for k, v in r.items() if k != "metric"}
                        for r in per_metric.to_dict("records")},
            "kinds": [{k: _clean(v) for k, v in r.items()} for r in per_kind.to_dict("records")]}


def save(record: dict[str, Any], path: Path) -> Path:
    """Write the record (directories created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def load(path: Path) -> dict[str, Any] | None:
    """The last run's record, None when there was none; a damaged file is an error naming it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the last validity run: {exc}", path=str(path)) from exc
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise DataError("expected a JSON object with 'metrics'", path=str(path), field="metrics")
    return record


def _num(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return math.nan if value is None else float(value)


def metric_validity(record: Mapping[str, Any] | None, gated_metric: str,
                    source: str | None = None) -> MetricValidity | None:
    """The measured rates of the scorer behind a gated metric (its judge when a judge scored it)."""
    if record is None or gated_metric not in GATED:
        return None
    name = GATED[gated_metric]
    if source and source.startswith("judge:") and f"{name}_judge" in record["metrics"]:
        name = f"{name}_judge"
    data = record["metrics"].get(name)
    if not isinstance(data, dict):
        return None
    return MetricValidity(name, _num(data, "false_alarm_rate"), _num(data, "miss_rate"),
                          _num(data, "contradiction_detection"), int(data.get("supported") or 0),
                          int(data.get("planted") or 0))


def gate_validity(record: Mapping[str, Any] | None,
                  sources: Mapping[str, str | None] | None = None) -> dict[str, MetricValidity]:
    """Measured rates for every gated metric the record covers, keyed by the gated metric."""
    out = {}
    for gated in GATED:
        found = metric_validity(record, gated, (sources or {}).get(gated))
        if found is not None:
            out[gated] = found
    return out


def table(record: Mapping[str, Any] | None, current_version: str | None = None) -> str:
    """A markdown table of every metric's rates, or how to produce them; says when it is stale."""
    if record is None:
        return "no validity run yet: `python -m bench validity` measures each metric's error rates"
    measured = record.get("evaluator_version", "?")
    stale = (f" — stale: the scorers are now {current_version}; run `python -m bench validity`"
             if current_version and measured != current_version else "")
    lines = [f"validity run {record.get('created_at', '?')} (evaluator "
             f"{measured}, {record.get('corpus', '?')}){stale}", "",
             "| metric | false alarms | misses | contradictions detected | AUC |",
             "|---|---|---|---|---|"]
    for name, data in sorted(record["metrics"].items()):
        def pct(key: str, data: Mapping[str, Any] = data) -> str:
            value = _num(data, key)
            return "n/a" if math.isnan(value) else f"{value:.1%}"
        lines.append(f"| {name} | {pct('false_alarm_rate')} | {pct('miss_rate')} | "
                     f"{pct('contradiction_detection')} | {_num(data, 'auc'):.3f} |")
    return "\n".join(lines)
