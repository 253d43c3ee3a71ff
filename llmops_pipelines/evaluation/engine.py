"""The async evaluation engine: workers answer and score rows; every call cached, limited, budgeted.

Rows whose answer and metrics are both cached are finished in the planning pass without a
call. The rest go to a pool of workers: each renders the prompt, gets the answer (cache or
one call), scores it (batched embeddings and moderation, optional judges) and emits the row.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from llmops_pipelines.evaluation.budget import BudgetStop
from llmops_pipelines.evaluation.calls import ModelCalls
from llmops_pipelines.evaluation.metrics.cost import cost_score
from llmops_pipelines.evaluation.metrics.latency import latency_score, ttft_score
from llmops_pipelines.evaluation.plan import RowPlan
from llmops_pipelines.evaluation.scoring import RowInput, Scorers, score_row, unscored
from llmops_pipelines.providers.base import ChatResult
from llmops_pipelines.schemas import EVALUATION_ROWS
from llmops_pipelines.tracing import Trace, chat_attributes

ORDER = "_order"
SINK_SCHEMA = EVALUATION_ROWS.append(pa.field(ORDER, pa.int64()))


class RowSink:
    """Finished rows, kept as Arrow record batches (compact) and put back in plan order at the end."""

    def __init__(self, batch_rows: int = 4096) -> None:
        self._rows: list[dict[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self.batch_rows = batch_rows
        self.count = 0

    def add(self, order: int, row: dict[str, Any]) -> None:
        row[ORDER] = order
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.batch_rows:
            self._seal()

    def _seal(self) -> None:
        if self._rows:
            self._batches.append(pa.RecordBatch.from_pylist(self._rows, schema=SINK_SCHEMA))
            self._rows = []

    def table(self) -> pa.Table:
        self._seal()
        table = pa.Table.from_batches(self._batches, schema=SINK_SCHEMA).sort_by(ORDER)
        return table.drop_columns([ORDER])


def make_row(plan: RowPlan, result: ChatResult | None, metrics: dict[str, Any], *,
             pricing: Any, versions: dict[str, str], cached: bool, attempts: int,
             error: str | None, trace: Trace | None = None) -> dict[str, Any]:
    """One evaluation_rows record: the row's identity, answer, metrics with reasons, usage, versions."""
    candidate, qa = plan.candidate, plan.qa
    cost = cost_score(pricing, plan.price_name, result)
    latency = latency_score(result)
    return {
        "row_id": plan.row_id, "candidate_id": candidate.candidate_id, "qa_id": qa.qa_id,
        "prompt_name": candidate.prompt.name, "prompt_version": candidate.prompt.version,
        "model": candidate.model, "question": qa.question, "ground_truth": qa.ground_truth,
        "answer": result.text if result else None,
        "context_ids": [c.chunk_id for c in plan.contexts],
        "context_doc_ids": [c.doc_id for c in plan.contexts],
        "source_doc_retrieved": qa.doc_id in {c.doc_id for c in plan.contexts},
        **metrics,
        "input_tokens": result.input_tokens if result else 0,
        "output_tokens": result.output_tokens if result else 0,
        "cost_usd": cost.value, "cost_reason": cost.reason,
        "latency_ms": result.latency_ms if result else math.nan,
        "ms_per_output_token": latency.value, "latency_reason": latency.reason,
        "ttft_ms": ttft_score(result).value,
        "error": error, "cached": cached, "attempts": attempts,
        "data_version": versions.get("data", ""), "index_version": versions.get("index", ""),
        "endpoint": candidate.endpoint or None,
        "stages_ms": json.dumps(trace.summary(), sort_keys=True) if trace is not None else None,
    }


def row_trace(plan: RowPlan) -> Trace:
    """The row's `llmops.eval_row` root span: ids only (the question is content)."""
    trace = Trace("llmops.eval_row", {"llmops.row_id": plan.row_id,
                                      "llmops.candidate_id": plan.candidate.candidate_id,
                                      "llmops.qa_id": plan.qa.qa_id,
                                      "gen_ai.request.model": plan.candidate.model})
    trace.set_content(question=plan.qa.question)
    return trace


def retrieved_span(trace: Trace, plan: RowPlan) -> None:
    """Retrieval ran batched for all questions before the rows: the span records what it gave."""
    with trace.stage("retrieve", **{"llmops.retrieve.batched": True}) as span:
        trace.set(span, **{"llmops.context_doc_ids": [c.doc_id for c in plan.contexts]})


def cached_trace(plan: RowPlan, result: ChatResult) -> Trace:
    """A row finished from the cache in planning: root, retrieve and a cached chat span, no calls."""
    trace = row_trace(plan)
    retrieved_span(trace, plan)
    with trace.stage("chat", **{"llmops.cached": True}) as span:
        trace.set(span, **chat_attributes(result.model, result.input_tokens, result.output_tokens,
                                          None))
    trace.end()
    return trace


@dataclass
class Engine:
    """One run's workers over the rows that are not finished yet."""

    calls: ModelCalls
    scorers: Scorers
    pricing: Any
    versions: dict[str, str]
    sink: RowSink
    progress: Callable[[str], None]
    total: int
    estimate_usd: float = 0.0
    stop_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)

    async def run(self, pending: list[RowPlan], workers: int, report_every_s: float = 5.0) -> None:
        rows = iter(pending)
        reporter = asyncio.get_running_loop().create_task(self._report(report_every_s))
        try:
            await asyncio.gather(*(self._worker(rows) for _ in range(max(1, workers))))
        finally:
            reporter.cancel()
        self.report()

    async def _worker(self, rows: Iterator[RowPlan]) -> None:
        for plan in rows:
            if self.stop_reason:
                return
            try:
                row = await self._row(plan)
            except BudgetStop as stop:
                # Finished rows stay cached; this one is left for the next run.
                self.stop_reason = str(stop)
                return
            self.sink.add(plan.order, row)

    async def _row(self, plan: RowPlan) -> dict[str, Any]:
        trace = row_trace(plan)
        try:
            return await self._traced_row(plan, trace)
        except BaseException as exc:
            trace.end(error=type(exc).__name__)
            raise

    async def _traced_row(self, plan: RowPlan, trace: Trace) -> dict[str, Any]:
        retrieved_span(trace, plan)
        with trace.stage("render", **{"llmops.prompt_version": plan.candidate.prompt.version}):
            messages = plan.candidate.render(plan.qa, plan.contexts)
        with trace.stage("chat") as span:
            answer = await self.calls.chat(plan.key, "chat", messages, plan.candidate.model,
                                           plan.params, endpoint=plan.candidate.endpoint,
                                           priced=plan.price_name)
            result = answer.result
            trace.set(span, **{"llmops.cached": answer.cached, "llmops.attempts": answer.attempts})
            if result is not None:
                trace.set(span, **chat_attributes(result.model, result.input_tokens,
                                                  result.output_tokens, None))
        if result is None:
            metrics = unscored(f"no answer: {answer.error}")
        else:
            trace.set_content(answer=result.text)
            cached_metrics = self.calls.cache.get(plan.metrics_key)
            if cached_metrics is not None:
                metrics = cached_metrics
            else:
                row = RowInput(plan.qa.question, plan.qa.ground_truth, result.text,
                               [(c.doc_id, c.text) for c in plan.contexts])
                # Scoring: embeddings, moderation and the LLM judges when configured.
                with trace.stage("judge"):
                    metrics, complete = await score_row(row, self.scorers)
                if complete:  # a metric that failed on a call is retried by the next run
                    self.calls.cache.put(plan.metrics_key, "metrics", metrics)
        trace.end(error=answer.error)
        return make_row(plan, result, metrics, pricing=self.pricing, versions=self.versions,
                        cached=answer.cached, attempts=answer.attempts, error=answer.error,
                        trace=trace)

    async def _report(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.report()

    def report(self) -> None:
        """Rows done, rows/s, ETA and dollars so far, through the run's logger."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        done = self.sink.count
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else math.inf
        budget = self.calls.budget
        paces = "; ".join(
            f"{name}: pace {_pace(limiter.rate, limiter.cap.source)}, rate limited "
            f"{limiter.stats['rate_limited']}x" for name, limiter in self.calls.limiters.items())
        self.progress(
            f"{done}/{self.total} rows, {rate:.1f} rows/s, ETA {eta:.0f}s, "
            f"spent ${budget.spent_usd:.6f} of an estimated ${self.estimate_usd:.6f}; "
            f"calls {dict(self.calls.stats)}; {paces}")


def _pace(rate: float | None, source: str) -> str:
    return "unpaced" if rate is None else f"{rate:.1f} req/s (cap from {source})"
