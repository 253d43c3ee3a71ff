"""Multi-turn assets: curated conversations (and their rejects), and their evaluation."""

from typing import Any

import dagster as dg
import pandas as pd

from llmops_pipelines.curation import conversations as conv_curation
from llmops_pipelines.defs.evaluation import _candidate_objects, _run_context
from llmops_pipelines.defs.metadata import counts, markdown_table, preview, rounded
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.evaluation import conversations as conv_eval
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.rag.app import retrieve

CONVERSATIONS, REJECTS = "curated_conversations", "conversation_rejects"


@dg.multi_asset(
    group_name="curation",
    outs={CONVERSATIONS: dg.AssetOut(description="Multi-turn conversations (datasets/"
                                                 "conversations.jsonl), split by conversation."),
          REJECTS: dg.AssetOut(description="Every rejected conversation line: file, line, "
                                           "rule, reason.")},
)
def curated_conversations(context: dg.AssetExecutionContext, llmops: LlmopsResource):
    """Validate LLMOPS_DATASETS_DIR/conversations.jsonl; bad lines go to conversation_rejects."""
    result = conv_curation.curate(llmops.settings.datasets_dir)
    for error in result.errors:
        context.log.warning(error)
    frame, rejects = result.conversations, result.rejects
    yield dg.Output(frame, CONVERSATIONS, metadata={
        "dagster/row_count": len(frame), "data_version": result.data_version,
        "rows_per_split": counts(frame["split"]),
        "preview": preview(frame[["conversation_id", "split", "question", "expected"]])})
    yield dg.Output(rejects, REJECTS, metadata={
        "dagster/row_count": len(rejects), "rule_hits": counts(rejects["rule"]),
        "errors": dg.MetadataValue.md("\n".join(f"- `{e}`" for e in result.errors) or "_none_"),
        "preview": preview(rejects)})


@dg.asset(group_name="evaluation", deps=["rag_index"])
def conversation_evaluation(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                            curated_conversations: pd.DataFrame, curated_documents: pd.DataFrame,
                            candidates: pd.DataFrame,
                            finetuned_model: dict) -> dg.Output[pd.DataFrame]:
    """One row per conversation x candidate: the last turn replayed as served, five metrics
    and context_retention."""
    settings = llmops.settings
    if settings.eval_limit:  # LLMOPS_EVAL_LIMIT caps conversations as it caps questions
        curated_conversations = curated_conversations.head(settings.eval_limit)
    objects = [c for c in _candidate_objects(llmops, candidates, finetuned_model,
                                             curated_documents, context.log)
               if c.inputs is None]  # an input-mapped prompt has no chat history to place
    index = llmops.index()

    def search(queries: list[str], candidate: Any) -> list:
        k, mode = candidate.retrieval
        return retrieve(llmops.embedder, index, queries, int(k or settings.top_k),
                        mode=str(mode or settings.retrieval))

    cache = CallCache.from_settings(settings)
    try:
        ctx = _run_context(settings, llmops, cache, {"data": "conversations"}, context.log,
                           objects, partial="conversation_evaluation.partial.parquet")
        rows = conv_eval.evaluate(curated_conversations, objects, search, ctx,
                                  llmops.run_defaults(), mode=settings.conversation_query,
                                  context_tokens=settings.context_tokens,
                                  judge_model=settings.judge_model)
    finally:
        cache.close()
    table = conv_eval.summary(rows)
    per_candidate = {str(r.candidate_id): {k: rounded(v) for k, v in r._asdict().items()
                                           if k != "candidate_id"}
                     for r in table.itertuples(index=False)}
    return dg.Output(rows, metadata={
        "dagster/row_count": len(rows), "query_mode": settings.conversation_query,
        "conversations": len(curated_conversations), "candidates": len(objects),
        "retention_method": ", ".join(sorted(set(rows["retention_method"]))) or "none",
        "per_candidate": per_candidate,
        "summary": dg.MetadataValue.md(markdown_table(table) if len(table) else "_no rows_"),
        "preview": preview(rows[["conversation_id", "candidate_id", "query", "answer",
                                 "quality", "context_retention"]])})
