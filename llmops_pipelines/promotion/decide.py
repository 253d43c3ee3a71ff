"""Pure promotion logic: absolute gates from assets/gates.yaml, then no regression vs the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmops_pipelines.promotion.gates import GATED_METRICS, HIGHER_IS_BETTER, Gates
from llmops_pipelines.promotion.paired_bootstrap import PairedDiff, paired_diff

__all__ = ["GATED_METRICS", "Contender", "Decision", "GateCheck", "GateResult", "Gates",
           "check_gates", "choose", "decide"]


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
class Contender:
    """A candidate's summary and, when known, its per-question rows (for the paired test)."""

    summary: dict[str, Any]
    rows: pd.DataFrame | None = None

    @property
    def id(self) -> str:
        return str(self.summary["candidate_id"])

    @classmethod
    def of(cls, value: Contender | dict[str, Any]) -> Contender:
        return value if isinstance(value, Contender) else cls(dict(value))


@dataclass(frozen=True)
class GateResult:
    """One gated metric's verdict: its absolute threshold and its regression vs the champion."""

    metric: str
    passed: bool
    reason: str
    regression: PairedDiff | None = None
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    candidate_id: str | None
    promote: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    champion_id: str | None = None
    gates: list[GateResult] = field(default_factory=list)


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


def _worse(metric: str, delta: float) -> float:
    """How much worse a difference (candidate - champion) is: positive means worse."""
    return -delta if metric in HIGHER_IS_BETTER else delta


def _regression(metric: str, cand: Contender, champ: Contender, gates: Gates) -> PairedDiff | None:
    if cand.rows is None or champ.rows is None:
        return None
    diff = paired_diff(metric, cand.rows, champ.rows, samples=gates.bootstrap_samples,
                       confidence=gates.confidence)
    return diff if diff.pairs >= 2 else None


def _gate(metric: str, checks: list[GateCheck], cand: Contender, champ: Contender | None,
          gates: Gates) -> GateResult:
    own = [c for c in checks if c.metric == metric]
    failures = [f"gate failed: {c.describe()}" for c in own if not c.passed]
    notes = [c.describe() for c in own if c.passed]
    diff = None
    if champ is None or champ.id == cand.id:
        notes.append("first deployment: thresholds only" if champ is None
                     else "the champion itself")
    elif (diff := _regression(metric, cand, champ, gates)) is not None:
        margin = gates.margins.get(metric, 0.0)
        # Significantly worse: the whole CI lies on the worse side, beyond the allowed margin.
        bound = diff.ci_high if metric in HIGHER_IS_BETTER else diff.ci_low
        evidence = (f"{metric} vs champion {diff.diff:+.4g} "
                    f"[{gates.confidence:.0%} CI {diff.ci_low:+.4g}, {diff.ci_high:+.4g}] "
                    f"over {diff.pairs} paired questions")
        if _worse(metric, bound) > margin:
            failures.append(f"{evidence}: significantly worse than the champion")
        elif metric == gates.primary_metric and _worse(metric, diff.diff) > 0:
            failures.append(f"{evidence}: the primary metric is worse than the champion")
        else:
            notes.append(f"{evidence}: not worse")
    elif metric == gates.primary_metric:
        new = float(cand.summary.get(metric, math.nan))
        old = float(champ.summary.get(metric, math.nan))
        # A champion whose primary metric was never scored cannot block a scored candidate.
        if not math.isnan(new) and not math.isnan(old) and _worse(metric, new - old) > 0:
            failures.append(f"{metric} {new:.4g} is worse than the champion's {old:.4g}")
        else:
            notes.append(f"{metric} {new:.4g} vs champion {old:.4g}: not worse (no paired rows)")
    else:
        notes.append("no paired rows with the champion: thresholds only")
    return GateResult(metric, not failures, "; ".join(failures + notes), diff, tuple(failures))


def decide(candidate: Contender | dict[str, Any], champion: Contender | dict[str, Any] | None,
           gates: Gates) -> Decision:
    """Promote only a candidate that passes every gate and is not worse than the champion."""
    cand = Contender.of(candidate)
    champ = Contender.of(champion) if champion is not None else None
    checks = check_gates(cand.summary, gates)
    results = [_gate(m, checks, cand, champ, gates)
               for m in dict.fromkeys([*GATED_METRICS, *gates.thresholds])]
    champion_id = champ.id if champ else None
    failed = ["gate failed: " + c.describe() for c in checks if not c.passed]
    regressed = [f for r in results for f in r.failures if not f.startswith("gate failed")]
    if failed or regressed:
        return Decision(cand.id, False, failed + regressed, checks, champion_id, results)
    if champ is None:
        return Decision(cand.id, True, ["first deployment: every gate passed"], checks, None,
                        results)
    if champ.id == cand.id:
        return Decision(cand.id, False, ["already the champion"], checks, champion_id, results)
    primary = next(r for r in results if r.metric == gates.primary_metric)
    new = float(cand.summary.get(gates.primary_metric, math.nan))
    if math.isnan(new):
        return Decision(cand.id, False, [f"{gates.primary_metric} could not be scored"], checks,
                        champion_id, results)
    return Decision(cand.id, True, ["every gate passed; " + primary.reason.split("; ")[-1]],
                    checks, champion_id, results)


def choose(contenders: list[Contender | dict[str, Any]], champion: Contender | dict[str, Any] | None,
           gates: Gates) -> Decision:
    """The best promotable candidate; else the champion staying; else why the best one failed."""
    if not contenders:
        return Decision(None, False, ["no candidate was evaluated"])
    metric = gates.primary_metric
    sign = 1 if metric in HIGHER_IS_BETTER else -1

    def rank(c: Contender) -> tuple[bool, float]:
        value = float(c.summary.get(metric, math.nan))
        passing = all(check.passed for check in check_gates(c.summary, gates))
        return passing, sign * value if not math.isnan(value) else -math.inf

    ranked = sorted((Contender.of(c) for c in contenders), key=rank, reverse=True)
    decisions = [decide(c, champion, gates) for c in ranked]
    promotable = [d for d in decisions if d.promote]
    # Nothing to promote: the top-ranked contender says why (the champion itself, when it
    # still ranks first, stays without a red gate).
    return promotable[0] if promotable else decisions[0]
