"""Monitoring assets: the production log (written by `llmops serve`) scored since the last run."""

import dagster as dg
import pandas as pd

from llmops_pipelines import tables
from llmops_pipelines.defs.metadata import markdown_table, preview
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.monitoring import production
from llmops_pipelines.monitoring.cursor import MonitorCursor
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.serving.production_log import ProductionLog

GROUP = "monitoring"

@dg.observable_source_asset(group_name=GROUP)
def production_log(llmops: LlmopsResource) -> dg.DataVersion:
    """Every served exchange and feedback, appended by `llmops serve`; observed, never written here."""
    # Append-only: its size (a file) or last row id (a table) is its version.
    return dg.DataVersion(ProductionLog.from_settings(llmops.settings).version())

MONITOR_CHECKS = [dg.AssetCheckSpec(f"monitor_{metric}", asset="production_monitoring",
                                    description=f"served traffic's {metric} within its gate in "
                                                "assets/gates.yaml")
                  for metric in production.MONITORED]


@dg.asset(group_name=GROUP, deps=[production_log], check_specs=MONITOR_CHECKS)
def production_monitoring(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                          curated_qa: pd.DataFrame):
    """Scores the traffic logged since the last run with the offline metrics; checks its gates."""
    settings = llmops.settings
    log, cursor = ProductionLog.from_settings(settings), MonitorCursor(settings)
    window = log.read_since(cursor.load())
    provider = llmops.provider
    chosen = production.sample(window.exchanges, settings.monitor_sample)
    scored = production.score(window.exchanges, {e["id"] for e in chosen}, llmops.embedder.embed,
                              provider.moderate, llmops.pricing())
    eval_questions = curated_qa.loc[curated_qa["split"] == "eval", "question"].tolist()
    drift = production.question_drift([e["question"] for e in window.exchanges], eval_questions,
                                      llmops.embedder.embed)
    summary = production.summarise(scored, window.feedback, drift)
    if window.rejects:
        context.log.warning(f"{len(window.rejects)} unreadable production-log lines, first: "
                            f"{window.rejects[0]['path']}:{window.rejects[0]['line']}: "
                            f"{window.rejects[0]['reason']}")
        path = settings.tables_root / "production_log_rejects.parquet"
        old = tables.read_table(path) if tables.exists(path) else None
        tables.write_table(path, pd.concat([old, pd.DataFrame(window.rejects)]))
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    results = production.checks(summary, gates)
    yield dg.Output(scored, metadata={
        **{k: (float(v) if isinstance(v, float) else v) for k, v in summary.items()},
        f"log_{log.cursor_unit}": f"{window.start}..{window.end}", "rejected_lines": len(window.rejects),
        # p50/p95 per stage from the log's stages_ms; records written before traces are counted.
        **production.stage_metadata(window.exchanges),
        "stages": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            [{"stage": k, **v} for k, v in production.stage_percentiles(window.exchanges)[0].items()],
            columns=["stage", "p50_ms", "p95_ms", "n"]))),
        "checks": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            [{"metric": r.metric, "passed": r.passed, "why": r.description} for r in results]))),
        "preview": preview(scored[["exchange_id", "question", "groundedness", "harm",
                                   "ms_per_output_token", "cost_usd"]]),
    })
    for r in results:
        yield dg.AssetCheckResult(check_name=f"monitor_{r.metric}", passed=r.passed,
                                  description=r.description)
    # Only once the scores are stored: a failed run re-reads the same window next time.
    cursor.save(window.end)
