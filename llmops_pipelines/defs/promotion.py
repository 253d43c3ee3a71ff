"""Promotion asset: gate the best candidate against the champion and record it in the registry."""

import dataclasses

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.metadata import markdown_table
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.promotion import Gates, choose
from llmops_pipelines.registry import Registry

GROUP = "promotion"


@dg.asset(group_name=GROUP)
def promotion_decision(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                       evaluation_summary: pd.DataFrame,
                       evaluation_rows: pd.DataFrame) -> dg.Output[dict]:
    """Promote the best candidate only if it passes every gate and beats the champion."""
    settings = llmops.settings
    gates = Gates.load(settings.assets_dir / "gates.yaml")
    registry = Registry(settings.registry_path)
    champion = registry.get("champion")
    summaries = evaluation_summary.to_dict("records")
    decision = choose(summaries, champion.summary if champion else None, gates)
    versions = {
        "data": str(evaluation_rows["data_version"].iloc[0]),
        "index": str(evaluation_rows["index_version"].iloc[0]),
        "prompts": content_hash(sorted(evaluation_summary["prompt_version"]), length=12),
    }
    chosen = next((s for s in summaries if s["candidate_id"] == decision.candidate_id), None)
    reason = "; ".join(decision.reasons)
    if decision.promote and chosen:
        deployment = registry.promote(chosen, versions, reason=reason, actor="dagster")
        context.log.info(f"promoted {decision.candidate_id} as {deployment}: {reason}")
    else:
        registry.record("reject", chosen, versions, reason=reason, actor="dagster")
        context.log.warning(f"not promoted: {reason}")
    now = registry.get("champion")
    value = {
        "candidate_id": decision.candidate_id, "promoted": decision.promote,
        "reasons": decision.reasons, "checks": [dataclasses.asdict(c) for c in decision.checks],
        "previous_champion": champion.candidate_id if champion else None,
        "champion": now.candidate_id if now else None, "versions": versions,
    }
    checks = pd.DataFrame(value["checks"]) if value["checks"] else pd.DataFrame()
    return dg.Output(value, metadata={
        "promoted": decision.promote, "candidate": str(decision.candidate_id),
        "champion": str(value["champion"]), "reasons": reason,
        "gates": dg.MetadataValue.md(markdown_table(checks)),
    })
