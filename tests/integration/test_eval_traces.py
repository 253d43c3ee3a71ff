"""Evaluation rows carry their trace: stages_ms per row (retrieve/render/chat/judge) and an
`llmops.eval_row` span tree in an in-memory exporter; cached rows are traced too, without calls."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmops_pipelines import tracing
from tests.integration.test_evaluation_assets import evaluation, materialize, upstream
from tests.integration.test_lifecycle import table


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


def test_every_evaluated_row_has_stages_and_a_span_tree(openai_env, isolated_home, exporter,
                                                        monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_JUDGE_MODEL", "gpt-4o-mini")
    assert materialize(upstream()).success
    exporter.clear()
    assert materialize(evaluation()).success
    rows = table(isolated_home, "evaluation_rows")
    stages = [json.loads(s) for s in rows["stages_ms"]]
    assert all({"retrieve", "render", "chat", "judge"} <= set(s) for s in stages), stages[:3]
    assert all(s["chat"] > 0 for s in stages)

    spans = exporter.get_finished_spans()
    roots = {s.context.span_id: s for s in spans if s.name == "llmops.eval_row"}
    assert len(roots) == len(rows)
    assert {r.attributes["llmops.row_id"] for r in roots.values()} == set(rows["row_id"])
    chats = [s for s in spans if s.name == "chat" and s.parent.span_id in roots]
    assert len(chats) == len(rows)
    assert all(c.attributes["gen_ai.usage.output_tokens"] > 0 for c in chats)
    text = repr([dict(s.attributes) for s in spans])
    assert not any(q in text for q in rows["question"])  # no content unless switched on
    assert "test-key-not-secret" not in text

    # A second run is all cache hits: every row is still traced, with a cached chat span only.
    exporter.clear()
    assert materialize(evaluation()).success
    again = table(isolated_home, "evaluation_rows")
    assert again["cached"].all()
    assert all({"retrieve", "chat"} <= set(json.loads(s)) for s in again["stages_ms"])
    cached = [s for s in exporter.get_finished_spans() if s.name == "chat"]
    assert len(cached) == len(again) and all(s.attributes["llmops.cached"] for s in cached)
