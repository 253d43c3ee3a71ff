"""Evaluation assets: candidates, the summary, and what evaluation_rows' shards share.

evaluation_rows itself (one scored row per question x candidate) is a graph asset built in
evaluation_shards.py, as its shard ops come from the catalog's endpoints.
"""

from collections.abc import Callable
from dataclasses import replace

import dagster as dg
import pandas as pd

from llmops_pipelines.defs import metadata as meta
from llmops_pipelines.defs.metadata import column_schema, markdown_table, preview
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import PromptError
from llmops_pipelines.evaluation import aggregate, side_by_side
from llmops_pipelines.evaluation import candidates as cands
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.input_mapping import InputMapping
from llmops_pipelines.evaluation.judges import Judges
from llmops_pipelines.evaluation.runner import RunContext
from llmops_pipelines.evaluation.scoring import EVALUATOR_VERSION
from llmops_pipelines.evaluation.validity import record as validity_record
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.schemas import CANDIDATES, EVALUATION_SUMMARY
from llmops_pipelines.settings import Settings

GROUP = "evaluation"
PARTIAL = "evaluation_rows.partial.parquet"  # what a run stopped by its budget finished
DETAIL_COLUMNS = ["candidate_id", "latency_p50_ms_per_token", "latency_p95_ms_per_token",
                  "ttft_p50_ms", "ttft_p95_ms", "quality_judge_spread", "groundedness_judge_spread",
                  "groundedness_source", "judge_cost_usd"]


@dg.asset(group_name=GROUP)
def candidates(context: dg.AssetExecutionContext, llmops: LlmopsResource,
               finetuned_model: dict) -> dg.Output[pd.DataFrame]:
    """The experiment's grid: prompts x models (on their endpoints) x params.

    The default experiment: every prompt variant x the run's chat model and its fine-tune.
    """
    objects = _experiment_candidates(llmops, finetuned_model)
    lineup = llmops.lineup
    frame = cands.candidates_frame(objects, lineup.providers.default_name)
    context.log.info(f"experiment {lineup.experiment.name!r}: {len(frame)} candidates on "
                     f"endpoints {sorted(set(frame['endpoint']))}")
    return dg.Output(frame, metadata={
        "dagster/row_count": len(frame), "dagster/column_schema": column_schema(CANDIDATES),
        "experiment": lineup.experiment.name,
        "endpoints": ", ".join(sorted(set(frame["endpoint"]))),
        "preview": preview(frame)})


def _experiment_candidates(llmops: LlmopsResource, finetuned_model: dict) -> list[cands.Candidate]:
    models = [llmops.settings.chat_model]
    if finetuned_model.get("model_id"):
        models.append(finetuned_model["model_id"])
    return llmops.lineup.candidates(llmops.prompts(), models)


def _candidate_objects(llmops: LlmopsResource, frame: pd.DataFrame, finetuned_model: dict,
                       documents: pd.DataFrame,
                       log: dg.DagsterLogManager) -> list[cands.Candidate]:
    """The materialized candidates, rebuilt from the experiment (mappings bound to the tables)."""
    built = {c.candidate_id: c for c in _experiment_candidates(llmops, finetuned_model)}
    out = []
    for row in frame.itertuples(index=False):
        candidate = built.get(row.candidate_id)
        if candidate is None:
            raise PromptError(f"candidate {row.candidate_id} is not in experiment "
                              f"{llmops.lineup.experiment.name!r} as it is now (a prompt, the "
                              "experiment or the catalog changed): re-materialize candidates")
        if isinstance(candidate.inputs, InputMapping):
            binder = candidate.inputs.bind(documents)
            log.info(f"{candidate.candidate_id}: inputs {binder.describe()}")
            candidate = replace(candidate, inputs=cands.BoundInputs(candidate.inputs.spec_hash,
                                                                    binder))
        out.append(candidate)
    return out


def _contexts(llmops: LlmopsResource, qa: pd.DataFrame,
              candidates: list[cands.Candidate]) -> Callable[[cands.Candidate], list]:
    """Retrieved chunks per question for each (top_k, mode) the candidates use, once each."""
    settings, index = llmops.settings, llmops.index()
    questions = qa["question"].tolist()
    found: dict[tuple[int, str], list] = {}

    def of(candidate: cands.Candidate) -> list:
        k, mode = candidate.retrieval
        setting = (int(k or settings.top_k), str(mode or settings.retrieval))
        if setting not in found:
            found[setting] = retrieve(llmops.embedder, index, questions, setting[0],
                                      mode=setting[1])
        return found[setting]

    for candidate in candidates:
        of(candidate)  # every retrieval now, before the first chat call
    return of


def eval_questions(curated_qa: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The eval split in qa_id order, cut to LLMOPS_EVAL_LIMIT: what shard ranges index into."""
    qa = curated_qa[curated_qa["split"] == "eval"].sort_values("qa_id")
    if settings.eval_limit:
        qa = qa.head(settings.eval_limit)
    if qa.empty:
        raise dg.Failure("the eval split is empty: add Q&A pairs to LLMOPS_DATASETS_DIR")
    return qa


def _run_context(settings: Settings, llmops: LlmopsResource, cache: CallCache,
                 versions: dict[str, str], log: dg.DagsterLogManager,
                 candidates: list[cands.Candidate], partial: str = PARTIAL) -> RunContext:
    lineup = llmops.lineup
    judges = (Judges.load(settings.assets_dir / "evaluators", settings.judge_model,
                          settings.judge_repeats) if settings.judge_model else None)
    routes = lineup.routes(candidates)  # builds each endpoint's provider: a missing key fails here
    default = lineup.default
    # One llama.cpp model serves one call at a time: more threads would only queue.
    concurrency = 1 if default.name == "local" else settings.eval_concurrency
    return RunContext(default, llmops.pricing(), cache, concurrency, versions, log.info,
                      judges=judges, max_cost_usd=settings.max_cost_usd,
                      row_timeout_s=settings.eval_row_timeout_s,
                      max_attempts=settings.eval_max_attempts, stream=settings.stream,
                      partial_path=settings.tables_root / partial, routes=routes,
                      scorer=lineup.embedder, judge_endpoint=lineup.judge_endpoint)


def chat_calls(ctx: RunContext) -> int:
    """Chat calls this process made to every endpoint of the run (each provider once)."""
    providers = {id(ctx.provider): ctx.provider,
                 **{id(r.provider): r.provider for r in ctx.routes.values()}}
    return sum(p.stats.calls["chat"] for p in providers.values())


def endpoint_calls(ctx: RunContext) -> dict[str, int]:
    """Chat calls each endpoint's provider made in this process so far."""
    return {name: int(route.provider.stats.calls["chat"]) for name, route in ctx.routes.items()}


def endpoint_table(ctx: RunContext, rows: pd.DataFrame,
                   since: dict[str, int] | None = None) -> dict[str, dict]:
    """Per endpoint: candidates, chat calls made (after `since`), the most in flight, dollars.

    `since`: endpoint_calls before the shard ran, as the providers outlive one shard in-process.
    """
    out = {}
    for name, route in ctx.routes.items():
        mine = rows[rows["endpoint"] == name]
        stats = route.provider.stats
        out[name] = {"candidates": int(mine["candidate_id"].nunique()),
                     "chat_calls": int(stats.calls["chat"]) - (since or {}).get(name, 0),
                     "concurrency": route.concurrency,
                     "peak_in_flight": int(stats.peak_in_flight) if route.provider.name == "local"
                     else None,
                     "cost_usd": round(float(mine["cost_usd"].sum()), 8)}
    return out


# By key: the graph asset is built in evaluation_shards.py from the catalog's endpoints.
@dg.asset_check(asset="evaluation_rows", blocking=True,
                additional_ins={"candidates": dg.AssetIn("candidates")},
                description="Exactly one row per eval question x candidate (row_id unique).")
def one_row_per_question_and_candidate(evaluation_rows: pd.DataFrame,
                                       candidates: pd.DataFrame) -> dg.AssetCheckResult:
    rows = evaluation_rows
    per_candidate = rows.groupby("candidate_id")["qa_id"].nunique()
    questions = rows["qa_id"].nunique()
    missing = sorted(set(candidates["candidate_id"]) - set(per_candidate.index))
    passed = (rows["row_id"].is_unique and not missing
              and len(rows) == questions * len(candidates) and bool((per_candidate == questions).all()))
    return dg.AssetCheckResult(passed=bool(passed), metadata={
        "rows": len(rows), "questions": questions, "candidates": len(candidates),
        "duplicate_row_ids": int(rows["row_id"].duplicated().sum()),
        "candidates_without_rows": ", ".join(missing) or "none"})


@dg.asset(group_name=GROUP)
def evaluation_summary(llmops: LlmopsResource,
                       evaluation_rows: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Per candidate: means with 95 % bootstrap CIs, coverage, cost and latency percentiles.

    Metadata charts each candidate's quality, groundedness, harm_rate, cost_per_1k_answers_usd
    and latency_ms_per_token over runs (`<prompt@model>/<metric>`, `best/<metric>`)."""
    summary = aggregate.summarise(evaluation_rows)
    labels = meta.candidate_labels(summary)
    # How often each metric was wrong on planted errors (`python -m bench validity`).
    last = validity_record.load(llmops.settings.path(*validity_record.LATEST))
    return dg.Output(summary, metadata={
        "dagster/row_count": len(summary),
        "dagster/column_schema": column_schema(EVALUATION_SUMMARY),
        # One chart per key in the Plots tab: `<prompt@model>/<metric>` and `best/<metric>`.
        **meta.metric_metadata(summary),
        "summary": meta.summary_table(summary),
        "latency_and_judges": dg.MetadataValue.md(markdown_table(
            meta.labelled(summary[DETAIL_COLUMNS], labels))),
        # Which model is best for each prompt, at what cost and latency; and each model overall.
        "by_prompt": dg.MetadataValue.md(side_by_side.markdown(side_by_side.by_prompt(summary))),
        "by_model": dg.MetadataValue.md(side_by_side.markdown(side_by_side.by_model(summary))),
        "metric_validity": dg.MetadataValue.md(validity_record.table(last, EVALUATOR_VERSION)),
    })


@dg.asset_check(asset=evaluation_summary,
                description="Every candidate scored on every row; unscorable rows (NaN with a "
                            "reason) lower coverage. The promotion gate sets the minimum.")
def coverage_complete(evaluation_summary: pd.DataFrame) -> dg.AssetCheckResult:
    low = evaluation_summary[evaluation_summary["coverage"] < 1.0]
    return dg.AssetCheckResult(
        passed=low.empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"min_coverage": meta.rounded(evaluation_summary["coverage"].min()),
                  "incomplete": dg.MetadataValue.md(markdown_table(meta.labelled(
                      low[["candidate_id", "rows", "coverage", "errors"]],
                      meta.candidate_labels(evaluation_summary))))})
