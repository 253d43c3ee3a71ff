"""Curation assets: the dataset folder to curated documents, Q&A pairs and rejects."""

import dagster as dg

from llmops_pipelines import curation
from llmops_pipelines.defs.metadata import counts, preview
from llmops_pipelines.defs.resources import LlmopsResource

GROUP = "curation"


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "curated_documents": dg.AssetOut(description="Normalised, deduplicated documents."),
        "curated_qa": dg.AssetOut(description="Question / ground-truth pairs with a split."),
        "curation_rejects": dg.AssetOut(description="Every rejected file or line, with why."),
    },
)
def curated(context: dg.AssetExecutionContext, llmops: LlmopsResource):
    """Ingest LLMOPS_DATASETS_DIR; nothing is dropped without a row in curation_rejects."""
    folder = llmops.settings.datasets_dir
    context.log.info(f"curating {folder}")
    result = curation.curate(folder)
    docs, qa, rejects = result.documents, result.qa, result.rejects
    context.log.info(f"{len(docs)} documents, {len(qa)} Q&A pairs, {len(rejects)} rejects, "
                     f"data version {result.data_version}")
    yield dg.Output(docs, "curated_documents", metadata={
        "rows": len(docs), "data_version": result.data_version,
        "rows_per_split": counts(docs["split"]), "preview": preview(docs.drop(columns="text")),
    })
    yield dg.Output(qa, "curated_qa", metadata={
        "rows": len(qa), "data_version": result.data_version,
        "rows_per_split": counts(qa["split"]), "preview": preview(qa),
    })
    yield dg.Output(rejects, "curation_rejects", metadata={
        "rows": len(rejects), "rule_hits": result.rule_hits, "preview": preview(rejects),
    })
