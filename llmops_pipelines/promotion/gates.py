"""assets/gates.yaml: the thresholds promotion and monitoring hold a candidate to, validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.errors import DataError

# The metrics promotion gates, each with one asset check; thresholds may name only these.
GATED_METRICS = ("quality", "groundedness", "harm_rate", "cost_per_1k_answers_usd",
                 "latency_p95_ms_per_token", "coverage")
# Production-only metrics the monitoring checks hold to `monitoring:` thresholds.
MONITORED_ONLY = ("question_drift", "negative_feedback_rate")
# Higher is better for these; lower is better for every other gated metric.
HIGHER_IS_BETTER = {"quality", "groundedness", "coverage"}
# A challenger within the primary metric's margin of the champion still wins by being better
# than it beyond the margin on one of these (a tie on quality, clearly cheaper or faster).
TIE_BREAKERS = ("cost_per_1k_answers_usd", "latency_p95_ms_per_token")
# The unit a difference is shown in (scores and rates are unitless shares), and the decimals a
# value or difference is shown with (3 unless listed: a thousandth of a score, of a dollar).
UNITS = {"cost_per_1k_answers_usd": "$/1k answers", "latency_p95_ms_per_token": "ms/token"}
DECIMALS = {"latency_p95_ms_per_token": 1}


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read gates: {exc}", path=str(path)) from exc


def _bounds(section: Any, path: Path, name: str,
            allowed: tuple[str, ...]) -> dict[str, dict[str, float]]:
    if not isinstance(section or {}, dict):
        raise DataError(f"'{name}' must be a mapping", path=str(path), field=name)
    out: dict[str, dict[str, float]] = {}
    for metric, bound in (section or {}).items():
        where = f"{name}.{metric}"
        if metric not in allowed:
            raise DataError(f"unknown metric {metric!r}; expected one of {list(allowed)}",
                            path=str(path), field=where)
        if not isinstance(bound, dict) or not set(bound) <= {"min", "max"} or not bound:
            raise DataError("each threshold needs 'min' and/or 'max'", path=str(path), field=where)
        try:
            out[str(metric)] = {k: float(v) for k, v in bound.items()}
        except (TypeError, ValueError) as exc:
            raise DataError("thresholds must be numbers", path=str(path), field=where) from exc
    return out


def _number(data: dict[str, Any], key: str, default: float, path: Path, lo: float, hi: float) -> float:
    try:
        value = float(data.get(key, default))
    except (TypeError, ValueError) as exc:
        raise DataError("must be a number", path=str(path), field=f"non_regression.{key}") from exc
    if not lo < value <= hi:
        raise DataError(f"must be in ({lo:g}, {hi:g}], found {value:g}", path=str(path),
                        field=f"non_regression.{key}")
    return value


def _for_provider(data: dict[str, Any], path: Path, provider: str | None) -> dict[str, Any]:
    # Latency and cost depend on where the model runs (a 135M model on 2 CPU cores is not an
    # API), so a provider may move those bounds; everything else stays one policy.
    profiles = data.get("providers") or {}
    if not isinstance(profiles, dict):
        raise DataError("must be a mapping of provider name -> overrides", path=str(path),
                        field="providers")
    profile = profiles.get(provider) or {} if provider else {}
    if not isinstance(profile, dict) or not set(profile) <= {"thresholds", "margins"}:
        raise DataError("a provider may override only 'thresholds' and 'margins'",
                        path=str(path), field=f"providers.{provider}")
    overrides = _bounds(profile.get("thresholds"), path, f"providers.{provider}.thresholds",
                        GATED_METRICS)
    regression = dict(data.get("non_regression") or {})
    margins = profile.get("margins") or {}
    if not isinstance(margins, dict):
        raise DataError("must be a mapping", path=str(path), field=f"providers.{provider}.margins")
    if margins:
        regression["margins"] = {**(regression.get("margins") or {}), **margins}
    return {**data, "thresholds": {**(data.get("thresholds") or {}), **overrides},
            "non_regression": regression}


@dataclass(frozen=True)
class Gates:
    primary_metric: str
    thresholds: dict[str, dict[str, float]]
    confidence: float = 0.95
    bootstrap_samples: int = 2000
    # How much worse (in the metric's units) a candidate may be before it counts as a regression.
    margins: dict[str, float] = field(default_factory=dict)
    monitoring: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, provider: str | None = None) -> Gates:
        """The gates for `provider`: its `providers.<name>` section overrides the defaults."""
        data = _read(path)
        raw = data.get("thresholds") if isinstance(data, dict) else None
        # `thresholds: none` is an explicit choice (the champion comparison only); an empty or
        # missing section is more likely a slip, and would promote on "every gate passed".
        explicit_none = isinstance(raw, str) and raw.strip().lower() == "none"
        if explicit_none:
            data = {**data, "thresholds": {}}
        elif not isinstance(data, dict) or not isinstance(raw or {}, dict):
            raise DataError("gates must be a mapping with a 'thresholds' mapping",
                            path=str(path), field="thresholds")
        data = _for_provider(data, path, provider)
        thresholds = _bounds(data.get("thresholds"), path, "thresholds", GATED_METRICS)
        primary = str(data.get("primary_metric") or "quality")
        if primary not in GATED_METRICS:
            raise DataError(f"unknown metric {primary!r}; expected one of {list(GATED_METRICS)}",
                            path=str(path), field="primary_metric")
        regression = data.get("non_regression") or {}
        if not isinstance(regression, dict):
            raise DataError("must be a mapping", path=str(path), field="non_regression")
        margins = regression.get("margins") or {}
        if not isinstance(margins, dict) or not set(margins) <= set(GATED_METRICS):
            raise DataError(f"margins may name only {list(GATED_METRICS)}", path=str(path),
                            field="non_regression.margins")
        gates = cls(primary, thresholds,
                    confidence=_number(regression, "confidence", 0.95, path, 0.5, 0.999),
                    bootstrap_samples=int(_number(regression, "bootstrap_samples", 2000, path,
                                                  99, 1e6)),
                    margins={str(k): float(v) for k, v in margins.items()},
                    monitoring=_bounds(data.get("monitoring"), path, "monitoring",
                                       (*GATED_METRICS, *MONITORED_ONLY)))
        if not thresholds and not explicit_none:
            raise DataError("no thresholds: nothing would be checked and any candidate would "
                            f"pass; list at least one of {list(GATED_METRICS)}, or write "
                            "`thresholds: none` to gate on the champion comparison only",
                            path=str(path), field="thresholds")
        return gates


def load_recall_gate(path: Path) -> float | None:
    """`retrieval: recall_at_5: {min: x}` from gates.yaml; None when the file sets no gate."""
    data = _read(path)
    section = data.get("retrieval") if isinstance(data, dict) else None
    if section is None:
        return None
    bound = section.get("recall_at_5") if isinstance(section, dict) else None
    if not isinstance(bound, dict) or set(bound) != {"min"}:
        raise DataError("expected `retrieval: {recall_at_5: {min: <0..1>}}`", path=str(path),
                        field="retrieval.recall_at_5")
    try:
        value = float(bound["min"])
    except (TypeError, ValueError) as exc:
        raise DataError("the recall gate must be a number", path=str(path),
                        field="retrieval.recall_at_5.min") from exc
    if not 0.0 <= value <= 1.0:
        raise DataError(f"the recall gate must be within 0..1, found {value}", path=str(path),
                        field="retrieval.recall_at_5.min")
    return value
