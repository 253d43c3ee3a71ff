"""Promotion assets: the gated decision (one blocking check per gate), then the champion move."""

import math

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.validity.record import LATEST as VALIDITY
from llmops_pipelines.evaluation.validity.record import gate_validity
from llmops_pipelines.evaluation.validity.record import load as load_validity
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.promotion.decide import GATED_METRICS, Contender, Gates, choose
from llmops_pipelines.promotion.deploy import champion_contender, snapshot_prompt
from llmops_pipelines.promotion.paired_bootstrap import keep_rows
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.promotion.report import decision_record, evidence_table

GROUP = "promotion"
GATE_CHECKS = [dg.AssetCheckSpec(f"gate_{metric}", asset="promotion_decision", blocking=True,
                                 description=f"{metric}: its gates.yaml threshold, and not "
                                             "significantly worse than the champion")
               for metric in GATED_METRICS]


def _sources(summary: pd.DataFrame) -> dict[str, str | None]:
    # A judge that scored groundedness is the scorer whose validity the gate should show.
    sources = ", ".join(str(s) for s in summary.get("groundedness_source", pd.Series()).dropna())
    return {"groundedness": "judge:" if "judge:" in sources else None}


@dg.asset(group_name=GROUP, check_specs=GATE_CHECKS)
def promotion_decision(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                       evaluation_summary: pd.DataFrame, evaluation_rows: pd.DataFrame):
    """The best candidate vs the gates and the champion; a failed gate check blocks `champion`."""
    settings = llmops.settings
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    registry = Registry(settings.registry_path)
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
    yield dg.Output(value, metadata={
        "promote": decision.promote, "candidate": str(decision.candidate_id),
        "champion": str(value["previous_champion"]), "reasons": reason,
        "evidence": dg.MetadataValue.md(evidence_table(decision, gate_validity(
            load_validity(settings.path(*VALIDITY)), _sources(evaluation_summary)))),
    })
    by_metric = {g.metric: g for g in decision.gates}
    for metric in GATED_METRICS:
        gate = by_metric.get(metric)
        diff = gate.regression if gate else None
        numbers = {} if diff is None else {"diff_vs_champion": diff.diff, "ci_low": diff.ci_low,
                                           "ci_high": diff.ci_high, "paired_questions": diff.pairs}
        yield dg.AssetCheckResult(
            check_name=f"gate_{metric}", passed=bool(gate and gate.passed),
            description=gate.reason if gate else reason,
            metadata={k: v for k, v in numbers.items() if not math.isnan(v)})


@dg.asset(group_name=GROUP)
def champion(context: dg.AssetExecutionContext, llmops: LlmopsResource, promotion_decision: dict,
             evaluation_summary: pd.DataFrame, evaluation_rows: pd.DataFrame) -> dg.Output[dict]:
    """Moves the registry's champion alias; runs only when every gate check passed."""
    registry = Registry(llmops.settings.registry_path)
    decision = promotion_decision
    moved = False
    if decision["promote"]:
        cid = decision["candidate_id"]
        summary = evaluation_summary[evaluation_summary["candidate_id"] == cid].iloc[0].to_dict()
        rows = evaluation_rows[evaluation_rows["candidate_id"] == cid]
        # promote_once: a concurrent run may have promoted this very candidate already.
        deployment, moved = registry.promote_once(summary, decision["versions"],
                                                  reason="; ".join(decision["reasons"]),
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
    now = registry.get("champion")
    value = {"candidate_id": now.candidate_id if now else None,
             "deployment_id": now.deployment_id if now else None,
             "changed": moved}
    return dg.Output(value, metadata={k: str(v) for k, v in value.items()})
