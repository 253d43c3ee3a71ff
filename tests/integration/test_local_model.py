"""The embedded default for real: SmolLM2 on llama.cpp and MiniLM on ONNX, no network."""

from __future__ import annotations

import numpy as np
import pytest

from llmops_pipelines.providers import make_provider
from llmops_pipelines.settings import Settings

pytestmark = pytest.mark.slow


def test_local_chat_and_embeddings() -> None:
    provider = make_provider(Settings.from_env())
    assert provider.name == "local"

    result = provider.chat([{"role": "system", "content": "Answer in one short sentence."},
                            {"role": "user", "content": "What colour is the sky on a clear day?"}],
                           max_tokens=24)
    assert result.text.strip()
    assert 0 < result.output_tokens <= 24 and result.input_tokens > 10
    assert result.latency_ms > 0 and result.ms_per_output_token > 0

    texts = ["The battery holds 625 Wh.", "Battery capacity is 625 watt-hours.",
             "Returns are accepted within 30 days.", "The battery holds 625 Wh."]
    vectors = provider.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    # Same meaning beats a different topic; identical texts embed identically whatever the batch.
    assert sims[0, 1] > sims[0, 2] + 0.2
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-5)
    np.testing.assert_allclose(provider.embed([texts[0]])[0], vectors[0], atol=1e-4)
    assert provider.stats.items["embed"] == 5 and provider.stats.calls["chat"] == 1


def test_local_chat_streams_token_by_token() -> None:
    from llmops_pipelines.providers.base import ChatResult

    provider = make_provider(Settings.from_env())
    items = list(provider.chat_stream(  # type: ignore[attr-defined]
        [{"role": "user", "content": "Name three colours."}], max_tokens=16))
    *deltas, result = items
    assert isinstance(result, ChatResult) and all(isinstance(d, str) for d in deltas)
    assert len(deltas) >= 2 and "".join(deltas).strip() == result.text
    assert result.output_tokens > 0 and result.ttft_ms is not None and result.ttft_ms > 0
