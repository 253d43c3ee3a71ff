"""Promotion assets: the gated decision (one check per gate), then the champion move."""

import math
from typing import Any

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.validity.record import LATEST as VALIDITY
from llmops_pipelines.evaluation.validity.record import gate_validity
from llmops_pipelines.evaluation.validity.record import load as load_validity
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.promotion.decide import (
    GATED_METRICS,
    Contender,
    Decision,
    GateResult,
    Gates,
    choose,
)
from llmops_pipelines.promotion.deploy import champion_contender, snapshot_prompt
from llmops_pipelines.promotion.paired_bootstrap import keep_rows
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.promotion.report import decision_record, evidence_table, headline

GROUP = "promotion"
# Not blocking: a gate stopping a candidate is a decision, not a failed step. A failed blocking
# check makes Dagster fail the checked asset's step and skip `champion`, so an ordinary "not
# promoted" showed as a failed run (and `make demo` exited 1). The checks stay red (severity
# ERROR; asset_check_alerts alerts on them), and `champion` moves the alias only on a promote
# decision, which no failed gate can produce.
GATE_CHECKS = [dg.AssetCheckSpec(f"gate_{metric}", asset="promotion_decision", blocking=False,
                                 description=f"{metric}: its gates.yaml threshold, and not worse "
                                             "than the champion beyond its margin (paired "
                                             "bootstrap CI)")
               for metric in GATED_METRICS]
# Summary columns charted on promotion_decision as champion/<m> and challenger/<m>.
CHARTED = ("quality", "groundedness", "harm_rate", "cost_per_1k_answers_usd",
           "latency_ms_per_token", "latency_p95_ms_per_token", "coverage")


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _floats(values: dict[str, Any]) -> dict[str, Any]:
    """Float metadata Dagster plots across materializations; unscored values are left out."""
    return {k: dg.MetadataValue.float(f) for k, v in values.items()
            if (f := _float(v)) is not None}


def _metrics(prefix: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    return _floats({f"{prefix}/{m}": summary.get(m) for m in CHARTED} if summary else {})


def _gate_metadata(gate: GateResult, gates: Gates, candidate: dict[str, Any] | None,
                   champion: dict[str, Any] | None) -> dict[str, Any]:
    """A gate check's numbers: value, threshold, margin, the champion's value, diff and CI."""
    metric = gate.metric
    bounds = gates.thresholds.get(metric, {})
    values: dict[str, Any] = {"value": (candidate or {}).get(metric)}
    if len(bounds) == 1:
        values["threshold"] = next(iter(bounds.values()))
    else:
        values.update({f"threshold_{bound}": value for bound, value in bounds.items()})
    values["margin"] = gates.margins.get(metric, 0.0)
    values["champion_value"] = champion.get(metric) if champion else None
    comparison = gate.comparison
    if comparison is not None:
        values.update(diff_vs_champion=comparison.diff, ci_low=comparison.ci_low,
                      ci_high=comparison.ci_high)
    out = _floats(values)
    if comparison is not None:
        out["paired_questions"] = dg.MetadataValue.int(comparison.pairs)
        out["verdict"] = dg.MetadataValue.text(comparison.verdict)
    return out


def _sources(summary: pd.DataFrame) -> dict[str, str | None]:
    # A judge that scored groundedness is the scorer whose validity the gate should show.
    sources = ", ".join(str(s) for s in summary.get("groundedness_source", pd.Series()).dropna())
    return {"groundedness": "judge:" if "judge:" in sources else None}


def _decision_metadata(decision: Decision, evidence: str, champion: dict[str, Any] | None,
                       challenger: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "promote": decision.promote, "outcome": decision.outcome,
        "candidate": str(decision.candidate_id), "champion": str(decision.champion_id),
        "challenger": str(decision.challenger_id), "verdict": headline(decision),
        "reasons": "; ".join(decision.reasons), "evidence": dg.MetadataValue.md(evidence),
        **_metrics("champion", champion), **_metrics("challenger", challenger),
    }


@dg.asset(group_name=GROUP, check_specs=GATE_CHECKS)
def promotion_decision(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                       evaluation_summary: pd.DataFrame, evaluation_rows: pd.DataFrame):
    """The best candidate vs the gates and the champion; one red check per gate that stops it."""
    settings = llmops.settings
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    registry = Registry.from_settings(settings)
    summaries = {s["candidate_id"]: s for s in evaluation_summary.to_dict("records")}
    rows_by = {str(cid): group for cid, group in evaluation_rows.groupby("candidate_id")}
    champion = champion_contender(registry, evaluation_summary, evaluation_rows)
    decision = choose([Contender(s, rows_by.get(cid)) for cid, s in summaries.items()],
                      champion, gates)
    versions = {
        "data": str(evaluation_rows["data_version"].iloc[0]) if len(evaluation_rows) else "",
        "index": str(evaluation_rows["index_version"].iloc[0]) if len(evaluation_rows) else "",
        "prompts": content_hash(sorted(evaluation_summary["prompt_version"]), length=12),
    }
    value = decision_record(decision, versions)
    reason = "; ".join(decision.reasons)
    if not decision.promote and decision.candidate_id != value["previous_champion"]:
        registry.record("reject", summaries.get(decision.candidate_id), versions, reason=reason,
                        actor="dagster", metrics=value["gates"])
        context.log.warning(f"not promoted: {reason}")
    evidence = evidence_table(decision, gate_validity(load_validity(settings.path(*VALIDITY)),
                                                      _sources(evaluation_summary)))
    champion_summary = champion.summary if champion else None
    yield dg.Output(value, metadata=_decision_metadata(
        decision, evidence, champion_summary, summaries.get(decision.challenger_id)))
    by_metric = {g.metric: g for g in decision.gates}
    candidate = summaries.get(decision.candidate_id)
    for metric in GATED_METRICS:
        gate = by_metric.get(metric)
        yield dg.AssetCheckResult(
            check_name=f"gate_{metric}", passed=bool(gate and gate.passed),
            severity=dg.AssetCheckSeverity.ERROR, description=gate.reason if gate else reason,
            metadata=_gate_metadata(gate, gates, candidate, champion_summary) if gate else {})


@dg.asset(group_name=GROUP)
def champion(context: dg.AssetExecutionContext, llmops: LlmopsResource, promotion_decision: dict,
             evaluation_summary: pd.DataFrame, evaluation_rows: pd.DataFrame) -> dg.Output[dict]:
    """Moves the registry's champion alias on a promote decision; otherwise says why not."""
    registry = Registry.from_settings(llmops.settings)
    decision = promotion_decision
    reasons = "; ".join(decision["reasons"])
    # Every gate passed is part of a promote decision already; checked again before moving.
    promote = bool(decision["promote"]) and all(g["passed"] for g in decision["gates"].values())
    moved = False
    if promote:
        cid = decision["candidate_id"]
        summary = evaluation_summary[evaluation_summary["candidate_id"] == cid].iloc[0].to_dict()
        rows = evaluation_rows[evaluation_rows["candidate_id"] == cid]
        # promote_once: a concurrent run may have promoted this very candidate already.
        deployment, moved = registry.promote_once(summary, decision["versions"], reason=reasons,
                                                  actor="dagster", rows=keep_rows(rows),
                                                  metrics=decision["gates"])
        context.log.info(f"promoted {cid} as {deployment}" if moved else
                         f"{cid} ({deployment}) already is the champion: nothing to move")
        try:  # keep the prompt file `llmops serve` will load, whatever later edits do
            promoted = registry.get("champion")
            if promoted is not None:
                snapshot_prompt(llmops.settings, promoted)
        except LlmopsError as exc:
            context.log.warning(str(exc))
    else:
        context.log.info(f"not promoted ({decision['candidate_id']}): {reasons}")
    now = registry.get("champion")
    value = {"candidate_id": now.candidate_id if now else None,
             "deployment_id": now.deployment_id if now else None,
             "changed": moved, "promoted": promote, "decided": decision["candidate_id"],
             "reasons": decision["reasons"]}
    why = reasons if not promote else ("moved the alias" if moved else "already the champion")
    return dg.Output(value, metadata={
        "champion": str(value["candidate_id"]), "deployment": str(value["deployment_id"]),
        "changed": moved, "promoted": promote, "decided": str(decision["candidate_id"]),
        "why": why})
