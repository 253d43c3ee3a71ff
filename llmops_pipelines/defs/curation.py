"""Curation assets and checks: the dataset folder to curated documents, Q&A pairs and rejects."""

from typing import Any

import dagster as dg
import pandas as pd

from llmops_pipelines import curation
from llmops_pipelines.curation import checks
from llmops_pipelines.curation.synthetic import synthesizer
from llmops_pipelines.defs.metadata import column_schema, counts, preview
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.evaluation.cache import CallCache, chat_text
from llmops_pipelines.prompts import load_prompt
from llmops_pipelines.rag.app import chat_params
from llmops_pipelines.schemas import CURATED_DOCUMENTS, CURATED_QA, CURATION_REJECTS

GROUP = "curation"
DOCS, QA, REJECTS = "curated_documents", "curated_qa", "curation_rejects"


def _synthesize(llmops: LlmopsResource, cache: CallCache) -> curation.Synthesizer | None:
    settings = llmops.settings
    if not settings.synthetic_qa:
        return None
    prompt = load_prompt(settings.assets_dir / "generators" / "synthetic_qa.prompty",
                         env_allow=settings.prompt_env_allow)
    params = chat_params(prompt, llmops.run_defaults())
    chat = chat_text(llmops.provider, cache, settings.chat_model, params, "synthetic-qa")
    return synthesizer(chat, prompt, settings.synthetic_qa, settings.chat_model)


def _check(outcome: checks.Outcome, *, asset_key: dg.AssetKey | None = None,
           check_name: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description,
                               metadata=outcome.metadata, severity=dg.AssetCheckSeverity.ERROR,
                               asset_key=asset_key, check_name=check_name)


@dg.multi_asset(
    group_name=GROUP,
    outs={
        DOCS: dg.AssetOut(description="Normalised, PII-scrubbed, deduplicated documents."),
        QA: dg.AssetOut(description="Question / ground-truth pairs (file, FAQ, synthetic) with a "
                                    "leak-free split by source document."),
        REJECTS: dg.AssetOut(description="Every rejected file, row or line: file, line, rule, reason."),
    },
    check_specs=[
        dg.AssetCheckSpec("pii_scrubbed", asset=DOCS, blocking=True,
                          description="Scrubbing ran: no email/phone/card/SSN/address pattern in "
                                      "any curated table; replacements counted per kind."),
        dg.AssetCheckSpec("nothing_silently_dropped", asset=REJECTS, blocking=True,
                          description="ingested = documents + Q&A + rejects."),
        dg.AssetCheckSpec("has_documents", asset=DOCS, blocking=True,
                          description="At least one document: an empty set would empty the index."),
    ],
)
def curated(context: dg.AssetExecutionContext, llmops: LlmopsResource):
    """Ingest LLMOPS_DATASETS_DIR; nothing is dropped without a row in curation_rejects."""
    folder = llmops.settings.datasets_dir
    context.log.info(f"curating {folder}")
    cache = CallCache.from_settings(llmops.settings)
    try:
        result = curation.curate(folder, synthesize=_synthesize(llmops, cache))
    finally:
        cache.close()
    docs, qa, rejects = result.documents, result.qa, result.rejects
    context.log.info(f"{len(docs)} documents, {len(qa)} Q&A pairs, {len(rejects)} rejects, "
                     f"PII replaced {result.pii_counts}, data version {result.data_version}")
    common: dict[str, Any] = {"data_version": result.data_version,
                              "stage_seconds": result.stage_seconds}
    yield dg.Output(docs, DOCS, metadata={
        **common, "dagster/row_count": len(docs),
        "dagster/column_schema": column_schema(CURATED_DOCUMENTS),
        "rows_per_split": counts(docs["split"]), "rows_per_format": counts(docs["format"]),
        "pii_replacements": result.pii_counts, "preview": preview(docs.drop(columns="text")),
    })
    yield dg.Output(qa, QA, metadata={
        **common, "dagster/row_count": len(qa), "dagster/column_schema": column_schema(CURATED_QA),
        "rows_per_split": counts(qa["split"]), "rows_per_origin": counts(qa["origin"]),
        "preview": preview(qa[["qa_id", "split", "origin", "doc_id", "question", "ground_truth"]]),
    })
    yield dg.Output(rejects, REJECTS, metadata={
        "dagster/row_count": len(rejects), "dagster/column_schema": column_schema(CURATION_REJECTS),
        "rule_hits": result.rule_hits, "accounting": result.accounting,
        "skipped_files": dg.MetadataValue.md(_skipped_list(result.skipped)),
        "preview": preview(rejects),
    })
    allow = curation.load_config(folder).pii_allow
    scrubbed = checks.no_pii({DOCS: docs, QA: qa, REJECTS: rejects}, allow)
    yield _check(checks.Outcome(scrubbed.passed, scrubbed.description,
                                {**scrubbed.metadata, **{f"replaced_{k}": v
                                                         for k, v in result.pii_counts.items()}}),
                 asset_key=dg.AssetKey(DOCS), check_name="pii_scrubbed")
    yield _check(checks.accounted(result.accounting), asset_key=dg.AssetKey(REJECTS),
                 check_name="nothing_silently_dropped")
    yield _check(checks.has_documents(docs, folder, result.accounting, result.rule_hits),
                 asset_key=dg.AssetKey(DOCS), check_name="has_documents")


def _skipped_list(skipped: list[dict[str, str]]) -> str:
    # Skipped files are not rejects (never ingested), but a user should see what was left out.
    return "\n".join(f"- `{s['source_path']}`: {s['reason']}" for s in skipped) or "_none_"


@dg.asset_check(asset=DOCS, blocking=True, description="Columns and types as declared.")
def documents_schema(curated_documents: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.schema_matches(curated_documents, CURATED_DOCUMENTS))


@dg.asset_check(asset=DOCS, blocking=True, description="No null key field; doc_id unique.")
def documents_keys(curated_documents: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.keys_valid(curated_documents, ["doc_id", "text", "split"], "doc_id"))


@dg.asset_check(asset=QA, blocking=True, description="Columns and types as declared.")
def qa_schema(curated_qa: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.schema_matches(curated_qa, CURATED_QA))


@dg.asset_check(asset=QA, blocking=True, description="No null key field; qa_id unique.")
def qa_keys(curated_qa: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.keys_valid(curated_qa, ["qa_id", "question", "split", "origin"], "qa_id"))


@dg.asset_check(asset=QA, blocking=True, additional_ins={DOCS: dg.AssetIn(DOCS)},
                description="No document's questions in two splits; no synthetic row in test.")
def qa_no_split_leakage(curated_qa: pd.DataFrame,
                        curated_documents: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.no_split_leakage(curated_qa, curated_documents))


@dg.asset_check(asset=QA, blocking=True, description="At least LLMOPS_MIN_EVAL_ROWS eval rows.")
def qa_min_eval_rows(curated_qa: pd.DataFrame, llmops: LlmopsResource) -> dg.AssetCheckResult:
    return _check(checks.enough_eval_rows(curated_qa, llmops.settings.min_eval_rows))


@dg.asset_check(asset=REJECTS, description="Columns and types as declared.")
def rejects_schema(curation_rejects: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(checks.schema_matches(curation_rejects, CURATION_REJECTS))
