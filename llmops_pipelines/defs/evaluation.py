"""Evaluation assets: candidates, one scored row per question x candidate, and the summary."""

import json

import dagster as dg
import pandas as pd

from llmops_pipelines.curation import data_version
from llmops_pipelines.defs.metadata import markdown_table, preview
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import PromptError
from llmops_pipelines.evaluation import aggregate
from llmops_pipelines.evaluation import candidates as cands
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.rag_app import retrieve

GROUP = "evaluation"
SUMMARY_COLUMNS = ["candidate_id", "rows", "coverage", "quality", "groundedness", "harm_rate",
                   "cost_usd", "latency_ms_per_token"]


@dg.asset(group_name=GROUP)
def candidates(context: dg.AssetExecutionContext, llmops: LlmopsResource,
               finetuned_model: dict) -> dg.Output[pd.DataFrame]:
    """Every prompt variant x model (the base model and the fine-tuned one, if any)."""
    models = [llmops.settings.chat_model]
    if finetuned_model.get("model_id"):
        models.append(finetuned_model["model_id"])
    frame = cands.candidates_frame(cands.cross(llmops.prompts(), models))
    return dg.Output(frame, metadata={"rows": len(frame), "preview": preview(frame)})


def _candidate_objects(llmops: LlmopsResource, frame: pd.DataFrame) -> list[cands.Candidate]:
    by_version = {p.version: p for p in llmops.prompts()}
    out = []
    for row in frame.itertuples(index=False):
        if row.prompt_version not in by_version:
            raise PromptError(f"prompt {row.prompt_name!r} changed since `candidates` was "
                              "materialized; re-materialize candidates")
        out.append(cands.Candidate(by_version[row.prompt_version], row.model, json.loads(row.params)))
    return out


@dg.asset(group_name=GROUP)
def evaluation_rows(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                    curated_documents: pd.DataFrame, curated_qa: pd.DataFrame, rag_index: dict,
                    candidates: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Answer every eval-split question with every candidate's RAG app and score five metrics."""
    settings = llmops.settings
    qa = curated_qa[curated_qa["split"] == "eval"].sort_values("qa_id")
    if settings.eval_limit:
        qa = qa.head(settings.eval_limit)
    if qa.empty:
        raise dg.Failure("the eval split is empty: add Q&A pairs to LLMOPS_DATASETS_DIR")
    provider = llmops.provider
    contexts = retrieve(provider, llmops.index(), qa["question"].tolist(), settings.top_k)
    versions = {"data": data_version(curated_documents, curated_qa),
                "index": rag_index["index_version"]}
    cache = CallCache(settings.cache_path)
    # One llama.cpp model serves one call at a time: more threads would only queue.
    concurrency = 1 if provider.name == "local" else settings.eval_concurrency
    try:
        rows = evaluate(_candidate_objects(llmops, candidates), qa, contexts,
                        RunContext(provider, llmops.pricing(), cache, concurrency, versions,
                                   context.log.info), llmops.run_defaults())
    finally:
        cache.close()
    return dg.Output(rows, metadata={
        "rows": len(rows), "errors": int(rows["error"].notna().sum()),
        "cached_rows": int(rows["cached"].sum()), "chat_calls": provider.stats.calls["chat"],
        "total_cost_usd": float(rows["cost_usd"].sum()), **versions,
        "preview": preview(rows[["candidate_id", "qa_id", "answer", "quality", "groundedness"]]),
    })


@dg.asset(group_name=GROUP)
def evaluation_summary(evaluation_rows: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Per candidate: means with 95 % bootstrap CIs, coverage, cost and latency percentiles."""
    summary = aggregate.summarise(evaluation_rows)
    return dg.Output(summary, metadata={
        "candidates": len(summary),
        "summary": dg.MetadataValue.md(markdown_table(summary[SUMMARY_COLUMNS])),
    })
