"""A scoring call (embeddings, moderation) slower than the row timeout: the row is kept, with why.

The chat answers are fast; the test server delays only the scoring routes, past
LLMOPS_EVAL_ROW_TIMEOUT_S. Every row must come back with its answer and NaN metrics whose
reason names the timeout, never a bare TimeoutError that fails the whole evaluation.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.settings import Settings
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]


def _run(server: FakeOpenAIServer, home: Path, monkeypatch: pytest.MonkeyPatch,
         row_timeout_s: float) -> pd.DataFrame:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    settings = Settings.from_env({
        "LLMOPS_PROVIDER": "openai", "OPENAI_API_KEY": "test-key-not-secret",
        "OPENAI_BASE_URL": server.base_url, "LLMOPS_HOME": str(home),
        "LLMOPS_OPENAI_MAX_RETRIES": "0", "LLMOPS_EVAL_ROW_TIMEOUT_S": str(row_timeout_s)})
    n = 3
    qa = pd.DataFrame({"qa_id": [f"q{i}" for i in range(n)],
                       "question": [f"How long does charger {i} take?" for i in range(n)],
                       "ground_truth": [f"Charger {i} takes 3 hours." for i in range(n)],
                       "doc_id": ["d0"] * n})
    contexts = [[Retrieved(f"c{i}", "d0", f"Charger {i} takes 3 hours.", 0.9)] for i in range(n)]
    cache = CallCache(home / "cache.sqlite")
    try:
        ctx = RunContext(OpenAIProvider(settings), Pricing.load(REPO / "assets" / "pricing.yaml"),
                         cache, 4, {"data": "dv", "index": "iv"},
                         row_timeout_s=settings.eval_row_timeout_s, max_attempts=2)
        candidates = cross(load_prompts(REPO / "assets" / "prompts"), ["gpt-4o-mini"])
        return evaluate(candidates, qa, contexts, ctx, {"max_tokens": 32})
    finally:
        cache.close()


def test_scoring_slower_than_the_row_timeout_keeps_every_row_with_its_reason(
        isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = {"embeddings": 5.0, "moderations": 5.0}
    with FakeOpenAIServer(route_latency_s=slow) as server:
        rows = _run(server, isolated_home, monkeypatch, row_timeout_s=0.5)
    assert len(rows) == 3 * 2  # 3 questions x 2 prompt variants, none lost
    assert rows["answer"].str.len().gt(0).all()  # the answers were fast and are kept
    for _, row in rows.iterrows():
        # Token F1 needs no call, so quality keeps that one signal; the rest could not score.
        for metric in ("answer_similarity", "groundedness", "harm"):
            assert math.isnan(row[metric]), metric
        for column in ("groundedness_reason", "harm_categories"):
            assert "LLMOPS_EVAL_ROW_TIMEOUT_S" in row[column], row[column]
    # Unfinished metrics are not cached: the next run scores the rows again.
    cache = CallCache(isolated_home / "cache.sqlite")
    try:
        assert cache.count("metrics") == 0
        assert cache.count("chat") == 6
    finally:
        cache.close()
