"""evaluation_rows as a graph: plan shards, run each as its own step, merge them in plan order.

Each shard is a step, so a distributed executor (the Dask step executor, multiprocess, k8s) runs
shards on different workers. Dagster pools are static per op definition, so there is one shard op per
endpoint of the catalog (pool `llm_endpoint_<name>`: `dagster instance concurrency set` caps
the steps calling one endpoint at once) and one op without a pool for the mixed "off" shard.
"""


import logging
import time
from dataclasses import replace

import dagster as dg
import pandas as pd

from llmops_pipelines.curation import data_version
from llmops_pipelines.defs.evaluation import (
    GROUP,
    PARTIAL,
    _candidate_objects,
    _contexts,
    _run_context,
    chat_calls,
    endpoint_calls,
    endpoint_table,
    eval_questions,
)
from llmops_pipelines.defs.evaluation_merge import merge_shards
from llmops_pipelines.defs.executors import ENDPOINT_TAG
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import BudgetExceededError, LlmopsError
from llmops_pipelines.evaluation import changes
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.lineup import CATALOG_FILE, assets_file
from llmops_pipelines.evaluation.runner import evaluate
from llmops_pipelines.evaluation.shards import (
    MIXED,
    ShardSpec,
    plan_shards,
    safe_name,
    worker_identity,
)
from llmops_pipelines.providers.catalog import load_catalog
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)
SHARD_IO = "shard_io_manager"
FALLBACK_ENDPOINTS = ("local", "openai")
MIXED_OUT = "mixed"
UPSTREAM = ("curated_documents", "curated_qa", "rag_index", "candidates", "finetuned_model")


def pool_name(endpoint: str) -> str:
    """The Dagster concurrency pool of the steps that call `endpoint` (any non-space text)."""
    return f"llm_endpoint_{endpoint}"


def catalog_endpoints() -> list[str]:
    """The endpoints of assets/models.yaml, read when the definitions load (local, openai if
    the catalog cannot be read then: the run itself reports what is wrong with it)."""
    try:
        settings = Settings.from_env()
        return sorted(load_catalog(assets_file(settings, CATALOG_FILE)).endpoints)
    except (LlmopsError, OSError) as exc:
        log.warning("eval shards: cannot read the model catalog (%s): one shard step per "
                    "endpoint of %s", exc, FALLBACK_ENDPOINTS)
        return list(FALLBACK_ENDPOINTS)


def _outputs(endpoints: list[str]) -> dict[str, str]:
    """Output (and op suffix) name -> endpoint; names must be identifiers, endpoints may not be."""
    out: dict[str, str] = {}
    for endpoint in endpoints:
        name = safe_name(endpoint)
        while name in out or name == MIXED_OUT:
            name += "_"
        out[name] = endpoint
    return {**out, MIXED_OUT: MIXED}


def _plan_op(outputs: dict[str, str]) -> dg.OpDefinition:
    by_endpoint = {endpoint: name for name, endpoint in outputs.items()}

    @dg.op(name="plan_evaluation_shards", out={
        "plan": dg.Out(list, io_manager_key=SHARD_IO),
        **{name: dg.DynamicOut(dict, io_manager_key=SHARD_IO)
           for name in outputs}})
    def plan(context: dg.OpExecutionContext, llmops: LlmopsResource, curated_qa: pd.DataFrame,
             candidates: pd.DataFrame):
        """Split the candidates x eval questions into shards (LLMOPS_EVAL_SHARDS)."""
        settings = llmops.settings
        qa = eval_questions(curated_qa, settings)
        pairs = list(zip(candidates["candidate_id"], candidates["endpoint"], strict=True))
        specs, warnings = plan_shards(pairs, len(qa), settings.eval_shards,
                                      settings.eval_shard_questions, settings.max_cost_usd,
                                      {e for e in outputs.values() if e != MIXED})
        for warning in warnings:
            context.log.warning(warning)
        context.log.info(f"eval shards {settings.eval_shards!r}: {len(specs)} shards of "
                         f"{len(candidates)} candidates x {len(qa)} questions")
        yield dg.Output([s.to_dict() for s in specs], "plan",
                        metadata={"shards": len(specs), "mode": settings.eval_shards})
        for spec in specs:
            yield dg.DynamicOutput(spec.to_dict(), output_name=by_endpoint[spec.endpoint],
                                   mapping_key=spec.key)

    return plan


def _partial_name(spec: ShardSpec) -> str:
    # The one-shard plan ("off") keeps today's file; shards keep one each.
    return PARTIAL if spec.key == "all" else f"evaluation_rows.partial.{spec.key}.parquet"


def run_shard(context: dg.OpExecutionContext, llmops: LlmopsResource, spec: ShardSpec,
              upstream: dict) -> tuple[pd.DataFrame, dict]:
    """Evaluate one shard: its candidates on its question range, within its budget share."""
    started = time.perf_counter()
    total_cap = llmops.settings.max_cost_usd
    settings = replace(llmops.settings, max_cost_usd=spec.budget_usd)
    documents, curated_qa = upstream["curated_documents"], upstream["curated_qa"]
    qa = eval_questions(curated_qa, settings).iloc[spec.start:spec.stop]
    frame = upstream["candidates"]
    frame = frame[frame["candidate_id"].isin(spec.candidate_ids)]
    objects = _candidate_objects(llmops, frame, upstream["finetuned_model"], documents,
                                 context.log)
    versions = {"data": data_version(documents, curated_qa),
                "index": upstream["rag_index"]["index_version"]}
    cache = CallCache.from_settings(settings)
    partial = settings.tables_root / _partial_name(spec)
    try:
        ctx = _run_context(settings, llmops, cache, versions, context.log, objects,
                           partial=partial.name)
        calls_before, per_endpoint = chat_calls(ctx), endpoint_calls(ctx)
        contexts = _contexts(llmops, qa, objects)  # retrieval for this shard's questions only
        previous = changes.previous_rows(settings.tables_root / "evaluation_rows.parquet")
        ctx.legacy_index_version = changes.previous_index_version(previous)
        rows = evaluate(objects, qa, contexts, ctx, llmops.run_defaults())
    except BudgetExceededError as exc:
        share = (f"shard {spec.key}: its share ${spec.budget_usd:g} of LLMOPS_MAX_COST_USD="
                 f"${total_cap:g} ({spec.rows} rows): " if spec.key != "all" else "")
        raise dg.Failure(description=share + str(exc), metadata={
            "partial_results": dg.MetadataValue.path(str(partial))}) from exc
    finally:
        cache.close()
    stats = {"shard": spec.key, "index": spec.index, "candidates": len(objects),
             "questions": len(qa), "rows": len(rows), "chat_calls": chat_calls(ctx) - calls_before,
             "endpoints": endpoint_table(ctx, rows, since=per_endpoint), "versions": versions,
             **worker_identity(), "seconds": round(time.perf_counter() - started, 3)}
    return rows, stats


def _shard_op(out_name: str, endpoint: str) -> dg.OpDefinition:
    # The pool limits an endpoint's steps across runs; the tag, k8s_job_executor's per-run limit.
    @dg.op(name=f"evaluate_shard_{out_name}", pool=pool_name(endpoint) if endpoint else None,
           tags={ENDPOINT_TAG: endpoint} if endpoint else None,
           ins={"spec": dg.In(dict), **{name: dg.In() for name in UPSTREAM}},
           out={"rows": dg.Out(pd.DataFrame, io_manager_key=SHARD_IO),
                 "stats": dg.Out(dict, io_manager_key=SHARD_IO)})
    def shard(context: dg.OpExecutionContext, llmops: LlmopsResource, spec: dict, **upstream):
        """One shard of evaluation_rows: score its candidates x questions."""
        rows, stats = run_shard(context, llmops, ShardSpec.from_dict(spec), upstream)
        shown = {k: stats[k] for k in ("candidates", "questions", "rows", "chat_calls",
                                       "worker", "host", "pid", "seconds")}
        return dg.Output(rows, "rows", metadata=shown), dg.Output(stats, "stats")

    return shard


def evaluation_rows_asset(endpoints: list[str] | None = None) -> dg.AssetsDefinition:
    """The evaluation_rows graph asset with a shard op per endpoint (the catalog's by default)."""
    outputs = _outputs(catalog_endpoints() if endpoints is None else endpoints)
    plan = _plan_op(outputs)
    shards = {name: _shard_op(name, endpoint) for name, endpoint in outputs.items()}
    merge = merge_shards(list(outputs))

    @dg.graph_asset(name="evaluation_rows", group_name=GROUP)
    def evaluation_rows(curated_documents, curated_qa, rag_index, candidates, finetuned_model):
        """Answer every eval-split question with every candidate's RAG app and score five
        metrics, in shards (LLMOPS_EVAL_SHARDS) that a distributed executor spreads out."""
        planned = plan(curated_qa, candidates)
        collected = {}
        for name, op in shards.items():
            rows, stats = getattr(planned, name).map(
                lambda spec, op=op: op(spec=spec, curated_documents=curated_documents,
                                       curated_qa=curated_qa, rag_index=rag_index,
                                       candidates=candidates, finetuned_model=finetuned_model))
            collected[f"rows_{name}"], collected[f"stats_{name}"] = rows.collect(), stats.collect()
        return merge(planned.plan, **collected)

    return evaluation_rows
