"""Any OpenAI-compatible endpoint through the official client: OpenAI, Azure, vLLM, Ollama, llama.cpp."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import openai

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers.base import (
    ChatResult,
    Message,
    ModerationResult,
    ProviderStats,
    l2_normalise,
)
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)

EMBED_BATCH = 256
MODERATION_MODEL = "omni-moderation-latest"


class OpenAIProvider:
    """Chat, embeddings and moderation over the official openai client."""

    name = "openai"

    def __init__(self, settings: Settings, client: openai.OpenAI | None = None) -> None:
        # The client reads OPENAI_API_KEY itself, so the key never passes through our objects.
        self.client = client or openai.OpenAI(
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
        )
        self.chat_model = settings.chat_model
        self.embedding_model = settings.embedding_model
        self.stats = ProviderStats()
        # The same model name on two endpoints (OpenAI, Ollama) answers differently.
        self.cache_namespace = f"openai:{self.client.base_url}"
        self._moderation_available = True

    def chat(self, messages: Sequence[Message], *, model: str | None = None,
             temperature: float = 0.0, max_tokens: int = 256,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        """One completion; latency is wall time around the call, retries included."""
        model = model or self.chat_model
        kwargs: dict[str, Any] = {"model": model, "messages": list(messages),
                                  "temperature": temperature, "max_tokens": max_tokens}
        if response_format:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise ProviderError(f"chat with model {model!r} failed: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        self.stats.record("chat")
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(
            text=(choice.message.content or "").strip(),
            model=response.model or model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            latency_ms=latency_ms,
            finish_reason=choice.finish_reason,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings in batches the API accepts, returned in input order."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start:start + EMBED_BATCH])
            try:
                response = self.client.embeddings.create(model=self.embedding_model, input=batch)
            except openai.APIError as exc:
                raise ProviderError(
                    f"embeddings with model {self.embedding_model!r} failed: {exc}") from exc
            self.stats.record("embed", len(batch))
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return l2_normalise(np.asarray(rows, dtype=np.float32))

    def moderate(self, texts: Sequence[str]) -> list[ModerationResult]:
        """The moderation endpoint; servers without one (vLLM, Ollama) fall back, labelled."""
        from llmops_pipelines.evaluation.harm import lexicon_verdict

        if self._moderation_available:
            try:
                response = self.client.moderations.create(model=MODERATION_MODEL,
                                                          input=list(texts))
                self.stats.record("moderate", len(texts))
                return [
                    ModerationResult(
                        flagged=bool(r.flagged),
                        categories=tuple(sorted(k for k, v in r.categories.model_dump().items()
                                                if v)),
                        source=f"openai:{MODERATION_MODEL}",
                    )
                    for r in response.results
                ]
            except (openai.NotFoundError, openai.BadRequestError) as exc:
                log.warning("moderation endpoint unavailable (%s); using the local lexicon "
                            "heuristic, labelled as such in harm_source", type(exc).__name__)
                self._moderation_available = False
            except openai.APIError as exc:
                raise ProviderError(f"moderation failed: {exc}") from exc
        return [lexicon_verdict(t, source="local-lexicon-v1 (endpoint has no moderation)")
                for t in texts]
