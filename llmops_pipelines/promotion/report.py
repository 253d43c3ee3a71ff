"""A promotion decision as JSON (asset output, history evidence) and as a markdown table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from llmops_pipelines.evaluation.validity.record import MAX_MISS_RATE, MetricValidity
from llmops_pipelines.promotion.decide import Decision


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def decision_record(decision: Decision, versions: dict[str, str]) -> dict[str, Any]:
    """What `llmops status` and the champion asset read; JSON-safe (NaN -> null)."""
    gates = {}
    for gate in decision.gates:
        diff = gate.regression
        gates[gate.metric] = {
            "passed": gate.passed, "reason": gate.reason,
            "value": _num(next((c.value for c in decision.checks if c.metric == gate.metric),
                               math.nan)),
            "diff_vs_champion": _num(diff.diff) if diff else None,
            "ci": [_num(diff.ci_low), _num(diff.ci_high)] if diff else None,
            "paired_questions": diff.pairs if diff else 0,
        }
    return {"candidate_id": decision.candidate_id, "promote": decision.promote,
            "promoted": decision.promote, "reasons": decision.reasons,
            "previous_champion": decision.champion_id, "gates": gates, "versions": versions}


def _trust(metric: str, validity: Mapping[str, MetricValidity], max_miss_rate: float) -> str:
    found = validity.get(metric)
    if found is None or math.isnan(found.miss_rate):
        return ""
    if found.miss_rate > max_miss_rate:
        return (f" ⚠ {found.metric} missed {found.miss_rate:.0%} of planted errors in the last "
                f"validity run (bound {max_miss_rate:.0%}): do not trust this gate alone")
    return f" (misses {found.miss_rate:.0%}, false alarms {found.false_alarm_rate:.0%})"


def evidence_table(decision: Decision, validity: Mapping[str, MetricValidity] | None = None,
                   max_miss_rate: float = MAX_MISS_RATE) -> str:
    """One line per gate: value, threshold, paired difference vs the champion, verdict.

    With `validity` (the last validity run, per gated metric), a gate whose metric misses more
    planted errors than `max_miss_rate` carries a warning in its verdict.
    """
    validity = validity or {}
    lines = ["| gate | value | threshold | vs champion (CI) | verdict |", "|---|---|---|---|---|"]
    for gate in decision.gates:
        checks = [c for c in decision.checks if c.metric == gate.metric]
        value = f"{checks[0].value:.4g}" if checks else "n/a"
        bound = ", ".join(f"{'>=' if c.bound == 'min' else '<='} {c.threshold:g}"
                          for c in checks) or "none"
        diff = gate.regression
        versus = (f"{diff.diff:+.4g} [{diff.ci_low:+.4g}, {diff.ci_high:+.4g}] n={diff.pairs}"
                  if diff else "—")
        verdict = "pass" if gate.passed else "**FAIL**: " + "; ".join(gate.failures)
        verdict += _trust(gate.metric, validity, max_miss_rate)
        lines.append(f"| {gate.metric} | {value} | {bound} | {versus} | "
                     f"{verdict.replace('|', '/')} |")
    lines.append("")
    lines.append(f"**{'PROMOTE' if decision.promote else 'keep the champion'}** "
                 f"{decision.candidate_id}: " + "; ".join(decision.reasons))
    return "\n".join(lines)
