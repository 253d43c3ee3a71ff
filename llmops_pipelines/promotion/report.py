"""A promotion decision as JSON (asset output, history evidence) and as a markdown table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from llmops_pipelines.evaluation.validity.record import MAX_MISS_RATE, MetricValidity
from llmops_pipelines.promotion.decide import (
    BETTER,
    WITHIN,
    WORSE,
    Decision,
    GateCheck,
    GateResult,
    show,
)
from llmops_pipelines.promotion.gates import UNITS


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def decision_record(decision: Decision, versions: dict[str, str]) -> dict[str, Any]:
    """What `llmops status` and the champion asset read; JSON-safe (NaN -> null)."""
    gates = {}
    for gate in decision.gates:
        diff, comparison = gate.regression, gate.comparison
        gates[gate.metric] = {
            "passed": gate.passed, "reason": gate.reason,
            "value": _num(next((c.value for c in decision.checks if c.metric == gate.metric),
                               math.nan)),
            "diff_vs_champion": _num(comparison.diff) if comparison else None,
            "ci": [_num(diff.ci_low), _num(diff.ci_high)] if diff else None,
            "paired_questions": diff.pairs if diff else 0,
            "margin": comparison.margin if comparison else None,
            "verdict": comparison.verdict if comparison else None,
        }
    return {"candidate_id": decision.candidate_id, "promote": decision.promote,
            "promoted": decision.promote, "outcome": decision.outcome,
            "reasons": decision.reasons, "previous_champion": decision.champion_id,
            "challenger": decision.challenger_id, "gates": gates, "versions": versions}


def headline(decision: Decision) -> str:
    """The verdict in a few words: never "keep the champion" when there is none."""
    cid, champion = decision.candidate_id, decision.champion_id
    if cid is None:
        return "NOTHING TO PROMOTE"
    if decision.promote:
        return f"PROMOTE {cid} " + (f"over the champion {champion}" if champion else
                                    "(no champion yet: first deployment)")
    if decision.outcome == "incumbent":
        return f"KEEP the champion {champion}"
    return f"NOT PROMOTED {cid}; " + (f"the champion {champion} stays" if champion else
                                      "no champion yet")


def _trust(metric: str, validity: Mapping[str, MetricValidity], max_miss_rate: float) -> str:
    found = validity.get(metric)
    if found is None or math.isnan(found.miss_rate):
        return ""
    if found.miss_rate > max_miss_rate:
        return (f" ⚠ {found.metric} missed {found.miss_rate:.0%} of planted errors in the last "
                f"validity run (bound {max_miss_rate:.0%}): do not trust this gate alone")
    return f" (misses {found.miss_rate:.0%}, false alarms {found.false_alarm_rate:.0%})"


def _verdict(gate: GateResult, checks: list[GateCheck]) -> str:
    """e.g. `within margin, pass`, `**FAIL**: below threshold; worse beyond margin`."""
    if gate.passed:
        c = gate.comparison
        return "pass" if c is None else {BETTER: "better beyond margin", WITHIN: "within margin",
                                         WORSE: "worse beyond margin"}[c.verdict] + ", pass"
    why = ["not scored" if math.isnan(c.value) else
           "below threshold" if c.bound == "min" else "above threshold"
           for c in checks if not c.passed]
    if gate.comparison is not None and gate.comparison.verdict == WORSE:
        why.append("worse beyond margin")
    return "**FAIL**: " + "; ".join(why)


def evidence_table(decision: Decision, validity: Mapping[str, MetricValidity] | None = None,
                   max_miss_rate: float = MAX_MISS_RATE) -> str:
    """One line per gate: value, threshold, difference vs the champion, margin, verdict.

    With `validity` (the last validity run, per gated metric), a gate whose metric misses more
    planted errors than `max_miss_rate` carries a warning in its verdict.
    """
    validity = validity or {}
    lines = ["| gate | value | threshold | vs champion [CI] | margin | verdict |",
             "|---|---|---|---|---|---|"]
    for gate in decision.gates:
        checks = [c for c in decision.checks if c.metric == gate.metric]
        value = show(gate.metric, checks[0].value) if checks else "n/a"
        bound = ", ".join(c.needs for c in checks) or "none"
        c = gate.comparison
        if c is None:
            versus, margin = "—", "—"
        else:
            unit = f" {UNITS[c.metric]}" if c.metric in UNITS else ""
            ci = f" {c.ci()} n={c.pairs}" if c.pairs else " (no paired rows)"
            versus, margin = f"{show(c.metric, c.diff, signed=True)}{unit}{ci}", f"±{c.margin:g}"
        verdict = _verdict(gate, checks) + _trust(gate.metric, validity, max_miss_rate)
        lines.append(f"| {gate.metric} | {value} | {bound} | {versus} | {margin} | "
                     f"{verdict.replace('|', '/')} |")
    lines.append("")
    lines.append(f"**{headline(decision)}**: " + "; ".join(decision.reasons))
    return "\n".join(lines)
