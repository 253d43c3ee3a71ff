"""Run every candidate over the eval questions: the sync entry point the Dagster asset calls.

`evaluate` plans the rows (content keys, cache lookups, a cost estimate), finishes the cached
ones at once, runs the rest on the async engine, and returns one row per question x
candidate, always: a row whose call failed is kept with its error and NaN metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmops_pipelines import tables, tracing
from llmops_pipelines.evaluation import plan as planning
from llmops_pipelines.evaluation.budget import Budget, exceeded
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.calls import ModelCalls
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.embed_memo import MicroBatcher
from llmops_pipelines.evaluation.engine import Engine, RowSink, cached_trace, make_row
from llmops_pipelines.evaluation.judges import JudgeReply, Judges
from llmops_pipelines.evaluation.limiter import AdaptiveLimiter, RetryPolicy, with_retries
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.plan import RowPlan, answer_key, judge_key, legacy_answer_key
from llmops_pipelines.evaluation.scoring import EVALUATOR_VERSION, Scorers
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import ChatResult, Message, Provider
from llmops_pipelines.providers.endpoints import Route
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.schemas import EVALUATION_ROWS, conform

log = logging.getLogger(__name__)
PLAN_CHUNK = 1000  # rows looked up in the cache per query batch
SCORER_SLOTS = 8  # embedding / moderation calls in flight, each (their batches are large)
SCORER_LINGER_S = 0.05


@dataclass
class RunContext:
    provider: Provider
    pricing: Pricing
    cache: CallCache
    concurrency: int
    versions: dict[str, str]
    progress: Callable[[str], None] = log.info
    judges: Judges | None = None
    max_cost_usd: float | None = None
    row_timeout_s: float = 300.0
    max_attempts: int = 6
    stream: bool = False
    # Where a run stopped by its budget writes what it finished (any LLMOPS_TABLES_URI filesystem).
    partial_path: tables.TablePath | None = None
    report_every_s: float = 5.0
    # Mixed into every answer and judge key: a new salt (the nightly run's date) asks the
    # provider again instead of reading what it said before; "" keeps the evaluation's keys.
    cache_salt: str = ""
    # The index version the cache's pre-upgrade keys were salted with: the previous run's
    # (from its rows' lineage), or this run's when there is none.
    legacy_index_version: str | None = None
    # The endpoints' chat routes by name (models.yaml); candidates on "" or on an unlisted
    # name go to `provider` at `concurrency`, which also scores harm.
    routes: dict[str, Route] = field(default_factory=dict)
    scorer: Provider | None = None  # embeds for the metrics (the experiment's); `provider` if None
    judge_endpoint: str = ""

    @property
    def embedder(self) -> Provider:
        return self.scorer or self.provider

    @property
    def namespace(self) -> str:
        """The cache namespace of this run's keys: the provider's, salted when asked."""
        return self._salted(self.provider.cache_namespace)

    def _salted(self, base: str) -> str:
        return f"{base}|salt={self.cache_salt}" if self.cache_salt else base

    def namespace_for(self, endpoint: str) -> str:
        """The namespace of keys for calls to `endpoint`: that endpoint's provider's."""
        route = self.routes.get(endpoint)
        return self._salted(route.provider.cache_namespace) if route else self.namespace

    def price_name(self, model: str, endpoint: str) -> str:
        return self.pricing.name_for(model, endpoint)


@dataclass
class _Task:
    """One question x candidate, rendered: the prompt playground answers these directly."""

    candidate: Candidate
    qa: Any
    contexts: list[Retrieved]
    messages: list[Message]
    params: dict[str, Any]
    key: str
    legacy_key: str | None = None  # the pre-upgrade key, read when `key` is not cached yet


def build_tasks(candidates: list[Candidate], qa: pd.DataFrame,
                contexts: list[list[Retrieved]], defaults: dict[str, Any],
                index_version: str, namespace: str) -> list[_Task]:
    """One task per question x candidate, keyed exactly as evaluation keys its answers."""
    tasks = []
    for candidate in candidates:
        params = planning.candidate_params(candidate, defaults)
        for row, ctx in zip(qa.itertuples(index=False), contexts, strict=True):
            messages = candidate.render(row, ctx)
            key = answer_key(namespace, messages, candidate.model, params)
            legacy = legacy_answer_key(namespace, messages, candidate.model, params, index_version)
            tasks.append(_Task(candidate, row, ctx, messages, params, key, legacy))
    return tasks


def _scorers(ctx: RunContext, calls: ModelCalls, policy: RetryPolicy,
             pool: ThreadPoolExecutor) -> Scorers:
    provider = ctx.embedder

    def batched(fn: Callable[[list[str]], Any], what: str) -> Callable[[list[str]], Any]:
        # Embeddings and moderation are other models with their own rate limits: own limiters.
        # A run kept to one call at a time (the local model on this CPU) scores one at a time too.
        limiter = AdaptiveLimiter(min(SCORER_SLOTS, ctx.concurrency))

        async def call(batch: list[str]) -> list[Any]:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(ctx.row_timeout_s):
                result, _ = await with_retries(lambda: loop.run_in_executor(pool, fn, batch),
                                               limiter, policy, what)
            return list(result)
        return call

    judge_call = None
    if ctx.judges is not None:
        judges = ctx.judges

        async def judge_call(prompt: Prompt, messages: list[Message], params: dict[str, Any],
                             repeat: int) -> JudgeReply:
            key = judge_key(ctx.namespace_for(ctx.judge_endpoint), prompt.version, messages,
                            judges.model, params, repeat)
            priced = ctx.price_name(judges.model, ctx.judge_endpoint)
            outcome = await calls.chat(key, "judge", messages, judges.model, params,
                                       endpoint=ctx.judge_endpoint, priced=priced)
            if outcome.result is None:
                return JudgeReply(None, outcome.error)
            usd = _cost(ctx.pricing, priced, outcome.result)
            return JudgeReply(outcome.result.text, None, usd)

    # Lingering 50 ms turns one call per finished row into one per ~50 ms of finished rows.
    moderator = ctx.provider
    return Scorers(MicroBatcher(batched(provider.embed, "metric embeddings"), max_batch=256,
                                linger_s=SCORER_LINGER_S),
                   MicroBatcher(batched(moderator.moderate, "moderation"), max_batch=32,
                                linger_s=SCORER_LINGER_S),
                   ctx.judges, judge_call)


def _cost(pricing: Pricing, model: str, result: ChatResult) -> float:
    return pricing.price(pricing.priced_model(result.model, model)).cost(result.input_tokens,
                                                                          result.output_tokens)


def evaluate(candidates: list[Candidate], qa: pd.DataFrame, contexts: planning.Contexts,
             ctx: RunContext, defaults: dict[str, Any]) -> pd.DataFrame:
    """One row per question x candidate, always: errors are rows with NaN metrics and a reason.

    `contexts`: the retrieved chunks per question, or a function giving them per candidate.
    """
    for candidate in candidates:
        # An unpriced model fails before any spend.
        ctx.pricing.price(ctx.price_name(candidate.model, candidate.endpoint))
    if ctx.judges is not None:
        ctx.pricing.price(ctx.price_name(ctx.judges.model, ctx.judge_endpoint))
    return asyncio.run(_evaluate(candidates, qa, contexts, ctx, defaults))


def _plan(candidates: list[Candidate], qa: pd.DataFrame, contexts: planning.Contexts,
          ctx: RunContext, defaults: dict[str, Any],
          sink: RowSink) -> tuple[int, list[RowPlan], list[RowPlan]]:
    """Finish fully cached rows into `sink`; return (rows, rows to run, rows needing an answer)."""
    provider = ctx.provider
    judges_version = ctx.judges.version if ctx.judges else None

    def scoring_key(key: str, row: Any) -> str:
        return planning.metrics_key(key, row.ground_truth, provider.cache_namespace,
                                    ctx.embedder.embedding_model, EVALUATOR_VERSION,
                                    judges_version)

    legacy_index = ctx.legacy_index_version or ctx.versions.get("index", "")
    plans = planning.plan_rows(candidates, qa, contexts, defaults, legacy_index,
                               lambda c: ctx.namespace_for(c.endpoint), scoring_key,
                               lambda c: ctx.price_name(c.model, c.endpoint))
    total, pending, to_answer = 0, [], []
    chunk: list[RowPlan] = []
    for plan in [*plans, None]:
        if plan is not None:
            chunk.append(plan)
        if chunk and (plan is None or len(chunk) == PLAN_CHUNK):
            total += len(chunk)
            answers = ctx.cache.get_many([p.key for p in chunk])
            answers.update(ctx.cache.adopt({p.key: p.legacy_key for p in chunk
                                            if p.key not in answers and p.legacy_key}))
            metrics = ctx.cache.get_many([p.metrics_key for p in chunk if p.key in answers])
            metrics.update(ctx.cache.adopt({
                p.metrics_key: p.legacy_metrics_key for p in chunk
                if p.key in answers and p.metrics_key not in metrics and p.legacy_metrics_key}))
            for p in chunk:
                if p.key in answers and p.metrics_key in metrics:
                    result = ChatResult.from_dict(answers[p.key])
                    sink.add(p.order, make_row(p, result, metrics[p.metrics_key],
                                               pricing=ctx.pricing, versions=ctx.versions,
                                               cached=True, attempts=0, error=None,
                                               trace=cached_trace(p, result)))
                    continue
                pending.append(p)
                if p.key not in answers:
                    to_answer.append(p)
            chunk = []
    return total, pending, to_answer


async def _evaluate(candidates: list[Candidate], qa: pd.DataFrame, contexts: planning.Contexts,
                    ctx: RunContext, defaults: dict[str, Any]) -> pd.DataFrame:
    sink = RowSink()
    total, pending, to_answer = _plan(candidates, qa, contexts, ctx, defaults, sink)
    answer_usd, tokens_in, tokens_out = planning.estimate_usd(to_answer, ctx.pricing, None)
    judge_usd, judge_in, judge_out = planning.estimate_usd(pending, ctx.pricing, ctx.judges,
                                                           answers=False)
    estimate = answer_usd + judge_usd
    cap = ctx.max_cost_usd
    ctx.progress(
        f"evaluating {len(candidates)} candidates x {len(qa)} questions = {total} rows: "
        f"{total - len(pending)} finished from the cache, {len(to_answer)} answers to request, "
        f"{len(pending)} rows to score; estimate <= {tokens_in + judge_in} input + "
        f"{tokens_out + judge_out} output tokens, <= ${estimate:.6f}"
        + (f" (LLMOPS_MAX_COST_USD=${cap:g})" if cap is not None else "")
        + f"; concurrency {ctx.concurrency}"
        + "".join(f", {r.name} {r.concurrency}" for r in ctx.routes.values()
                  if r.provider is not ctx.provider))
    if cap is not None and estimate > cap:
        ctx.progress(f"the estimate ${estimate:.6f} is over LLMOPS_MAX_COST_USD=${cap:g}: the run "
                     "will stop before crossing it and keep the rows it finished")
    policy = RetryPolicy(max_attempts=ctx.max_attempts)
    default_limiter = AdaptiveLimiter(ctx.concurrency)
    limiters = {id(ctx.provider): default_limiter}  # one limiter per provider, however named
    routes = {name: (r.provider, limiters.setdefault(id(r.provider),
                                                      AdaptiveLimiter(r.concurrency, r.rate_limit_rps)))
              for name, r in ctx.routes.items()}
    calls = ModelCalls(ctx.provider, ctx.cache, ctx.pricing, Budget(cap), default_limiter, policy,
                       timeout_s=ctx.row_timeout_s, stream=ctx.stream, routes=routes)
    # The sync embedding/moderation clients get their own threads: the default pool has
    # cpu + 4 threads, fewer than the calls in flight at 50 rows/s and 200 ms per call.
    pool = ThreadPoolExecutor(2 * SCORER_SLOTS, thread_name_prefix="eval-scoring")
    engine = Engine(calls, _scorers(ctx, calls, policy, pool), ctx.pricing, ctx.versions, sink,
                    ctx.progress, total, estimate)
    try:
        # Rows being scored hold a worker but no chat slot: enough workers that scoring
        # (a batch wait plus a round trip, longer than the answer) never starves the slots.
        slots = sum(limiter.max_concurrency for limiter in calls.limiters.values())
        await engine.run(pending, 4 * slots + 4, ctx.report_every_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        tracing.flush()  # the rows' spans reach the collector before the step ends
        for provider in {id(p): p for p, _ in calls.routes.values()}.values():
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()
    frame = sink.table().to_pandas()
    if engine.stop_reason:
        path = None
        if ctx.partial_path is not None:
            tables.write_table(ctx.partial_path, frame)
            path = tables.masked(ctx.partial_path)
        raise exceeded(engine.stop_reason, estimate, len(frame), total, path)
    return conform(frame, EVALUATION_ROWS, name="evaluation_rows")
