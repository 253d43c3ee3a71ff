"""Pure promotion logic: absolute gates from assets/gates.yaml, then the champion comparison.

The rule, per candidate against the sitting champion (candidate - champion, paired on the
same eval questions, with a bootstrap CI; margins from gates.yaml, 0 when unset):

1. every absolute threshold holds, else rejected;
2. no gated metric is worse beyond its margin (the whole CI past -margin), else rejected;
3. better on the primary metric beyond its margin (the whole CI past +margin): promoted;
4. within the primary metric's margin and better beyond the margin on a tie-breaker (cost,
   latency): promoted;
5. anything else is a tie, and a tie keeps the sitting champion (no churn on ties).

With no champion yet, a candidate passing every threshold is promoted (`choose` takes the best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmops_pipelines.promotion.gates import (
    DECIMALS,
    GATED_METRICS,
    HIGHER_IS_BETTER,
    TIE_BREAKERS,
    UNITS,
    Gates,
)
from llmops_pipelines.promotion.paired_bootstrap import PairedDiff, paired_diff

__all__ = ["GATED_METRICS", "Comparison", "Contender", "Decision", "GateCheck", "GateResult",
           "Gates", "check_gates", "choose", "decide", "number", "show"]

BETTER, WITHIN, WORSE = "better", "within", "worse"


def number(value: float | None, *, signed: bool = False, decimals: int = 3) -> str:
    """A float for people: rounded to `decimals`, trailing zeros dropped, no "-0" ("+0")."""
    if value is None or math.isnan(value):
        return "nan"
    value = round(float(value), decimals) + 0.0  # -0.0 -> 0.0
    text = np.format_float_positional(value, precision=decimals, unique=False, trim="-")
    return f"+{text}" if signed and value >= 0 else text


def show(metric: str, value: float | None, *, signed: bool = False) -> str:
    """A metric's value or difference at the metric's resolution (gates.DECIMALS)."""
    return number(value, signed=signed, decimals=DECIMALS.get(metric, 3))


@dataclass(frozen=True)
class GateCheck:
    metric: str
    value: float
    bound: str
    threshold: float
    passed: bool

    @property
    def needs(self) -> str:
        return f"{'>=' if self.bound == 'min' else '<='} {self.threshold:g}"

    def describe(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.metric} = {show(self.metric, self.value)} (needs {self.needs}): {verdict}"

    def failure(self) -> str:
        """Why a failed check stops the candidate, as a decision reason."""
        unscored = " (not scored)" if math.isnan(self.value) else ""
        return (f"{self.metric} = {show(self.metric, self.value)}{unscored} fails its threshold "
                f"(needs {self.needs})")


@dataclass(frozen=True)
class Comparison:
    """candidate - champion on one metric, judged against the metric's margin.

    With paired rows the CI is the paired bootstrap's; without them (a champion promoted before
    rows were kept, or bare summaries) the summaries' difference is a point (pairs = 0).
    """

    metric: str
    diff: float
    ci_low: float
    ci_high: float
    pairs: int
    margin: float
    confidence: float

    @property
    def gain(self) -> tuple[float, float]:
        """The CI as improvement (positive = better), whatever the metric's direction."""
        low, high = (self.ci_low, self.ci_high) if self.pairs else (self.diff, self.diff)
        return (low, high) if self.metric in HIGHER_IS_BETTER else (-high, -low)

    @property
    def verdict(self) -> str:
        """better / worse only when the whole CI lies beyond the margin on that side."""
        low, high = self.gain
        if low > self.margin:
            return BETTER
        if high < -self.margin:
            return WORSE
        return WITHIN

    def describe(self) -> str:
        """e.g. `latency_p95_ms_per_token +35.4 ms/token [+9.3, +46.3] vs the champion (95% CI
        over 20 paired questions), margin ±50: within the margin`."""
        m = self.metric
        unit = f" {UNITS[m]}" if m in UNITS else ""
        if self.pairs:
            ci = (f" {self.ci()} vs the champion ({self.confidence:.0%} CI over {self.pairs} "
                  "paired questions)")
        else:
            ci = " vs the champion (summaries: no paired rows, no CI)"
        verdict = {BETTER: "better beyond the margin", WORSE: "worse beyond the margin",
                   WITHIN: "within the margin"}[self.verdict]
        return f"{m} {show(m, self.diff, signed=True)}{unit}{ci}, margin ±{self.margin:g}: {verdict}"

    def ci(self) -> str:
        """`[low, high]` at the metric's resolution; empty without paired rows."""
        if not self.pairs:
            return ""
        m = self.metric
        return f"[{show(m, self.ci_low, signed=True)}, {show(m, self.ci_high, signed=True)}]"


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
    """One gated metric's verdict: its absolute threshold and its comparison with the champion.

    `reason` is the check's description (every part ending in pass / FAIL); `failures` are
    the parts that failed, worded as decision reasons.
    """

    metric: str
    passed: bool
    reason: str
    regression: PairedDiff | None = None
    failures: tuple[str, ...] = ()
    comparison: Comparison | None = None


@dataclass(frozen=True)
class Decision:
    candidate_id: str | None
    promote: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    champion_id: str | None = None
    gates: list[GateResult] = field(default_factory=list)
    # promote | reject | tie | incumbent (the champion itself) | none (nothing evaluated)
    outcome: str = "reject"
    # The challenger this decision is about: the candidate, or (when the champion itself still
    # ranks first) the best-ranked other one; None without any.
    challenger_id: str | None = None


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


def _paired(metric: str, cand: Contender, champ: Contender, gates: Gates) -> PairedDiff | None:
    if cand.rows is None or champ.rows is None:
        return None
    diff = paired_diff(metric, cand.rows, champ.rows, samples=gates.bootstrap_samples,
                       confidence=gates.confidence)
    return diff if diff.pairs >= 2 and not math.isnan(diff.diff) else None


def _compare(metric: str, cand: Contender, champ: Contender,
             gates: Gates) -> tuple[Comparison | None, PairedDiff | None]:
    margin = gates.margins.get(metric, 0.0)
    diff = _paired(metric, cand, champ, gates)
    if diff is not None:
        return Comparison(metric, diff.diff, diff.ci_low, diff.ci_high, diff.pairs, margin,
                          gates.confidence), diff
    # No paired rows: the summaries say nothing about noise, so only the metrics the rule
    # weighs (the primary one and the tie-breakers) are compared, on their point difference.
    if metric != gates.primary_metric and metric not in TIE_BREAKERS:
        return None, None
    new = float(cand.summary.get(metric, math.nan))
    old = float(champ.summary.get(metric, math.nan))
    # A side that never scored the metric leaves nothing to compare (no regression, no win).
    if math.isnan(new) or math.isnan(old):
        return None, None
    return Comparison(metric, new - old, math.nan, math.nan, 0, margin, gates.confidence), None


def _gate(metric: str, checks: list[GateCheck], cand: Contender, champ: Contender | None,
          gates: Gates) -> GateResult:
    own = [c for c in checks if c.metric == metric]
    failures = [c.failure() for c in own if not c.passed]
    parts = [c.describe() for c in own]
    comparison, diff = (None, None) if champ is None or champ.id == cand.id else \
        _compare(metric, cand, champ, gates)
    if champ is None:
        parts.append("no champion yet: thresholds only")
    elif champ.id == cand.id:
        parts.append("the champion itself")
    elif comparison is None:
        parts.append("not compared with the champion (no paired rows): thresholds only")
    else:
        worse = comparison.verdict == WORSE
        if worse:
            failures.append(comparison.describe())
        parts.append(f"{comparison.describe()}, {'FAIL' if worse else 'pass'}")
    return GateResult(metric, not failures, "; ".join(parts), diff, tuple(failures), comparison)


def decide(candidate: Contender | dict[str, Any], champion: Contender | dict[str, Any] | None,
           gates: Gates) -> Decision:
    """Promote a candidate that passes every gate and beats the champion (see the module doc)."""
    cand = Contender.of(candidate)
    champ = Contender.of(champion) if champion is not None else None
    checks = check_gates(cand.summary, gates)
    results = [_gate(m, checks, cand, champ, gates)
               for m in dict.fromkeys([*GATED_METRICS, *gates.thresholds])]
    champion_id = champ.id if champ else None
    challenger_id = None if champ is not None and champ.id == cand.id else cand.id

    def verdict(promote: bool, outcome: str, reasons: list[str]) -> Decision:
        return Decision(cand.id, promote, reasons, checks, champion_id, results, outcome,
                        challenger_id)

    failed = [c.failure() for c in checks if not c.passed]
    if champ is None:
        if failed:
            return verdict(False, "reject", failed)
        return verdict(True, "promote", ["no champion yet; first deployment: every threshold "
                                         "passed"])
    if champ.id == cand.id:
        return verdict(False, "incumbent", ["already the champion"])
    regressed = [r.comparison.describe() for r in results
                 if r.comparison is not None and r.comparison.verdict == WORSE]
    if failed or regressed:
        return verdict(False, "reject", [*failed, *regressed])
    primary = gates.primary_metric
    if math.isnan(float(cand.summary.get(primary, math.nan))):
        return verdict(False, "reject", [f"{primary} could not be scored"])
    compared = {r.metric: r.comparison for r in results if r.comparison is not None}
    lead = compared.get(primary)
    if lead is not None and lead.verdict == BETTER:
        return verdict(True, "promote", [
            f"better than the champion {champ.id} on {primary} beyond its margin; "
            "every gate passed", lead.describe()])
    if lead is None:
        # No evidence either way on the primary metric (unscored on a side): no churn.
        return verdict(False, "tie", [
            f"a tie: {primary} cannot be compared with the champion {champ.id}, which stays "
            "(no churn on ties)"])
    # Within the primary metric's margin: a tie-breaker better beyond its margin wins.
    breakers = [compared[m] for m in TIE_BREAKERS if m != primary and m in compared]
    winners = [c for c in breakers if c.verdict == BETTER]
    if winners:
        wins = " and ".join(c.metric for c in winners)
        return verdict(True, "promote", [
            f"within the margin of the champion {champ.id} on {primary}, and better beyond "
            f"the margin on {wins}; every gate passed", lead.describe(),
            *(c.describe() for c in winners)])
    others = " or ".join(c.metric for c in breakers) or "any tie-breaker"
    return verdict(False, "tie", [
        f"a tie: within the margin of the champion {champ.id} on {primary}, and not better "
        f"beyond the margin on {others}; the champion stays (no churn on ties)",
        lead.describe(), *(c.describe() for c in breakers)])


def _rank(contenders: list[Contender], gates: Gates) -> list[Contender]:
    """Candidates passing every threshold first, then by the primary metric, best first."""
    metric = gates.primary_metric
    sign = 1 if metric in HIGHER_IS_BETTER else -1

    def key(c: Contender) -> tuple[bool, float]:
        value = float(c.summary.get(metric, math.nan))
        passing = all(check.passed for check in check_gates(c.summary, gates))
        return passing, sign * value if not math.isnan(value) else -math.inf

    return sorted(contenders, key=key, reverse=True)


def choose(contenders: list[Contender | dict[str, Any]], champion: Contender | dict[str, Any] | None,
           gates: Gates) -> Decision:
    """The best promotable candidate; else why the best challenger was not promoted."""
    if not contenders:
        return Decision(None, False, ["no candidate was evaluated"], outcome="none")
    ranked = _rank([Contender.of(c) for c in contenders], gates)
    decisions = [decide(c, champion, gates) for c in ranked]
    promotable = [d for d in decisions if d.promote]
    if promotable:
        return promotable[0]
    top = decisions[0]
    if top.outcome != "incumbent":
        return top
    # The champion itself still ranks first: its own gates are the checks (red only when the
    # champion now fails a threshold), and the best other candidate says why it did not win.
    best = next((d for d in decisions if d.outcome != "incumbent"), None)
    if best is None:
        return top
    return Decision(top.candidate_id, False, [
        "already the champion; no challenger beats it",
        f"best challenger {best.candidate_id}: {best.reasons[0]}", *best.reasons[1:]],
        top.checks, top.champion_id, top.gates, "incumbent", best.candidate_id)
