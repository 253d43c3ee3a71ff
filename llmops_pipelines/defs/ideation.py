"""Ideation assets: every prompt variant on a few eval questions, side by side, before evaluation."""

import math

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.metadata import column_schema, markdown_table, number
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.evaluation import playground
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.metrics.quality import token_f1
from llmops_pipelines.evaluation.runner import build_tasks
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.schemas import PROMPT_PLAYGROUND

GROUP = "ideation"


def scored_side_by_side(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Question, ground truth, then each variant's answer and its token F1 against the ground
    truth; and each variant's mean F1. F1 is the one score that needs no call: similarity,
    groundedness, harm and the judges embed, moderate or ask a model (paid on a remote
    endpoint), and evaluation_rows computes all of them for these same cached answers."""
    if rows.empty:
        return pd.DataFrame(columns=["question", "ground_truth"]), {}
    f1 = [token_f1(a, t).value if isinstance(a, str) else math.nan
          for a, t in zip(rows["answer"], rows["ground_truth"], strict=True)]
    scored = rows.assign(token_f1=f1,
                         answer=rows["answer"].fillna("ERROR: " + rows["error"].fillna("")))
    wide = scored.drop_duplicates("qa_id").sort_values("qa_id")[
        ["qa_id", "question", "ground_truth"]].reset_index(drop=True)
    means = {}
    for prompt, mine in scored.groupby("prompt_name", sort=True):
        mine = mine.drop_duplicates("qa_id").set_index("qa_id")
        wide[str(prompt)] = wide["qa_id"].map(mine["answer"])
        wide[f"{prompt} F1"] = wide["qa_id"].map(mine["token_f1"]).round(2)
        means[str(prompt)] = float(mine["token_f1"].mean())
    return wide.drop(columns="qa_id"), means


class PlaygroundConfig(dg.Config):
    samples: int = 5  # eval questions to answer with each prompt variant


@dg.asset(group_name=GROUP)
def prompt_playground(context: dg.AssetExecutionContext, config: PlaygroundConfig,
                      llmops: LlmopsResource, curated_qa: pd.DataFrame,
                      rag_index: dict) -> dg.Output[pd.DataFrame]:
    """Each prompt variant's answer to the first eval questions with the base model, side by
    side, each with its token F1 against the ground truth (the one score that needs no call)."""
    settings, provider = llmops.settings, llmops.provider
    # Same questions, order, retrieval and cache keys as evaluation_rows: answers are shared.
    qa = curated_qa[curated_qa["split"] == "eval"].sort_values("qa_id").head(config.samples)
    contexts = retrieve(llmops.embedder, llmops.index(), qa["question"].tolist(), settings.top_k,
                        mode=settings.retrieval)
    prompts = llmops.prompts()
    tasks = build_tasks(cross(prompts, [settings.chat_model]), qa, contexts, llmops.run_defaults(),
                        rag_index["index_version"], provider.cache_namespace)
    cache = CallCache.from_settings(settings)
    try:
        rows = playground.run_playground(tasks, provider, cache)
    finally:
        cache.close()
    new_calls, errors = int((~rows["cached"]).sum()), int(rows["error"].notna().sum())
    wide, f1 = scored_side_by_side(rows)
    context.log.info(f"{len(prompts)} prompt variants x {len(qa)} questions: {new_calls} new calls, "
                     f"{errors} errors")
    return dg.Output(rows, metadata={
        "dagster/row_count": len(rows), "dagster/column_schema": column_schema(PROMPT_PLAYGROUND),
        "variants": ", ".join(f"{p.name}@{p.version}" for p in prompts),
        "model": settings.chat_model, "cached_rows": int(rows["cached"].sum()),
        "side_by_side": dg.MetadataValue.md(markdown_table(wide, 200)),
        # Charted per variant in the Plots tab; the other metrics are evaluation_rows' (calls).
        **{f"{prompt}/token_f1": number(value) for prompt, value in f1.items()},
    })
