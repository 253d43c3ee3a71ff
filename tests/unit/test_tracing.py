"""Spans of a served request in an in-memory exporter: stages under the root, no content by
default, content with LLMOPS_TRACE_CONTENT=on, never a secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from llmops_pipelines import tracing
from llmops_pipelines.serving.app import create_app
from llmops_pipelines.serving.champion_app import ChampionApp
from llmops_pipelines.serving.production_log import ProductionLog
from llmops_pipelines.settings import Settings
from tests.integration.test_serving import deploy

TOKEN = "serve-token-for-unit-tests-0123456789"
QUESTION = "How do I clean the tent after a muddy trip?"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    previous = tracing.use_provider(provider)
    try:
        yield memory
    finally:
        tracing.use_provider(previous)


def _ms(span) -> float:
    return (span.end_time - span.start_time) / 1e6


def _attributes(spans) -> str:
    return repr([dict(s.attributes or {}) for s in spans])


def _serve_once(isolated_home) -> dict:
    deploy(isolated_home, "grounded_concise")
    settings = Settings.from_env()
    app = create_app(ChampionApp(settings), TOKEN, ProductionLog(settings.production_log_path))
    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"messages": [{"role": "user", "content": QUESTION}]})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_served_request_is_one_root_with_stage_children(openai_env, isolated_home, exporter,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
    body = _serve_once(isolated_home)
    answer = body["choices"][0]["message"]["content"]
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.name == "llmops.request"]
    children = {s.name: s for s in spans if s.parent is not None
                and s.parent.span_id == root.context.span_id}
    assert {"retrieve", "render", "chat"} <= set(children)
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    stage_sum = sum(_ms(s) for s in children.values())
    # The stages cover the request (the champion lookup is one): within 10 % of the root.
    assert {"lookup", "retrieve", "render", "chat"} <= set(children)
    assert 0.9 * _ms(root) <= stage_sum <= _ms(root), ({n: _ms(s) for n, s in children.items()},
                                                       _ms(root))
    chat = children["chat"].attributes
    assert chat["gen_ai.usage.output_tokens"] > 0 and chat["gen_ai.request.model"]
    text = _attributes(spans)
    assert QUESTION not in text and answer not in text
    assert TOKEN not in text and "test-key-not-secret" not in text


def test_content_is_recorded_only_when_switched_on(openai_env, isolated_home, exporter,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("LLMOPS_TRACE_CONTENT", "on")
    body = _serve_once(isolated_home)
    text = _attributes(exporter.get_finished_spans())
    assert QUESTION in text and body["choices"][0]["message"]["content"] in text
    assert TOKEN not in text and "test-key-not-secret" not in text


def test_stages_sum_into_the_summary_and_attributes_stay_scalars(exporter) -> None:
    trace = tracing.Trace("llmops.eval_row", {"llmops.row_id": "r1", "client": object()},
                          content=False)
    with trace.stage("chat"):
        pass
    with pytest.raises(RuntimeError), trace.stage("chat"):
        raise RuntimeError("boom")
    trace.set_content(question="secret question")
    total = trace.end()
    assert trace.end() == total  # ended once
    assert set(trace.summary()) == {"chat"} and trace.summary()["chat"] <= total
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.name == "llmops.eval_row"]
    assert "client" not in root.attributes and root.attributes["llmops.row_id"] == "r1"
    assert "secret question" not in _attributes(spans)
    assert [s.status.status_code.name for s in spans if s.name == "chat"] == ["UNSET", "ERROR"]


def test_stage_percentiles_skip_and_count_records_without_stages() -> None:
    from llmops_pipelines.monitoring.production import stage_metadata

    exchanges = [{"id": f"x{i}", "stages_ms": {"retrieve": float(i), "chat": 10.0 * i},
                  "total_ms": 11.0 * i + 1} for i in range(1, 21)]
    exchanges += [{"id": "old"}, {"id": "odd", "stages_ms": "not a dict"},
                  {"id": "streamed", "stages_ms": {"chat": 5.0}, "ttft_ms": 2.0}]
    meta = stage_metadata(exchanges)
    assert meta["stages_missing"] == 2
    assert meta["stage/retrieve/p50_ms"] == 10.5 and meta["stage/ttft_ms/p95_ms"] == 2.0
    assert meta["stage/total/p95_ms"] > meta["stage/total/p50_ms"]
    assert "stage/rewrite/p95_ms" not in meta  # no record had it: not reported as 0
    assert all(isinstance(v, float) for k, v in meta.items() if k.startswith("stage/"))
