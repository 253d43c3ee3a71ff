"""A provider whose embeddings come from the call cache first: a re-run embeds nothing again.

Questions are embedded for retrieval by every run (evaluation, playground, fine-tune data,
retrieval evaluation); against a paid endpoint that is a bill per run for the same vectors.
Keyed per text by what decides the vector: the endpoint's namespace, the model and the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.base import ChatResult, Message, ModerationResult, Provider


class CachedEmbeddings:
    """Delegates to `inner`; `embed` asks the endpoint only for texts the cache lacks."""

    def __init__(self, inner: Provider, open_cache: Callable[[], CallCache]) -> None:
        self.inner = inner
        self._open_cache = open_cache
        self.name, self.chat_model = inner.name, inner.chat_model
        self.embedding_model, self.stats = inner.embedding_model, inner.stats
        self.cache_namespace = inner.cache_namespace

    def key(self, text: str) -> str:
        return content_hash(self.cache_namespace, "embedding", self.embedding_model, text,
                            length=32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        cache = self._open_cache()
        try:
            found = cache.get_many(list(dict.fromkeys(keys)))
            missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True)
                                         if k not in found))
            if missing:
                for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                    value = {"vector": [float(x) for x in vector]}
                    cache.put(self.key(text), "embedding", value)
                    found[self.key(text)] = value
        finally:
            cache.close()
        return np.asarray([found[k]["vector"] for k in keys], dtype=np.float32).reshape(
            len(keys), -1)

    def chat(self, messages: Sequence[Message], *, model: str | None = None,
             temperature: float = 0.0, max_tokens: int = 256,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        return self.inner.chat(messages, model=model, temperature=temperature,
                               max_tokens=max_tokens, response_format=response_format)

    def moderate(self, texts: Sequence[str]) -> list[ModerationResult]:
        return self.inner.moderate(texts)

    def __getattr__(self, name: str) -> Any:
        # Everything else a concrete provider offers (stream, close, ...) is the inner one's.
        return getattr(self.inner, name)
