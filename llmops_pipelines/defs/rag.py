"""RAG assets: chunks, and a Chroma index synced to exactly those chunks."""

import dagster as dg
import pandas as pd

from llmops_pipelines import rag
from llmops_pipelines.defs.metadata import preview
from llmops_pipelines.defs.resources import LlmopsResource

GROUP = "rag"


@dg.asset(group_name=GROUP)
def rag_chunks(context: dg.AssetExecutionContext, llmops: LlmopsResource,
               curated_documents: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Markdown-aware chunks with their heading path; ids hash the content."""
    chunks = rag.chunk_documents(curated_documents, rag.ChunkConfig())
    context.log.info(f"{len(chunks)} chunks from {len(curated_documents)} documents")
    return dg.Output(chunks, metadata={
        "rows": len(chunks), "documents": len(curated_documents),
        "preview": preview(chunks[["chunk_id", "doc_id", "heading", "text"]]),
    })


@dg.asset(group_name=GROUP)
def rag_index(context: dg.AssetExecutionContext, llmops: LlmopsResource,
              rag_chunks: pd.DataFrame) -> dg.Output[dict]:
    """Sync the Chroma collection: embed only new chunks, delete stale ones."""
    index = llmops.index()
    report = index.sync(rag_chunks, progress=context.log.info)
    version = rag.index_version(rag_chunks["chunk_id"], llmops.settings.embedding_model)
    value = {"collection": index.name, "index_version": version, "count": report.count,
             "added": len(report.plan.to_add), "deleted": len(report.plan.to_delete),
             "unchanged": report.plan.unchanged,
             "embedding_model": llmops.settings.embedding_model}
    context.log.info(f"index {version}: {value}")
    return dg.Output(value, metadata={k: v for k, v in value.items()})
