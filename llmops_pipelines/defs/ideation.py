"""Ideation assets: every prompt variant on a few eval questions, side by side, before evaluation."""

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.metadata import column_schema, markdown_table
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.evaluation import playground
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.runner import build_tasks
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.schemas import PROMPT_PLAYGROUND

GROUP = "ideation"


class PlaygroundConfig(dg.Config):
    samples: int = 5  # eval questions to answer with each prompt variant


@dg.asset(group_name=GROUP)
def prompt_playground(context: dg.AssetExecutionContext, config: PlaygroundConfig,
                      llmops: LlmopsResource, curated_qa: pd.DataFrame,
                      rag_index: dict) -> dg.Output[pd.DataFrame]:
    """Each prompt variant's answer to the first eval questions with the base model, side by side."""
    settings, provider = llmops.settings, llmops.provider
    # Same questions, order, retrieval and cache keys as evaluation_rows: answers are shared.
    qa = curated_qa[curated_qa["split"] == "eval"].sort_values("qa_id").head(config.samples)
    contexts = retrieve(llmops.embedder, llmops.index(), qa["question"].tolist(), settings.top_k,
                        mode=settings.retrieval)
    prompts = llmops.prompts()
    tasks = build_tasks(cross(prompts, [settings.chat_model]), qa, contexts, llmops.run_defaults(),
                        rag_index["index_version"], provider.cache_namespace)
    cache = CallCache(settings.cache_path)
    try:
        rows = playground.run_playground(tasks, provider, cache)
    finally:
        cache.close()
    new_calls, errors = int((~rows["cached"]).sum()), int(rows["error"].notna().sum())
    context.log.info(f"{len(prompts)} prompt variants x {len(qa)} questions: {new_calls} new calls, "
                     f"{errors} errors")
    return dg.Output(rows, metadata={
        "dagster/row_count": len(rows), "dagster/column_schema": column_schema(PROMPT_PLAYGROUND),
        "variants": ", ".join(f"{p.name}@{p.version}" for p in prompts),
        "model": settings.chat_model, "cached_rows": int(rows["cached"].sum()),
        "side_by_side": dg.MetadataValue.md(markdown_table(playground.side_by_side(rows), 200)),
    })
