"""OpenTelemetry spans for every served request and evaluated row, and their per-stage durations.

A `Trace` is one root span (`llmops.request` or `llmops.eval_row`) with a child span per stage
(rewrite, retrieve, render, chat, judge). Spans go over OTLP/HTTP when the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; whatever the exporter, the
stage durations are kept on the Trace so the production log and the evaluation rows carry them
(monitoring reports p50/p95 per stage without a tracing backend).

Span attributes hold models, token counts, document ids and durations. Prompt text, questions
and answers go into attributes only when LLMOPS_TRACE_CONTENT=on; a secret never does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace as otel
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode

log = logging.getLogger(__name__)

STAGES = ("lookup", "rewrite", "retrieve", "render", "chat", "judge")
SCOPE = "llmops_pipelines"
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Only these kinds of values are ever set as attributes: a dict or an object (a client, a
# settings object holding a key) cannot slip in by accident.
_SCALARS = (str, bool, int, float)

_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: otel.Tracer | None = None  # the provider's tracer, made once (per row it was ~10 % of a trace)


def _default_provider(env: Mapping[str, str]) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME") or "llmops-pipelines"}))
    endpoint = next((env[v] for v in ENDPOINT_VARS if env.get(v)), None)
    if endpoint:
        # The exporter reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers,
        # timeout) itself; headers may carry a collector's key, so they are never logged.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # A cached evaluation re-run makes thousands of spans a second: the SDK's 2048-span
        # queue would drop most of them (bench/RESULTS.md, tracing); the variable still rules.
        queue = int(env.get("OTEL_BSP_MAX_QUEUE_SIZE") or 16384)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), max_queue_size=queue))
        log.info("traces: exporting spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT is set)")
    return provider


def tracer_provider() -> TracerProvider:
    """Ours, not the global one: another library's provider (or none) never changes ours."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = _default_provider(os.environ)
        return _provider


def use_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Swap the provider (tests: an in-memory exporter); None: rebuilt from the environment."""
    global _provider, _tracer
    with _lock:
        previous, _provider, _tracer = _provider, provider, None
    return previous


def tracer() -> otel.Tracer:
    """Our scope's tracer on the current provider."""
    global _tracer
    current = _tracer
    if current is None:
        current = tracer_provider().get_tracer(SCOPE)
        with _lock:
            _tracer = current
    return current


def flush(timeout_ms: int = 5000) -> None:
    """Send the spans still batched (end of a run, a server shutting down)."""
    with _lock:
        provider = _provider
    if provider is not None:
        provider.force_flush(timeout_ms)


def content_allowed(env: Mapping[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("LLMOPS_TRACE_CONTENT", "off") == "on"


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, _SCALARS):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    return out


class Trace:
    """One request's or row's spans, and how long each stage took (ms, summed when repeated)."""

    def __init__(self, name: str, attributes: Mapping[str, Any] | None = None, *,
                 content: bool | None = None) -> None:
        self.content = content_allowed() if content is None else content
        self._tracer = tracer()
        self._root = self._tracer.start_span(name, attributes=_clean(attributes or {}))
        self._context = otel.set_span_in_context(self._root)
        self._started = time.perf_counter()
        self.stages: dict[str, float] = {}
        self.total_ms: float | None = None

    @property
    def trace_id(self) -> str:
        return format(self._root.get_span_context().trace_id, "032x")

    @contextmanager
    def stage(self, name: str, **attributes: Any) -> Iterator[Span]:
        """A child span timed into `stages[name]`; an exception marks it failed and goes on up."""
        started = time.perf_counter()
        span = self._tracer.start_span(name, context=self._context, attributes=_clean(attributes))
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()
            self.add(name, (time.perf_counter() - started) * 1000)

    def add(self, stage: str, ms: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + ms

    def set(self, span: Span | None = None, /, **attributes: Any) -> None:
        """Attributes on a span (default: the root)."""
        (span or self._root).set_attributes(_clean(attributes))

    def set_content(self, span: Span | None = None, /, **texts: str) -> None:
        """Question, prompt or answer text: recorded only with LLMOPS_TRACE_CONTENT=on."""
        if self.content:
            self.set(span, **{f"llmops.content.{k}": v for k, v in texts.items()})

    def end(self, error: str | None = None) -> float:
        """End the root span once (later calls return the same total); the request's ms."""
        if self.total_ms is None:
            self.total_ms = (time.perf_counter() - self._started) * 1000
            if error:
                self._root.set_status(Status(StatusCode.ERROR, error))
            self._root.set_attribute("llmops.total_ms", self.total_ms)
            self._root.end()
        return self.total_ms

    def summary(self) -> dict[str, float]:
        """Stage -> ms, rounded: what the production log and evaluation rows record."""
        return {k: round(v, 3) for k, v in self.stages.items()}


def chat_attributes(model: str, input_tokens: int, output_tokens: int,
                    finish_reason: str | None) -> dict[str, Any]:
    """OpenTelemetry's GenAI semantic-convention names for one completion."""
    return {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            "gen_ai.response.finish_reasons": [finish_reason or "stop"]}
