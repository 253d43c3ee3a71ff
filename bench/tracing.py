"""Per-row tracing overhead: the same evaluation rows built with and without their
`llmops.eval_row` trace (root + retrieve/render/chat/judge spans, stages_ms JSON), in one run.

No network: each row's own CPU work (render the prompt, build the row) is the untraced baseline,
so the ratio is an upper bound on what tracing adds to a real row (which also waits on calls).
Spans go to a BatchSpanProcessor with an in-memory exporter, as an OTLP exporter would batch.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pandas as pd
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmops_pipelines import tracing
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.engine import cached_trace, make_row, retrieved_span, row_trace
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.plan import RowPlan, plan_rows
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.base import ChatResult
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.settings import project_root
from llmops_pipelines.tracing import chat_attributes

ROOT = project_root()
METRICS = {"quality": 0.5, "groundedness": 0.9, "harm": 0.0}


def _plans(n: int) -> list[RowPlan]:
    qa = pd.DataFrame({"qa_id": [f"q{i}" for i in range(n)],
                       "question": [f"How long does charger {i} take?" for i in range(n)],
                       "ground_truth": [f"Charger {i} takes {i % 7 + 2} hours." for i in range(n)],
                       "doc_id": [f"d{i % 5}" for i in range(n)]})
    contexts = [[Retrieved(f"c{i}-{k}", f"d{(i + k) % 5}", f"Charger {i} takes {i % 7 + 2} hours. "
                           "Use the supplied cable." * 3, 0.9) for k in range(4)] for i in range(n)]
    candidates = cross(load_prompts(ROOT / "assets" / "prompts"), ["gpt-4o-mini"])[:1]
    return list(plan_rows(candidates, qa, contexts, {"max_tokens": 64}, "iv", "ns",
                          lambda key, row: f"m-{key}"))


def _untraced(plans: list[RowPlan], result: ChatResult, pricing: Pricing) -> None:
    for p in plans:
        p.candidate.render(p.qa, p.contexts)
        make_row(p, result, METRICS, pricing=pricing, versions={}, cached=False, attempts=1,
                 error=None)


def _traced(plans: list[RowPlan], result: ChatResult, pricing: Pricing) -> None:
    # The engine's traced row (Engine._traced_row) without its awaits.
    for p in plans:
        trace = row_trace(p)
        retrieved_span(trace, p)
        with trace.stage("render"):
            p.candidate.render(p.qa, p.contexts)
        with trace.stage("chat") as span:
            trace.set(span, **chat_attributes(result.model, result.input_tokens,
                                              result.output_tokens, None))
        with trace.stage("judge"):
            pass
        trace.end()
        make_row(p, result, METRICS, pricing=pricing, versions={}, cached=False, attempts=1,
                 error=None, trace=trace)


def _cached(plans: list[RowPlan], result: ChatResult, pricing: Pricing) -> None:
    for p in plans:
        make_row(p, result, METRICS, pricing=pricing, versions={}, cached=True, attempts=0,
                 error=None, trace=cached_trace(p, result))


def _cached_untraced(plans: list[RowPlan], result: ChatResult, pricing: Pricing) -> None:
    for p in plans:
        make_row(p, result, METRICS, pricing=pricing, versions={}, cached=True, attempts=0,
                 error=None)


def _time(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def run(quick: bool = False) -> dict:
    n, repeats = (300, 3) if quick else (2000, 7)
    plans = _plans(n)
    pricing = Pricing.load(Path(ROOT / "assets" / "pricing.yaml"))
    result = ChatResult(text="Charger 3 takes 5 hours.", model="gpt-4o-mini", input_tokens=120,
                        output_tokens=9, latency_ms=200.0)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(memory))
    previous = tracing.use_provider(provider)
    times: dict[str, list[float]] = {"untraced": [], "traced": [], "cached_untraced": [],
                                     "cached_traced": []}
    try:
        _traced(plans[:50], result, pricing)  # warm-up
        for _ in range(repeats):  # interleaved: both see the same machine load
            times["untraced"].append(_time(_untraced, plans, result, pricing))
            times["traced"].append(_time(_traced, plans, result, pricing))
            times["cached_untraced"].append(_time(_cached_untraced, plans, result, pricing))
            times["cached_traced"].append(_time(_cached, plans, result, pricing))
        provider.force_flush()
    finally:
        tracing.use_provider(previous)
        provider.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": n, "repeats": repeats,
        "untraced_us_per_row": round(med["untraced"] / n * 1e6, 1),
        "traced_us_per_row": round(med["traced"] / n * 1e6, 1),
        "ratio_traced_untraced": round(med["traced"] / med["untraced"], 3),
        "tracing_us_per_row": round((med["traced"] - med["untraced"]) / n * 1e6, 1),
        "cached_untraced_us_per_row": round(med["cached_untraced"] / n * 1e6, 1),
        "cached_traced_us_per_row": round(med["cached_traced"] / n * 1e6, 1),
        "ratio_cached_traced_untraced": round(med["cached_traced"] / med["cached_untraced"], 3),
        "spans_exported": len(memory.get_finished_spans()),
    }
