"""Question and chunk embeddings from a paid endpoint are asked once, then read from the cache."""

from __future__ import annotations

import numpy as np

from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.cached_embeddings import CachedEmbeddings
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.settings import Settings


def test_each_text_is_embedded_once_across_runs(openai_env) -> None:
    server = openai_env
    settings = Settings.from_env()
    inner = OpenAIProvider(settings)
    first = CachedEmbeddings(inner, lambda: CallCache.from_settings(settings))
    texts = ["How do I charge it?", "Is it waterproof?", "How do I charge it?"]

    vectors = first.embed(texts)
    assert server.counts["embeddings"] == 1  # the repeated text asked for once
    np.testing.assert_allclose(vectors, inner.embed(texts), atol=1e-6)
    server.reset()

    # A new process of a later run: same cache, a text more.
    again = CachedEmbeddings(OpenAIProvider(settings), lambda: CallCache.from_settings(settings))
    more = again.embed([*texts, "Does it float?"])
    assert server.counts["embeddings"] == 1
    assert [len(body["input"]) for key, body in server.requests if key == "embeddings"] == [1]
    np.testing.assert_allclose(more[:3], vectors, atol=1e-6)
    assert more.shape == (4, vectors.shape[1]) and more.dtype == np.float32


def test_another_embedding_model_is_not_served_from_the_first_ones_vectors(openai_env,
                                                                          monkeypatch) -> None:
    settings = Settings.from_env()
    CachedEmbeddings(OpenAIProvider(settings), lambda: CallCache.from_settings(settings)).embed(["x"])
    monkeypatch.setenv("LLMOPS_EMBEDDING_MODEL", "text-embedding-3-large")
    other = Settings.from_env()
    openai_env.reset()
    CachedEmbeddings(OpenAIProvider(other), lambda: CallCache.from_settings(other)).embed(["x"])
    assert openai_env.counts["embeddings"] == 1
