"""The evaluation report: one offline HTML file comparing every candidate (group evaluation).

Its own file under LLMOPS_HOME/reports, not an IO-manager table: nothing downstream reads it,
people open it (`llmops report` prints where it is).
"""

import datetime as dt

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.promotion.deploy import champion_contender
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.reporting.files import REPORT_PARTS, write_atomic
from llmops_pipelines.reporting.page import build_report
from llmops_pipelines.reporting.tables import ReportOptions

GROUP = "evaluation"


@dg.asset(group_name=GROUP)
def evaluation_report(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                      evaluation_rows: pd.DataFrame,
                      evaluation_summary: pd.DataFrame) -> dg.MaterializeResult:
    """A self-contained HTML report: metrics with CIs, latency and cost, every answer with its
    reasons (filterable to failures and disagreements), the worst rows, and each challenger vs
    the registry's champion (paired bootstrap). Works offline: nothing is loaded from anywhere."""
    settings = llmops.settings
    # Read only: building a report never creates or changes the registry.
    registry = Registry.from_settings(settings, read_only=True)
    champion = champion_contender(registry, evaluation_summary, evaluation_rows)
    deployment = registry.get("champion")
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    options = ReportOptions(bootstrap_samples=gates.bootstrap_samples, confidence=gates.confidence)
    facts = {"experiment": llmops.lineup.experiment.name}
    if deployment is not None:
        facts["champion deployment"] = deployment.deployment_id
    now = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    report = build_report(evaluation_summary, evaluation_rows, champion=champion, options=options,
                          generated_at=now, facts=facts)
    path = settings.path(*REPORT_PARTS)
    size = write_atomic(path, report.html)
    context.log.info(f"evaluation report: {path} ({size / 1e6:.2f} MB)")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "url": dg.MetadataValue.url(path.as_uri()),
        "size_bytes": size,
        "candidates": report.candidates, "questions": report.questions, "rows": report.rows,
        "errors": report.errors, "failing_rows": report.failing_rows,
        "disagreements": report.disagreements,
        "champion": report.champion_id or "none",
    })
