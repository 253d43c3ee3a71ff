"""Pure promotion logic: absolute gates from assets/gates.yaml, then no regression vs the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.errors import DataError

# Higher is better for these; lower is better for every other gated metric.
HIGHER_IS_BETTER = {"quality", "groundedness", "coverage"}


@dataclass(frozen=True)
class Gates:
    primary_metric: str
    thresholds: dict[str, dict[str, float]]

    @classmethod
    def load(cls, path: Path) -> Gates:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read gates: {exc}", path=str(path)) from exc
        if not isinstance(data, dict) or not isinstance(data.get("thresholds") or {}, dict):
            raise DataError("gates must be a mapping with a 'thresholds' mapping",
                            path=str(path), field="thresholds")
        thresholds: dict[str, dict[str, float]] = {}
        for metric, bound in (data.get("thresholds") or {}).items():
            if not isinstance(bound, dict) or not set(bound) <= {"min", "max"} or not bound:
                raise DataError("each threshold needs 'min' and/or 'max'", path=str(path),
                                field=f"thresholds.{metric}")
            try:
                thresholds[str(metric)] = {k: float(v) for k, v in bound.items()}
            except (TypeError, ValueError) as exc:
                raise DataError("thresholds must be numbers", path=str(path),
                                field=f"thresholds.{metric}") from exc
        primary = str(data.get("primary_metric") or "quality")
        return cls(primary, thresholds)


@dataclass(frozen=True)
class GateCheck:
    metric: str
    value: float
    bound: str
    threshold: float
    passed: bool

    def describe(self) -> str:
        op = ">=" if self.bound == "min" else "<="
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.metric} = {self.value:.4g} (needs {op} {self.threshold:g}): {verdict}"


@dataclass(frozen=True)
class Decision:
    candidate_id: str | None
    promote: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    champion_id: str | None = None


def check_gates(summary: dict[str, Any], gates: Gates) -> list[GateCheck]:
    """Every absolute threshold against one candidate's summary; NaN never passes."""
    checks = []
    for metric, bounds in gates.thresholds.items():
        value = float(summary.get(metric, math.nan))
        for bound, threshold in bounds.items():
            ok = not math.isnan(value) and (value >= threshold if bound == "min"
                                            else value <= threshold)
            checks.append(GateCheck(metric, value, bound, threshold, ok))
    return checks


def _better(metric: str, a: float, b: float) -> bool:
    return a >= b if metric in HIGHER_IS_BETTER else a <= b


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, gates: Gates) -> Decision:
    """Promote only a candidate that passes every gate and is not worse than the champion."""
    checks = check_gates(candidate, gates)
    cid = candidate["candidate_id"]
    failed = [c.describe() for c in checks if not c.passed]
    if failed:
        return Decision(cid, False, ["gate failed: " + f for f in failed], checks,
                        champion and champion["candidate_id"])
    if champion is None:
        return Decision(cid, True, ["first deployment: every gate passed"], checks)
    if champion["candidate_id"] == cid:
        return Decision(cid, False, ["already the champion"], checks, cid)
    metric = gates.primary_metric
    new = float(candidate.get(metric, math.nan))
    old = float(champion.get(metric, math.nan))
    if math.isnan(new):
        return Decision(cid, False, [f"{metric} could not be scored"], checks,
                        champion["candidate_id"])
    # A champion whose primary metric was never scored cannot block a scored candidate.
    if not math.isnan(old) and not _better(metric, new, old):
        return Decision(cid, False, [f"{metric} {new:.4g} is worse than the champion's {old:.4g}"],
                        checks, champion["candidate_id"])
    return Decision(cid, True, [f"every gate passed and {metric} {new:.4g} >= champion {old:.4g}"],
                    checks, champion["candidate_id"])


def choose(summaries: list[dict[str, Any]], champion: dict[str, Any] | None,
           gates: Gates) -> Decision:
    """The decision for the best candidate by the primary metric among those passing the gates."""
    if not summaries:
        return Decision(None, False, ["no candidate was evaluated"])
    metric = gates.primary_metric
    sign = 1 if metric in HIGHER_IS_BETTER else -1

    def rank(s: dict[str, Any]) -> tuple[bool, float]:
        value = float(s.get(metric, math.nan))
        passing = all(c.passed for c in check_gates(s, gates))
        return passing, sign * (value if not math.isnan(value) else -math.inf * sign)

    best = max(summaries, key=rank)
    return decide(best, champion, gates)
