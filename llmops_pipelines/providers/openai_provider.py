"""Any OpenAI-compatible endpoint through the official client: OpenAI, Azure, vLLM, Ollama, llama.cpp."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import openai

from llmops_pipelines.errors import ProviderError, TransientProviderError
from llmops_pipelines.providers.base import (
    ChatResult,
    Message,
    ModerationResult,
    ProviderStats,
    l2_normalise,
)
from llmops_pipelines.providers.catalog import Endpoint
from llmops_pipelines.providers.endpoint_check import EndpointCheck, cause, where
from llmops_pipelines.providers.rate_limits import RateLimits, parse_rate_limits
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)

EMBED_BATCH = 256
MODERATION_MODEL = "omni-moderation-latest"


def _retry_after_s(exc: openai.APIStatusError) -> float | None:
    """The server's own wait hint: retry-after-ms (OpenAI, Azure) or Retry-After in seconds."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) / scale)
        except ValueError:
            continue  # an HTTP date: rare; fall back to our own backoff
    return None


def provider_error(exc: openai.APIError, what: str, endpoint: str | None = None) -> ProviderError:
    """Our typed error for a client error: transient ones say so, and carry Retry-After."""
    # The endpoint and, for a connection error, its cause: "Connection error." alone names nothing.
    detail = f" ({cause(exc)})" if isinstance(exc, openai.APIConnectionError) else ""
    message = f"{what}{f' at {endpoint}' if endpoint else ''} failed: {exc}{detail}"
    if isinstance(exc, openai.RateLimitError):
        return TransientProviderError(message, rate_limited=True, retry_after_s=_retry_after_s(exc))
    if isinstance(exc, openai.APIConnectionError):  # timeouts and dropped connections included
        return TransientProviderError(message)
    if isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code == 408):
        return TransientProviderError(message, retry_after_s=_retry_after_s(exc))
    return ProviderError(message)


class OpenAIProvider:
    """Chat, embeddings and moderation over the official openai client."""

    name = "openai"

    def __init__(self, settings: Settings, client: openai.OpenAI | None = None, *,
                 endpoint: Endpoint | None = None, api_key: str | None = None,
                 chat_model: str | None = None, embedding_model: str | None = None) -> None:
        # The run's own endpoint (endpoint=None) is configured by OPENAI_BASE_URL and the
        # LLMOPS_OPENAI_* variables, as before; a catalog endpoint by its models.yaml entry.
        self.endpoint_name = endpoint.name if endpoint else "openai"
        self._base_url = endpoint.base_url if endpoint else settings.openai_base_url
        self._timeout_s = endpoint.timeout_s if endpoint else settings.openai_timeout_s
        retries = endpoint.max_retries if endpoint else settings.openai_max_retries
        self.embed_batch = endpoint.embedding_batch if endpoint else EMBED_BATCH
        # None: the client reads OPENAI_API_KEY itself. The key stays inside the client.
        self._api_key = api_key
        self.client = client or openai.OpenAI(base_url=self._base_url, api_key=api_key,
                                              timeout=self._timeout_s, max_retries=retries)
        self.chat_model = chat_model or settings.chat_model
        self.embedding_model = embedding_model or settings.embedding_model
        self.stats = ProviderStats()
        self.endpoint = (f"endpoint {endpoint.name!r} ({self.client.base_url})" if endpoint
                         else where(self.client))
        self.timeout_setting = (f"timeout_s of endpoint {endpoint.name!r} in assets/models.yaml"
                                if endpoint else "LLMOPS_OPENAI_TIMEOUT_S")
        self.check = EndpointCheck(self.client, self.chat_model, self._timeout_s, retries,
                                   label=self.endpoint,
                                   key_env=(endpoint.api_key_env if endpoint else None)
                                   or "OPENAI_API_KEY")
        # The same model name on two endpoints (OpenAI, Ollama) answers differently.
        self.cache_namespace = f"openai:{self.client.base_url}"
        self._moderation_available = True
        self._aclient: openai.AsyncOpenAI | None = None
        self.rate_limits: RateLimits | None = None  # the latest async chat response's headers
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def chat(self, messages: Sequence[Message], *, model: str | None = None,
             temperature: float = 0.0, max_tokens: int = 256,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        """One completion; latency is wall time around the call, retries included."""
        model = model or self.chat_model
        kwargs = _request(model, messages, temperature, max_tokens, response_format)
        self.check.ensure()
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise provider_error(exc, f"chat with model {model!r}", self.endpoint) from exc
        self.stats.record("chat")
        return _result(response, model, (time.perf_counter() - started) * 1000)

    def chat_stream(self, messages: Sequence[Message], *, model: str | None = None,
                    temperature: float = 0.0, max_tokens: int = 256
                    ) -> Iterator[str | ChatResult]:
        """Text deltas as they arrive, then one ChatResult with usage and time to first token."""
        model = model or self.chat_model
        kwargs = _request(model, messages, temperature, max_tokens, None)
        self.check.ensure()
        started = time.perf_counter()
        parts: list[str] = []
        ttft_ms = usage = finish = None
        served = model
        try:
            stream = self.client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True})
            try:
                for chunk in stream:
                    served = chunk.model or served
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        if choice.delta.content:
                            if ttft_ms is None:
                                ttft_ms = (time.perf_counter() - started) * 1000
                            parts.append(choice.delta.content)
                            yield choice.delta.content
                        finish = choice.finish_reason or finish
            finally:
                stream.close()
        except openai.APIError as exc:
            raise provider_error(exc, f"chat with model {model!r}", self.endpoint) from exc
        self.stats.record("chat")
        yield ChatResult(text="".join(parts).strip(), model=served,
                         input_tokens=usage.prompt_tokens if usage else 0,
                         output_tokens=usage.completion_tokens if usage else 0,
                         latency_ms=(time.perf_counter() - started) * 1000, ttft_ms=ttft_ms,
                         finish_reason=finish)

    def _async_client(self) -> openai.AsyncOpenAI:
        # An async client's connection pool belongs to one event loop: a new loop needs a new one.
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # max_retries=0: the evaluation runner retries itself, so its rate limiter sees
            # every 429 and its Retry-After instead of the client sleeping through them.
            self._aclient = openai.AsyncOpenAI(base_url=self._base_url, api_key=self._api_key,
                                               timeout=self._timeout_s, max_retries=0)
            self._aclient_loop = loop
        return self._aclient

    async def achat(self, messages: Sequence[Message], *, model: str | None = None,
                    temperature: float = 0.0, max_tokens: int = 256,
                    response_format: dict[str, Any] | None = None,
                    stream: bool = False) -> ChatResult:
        """One attempt, no retries; latency (and time to first token when streaming) measured here."""
        model = model or self.chat_model
        kwargs = _request(model, messages, temperature, max_tokens, response_format)
        await self.check.aensure()
        client = self._async_client()
        started = time.perf_counter()
        try:
            if not stream:
                # The raw response carries the x-ratelimit-* headers the evaluation paces to.
                raw = await client.chat.completions.with_raw_response.create(**kwargs)
                self.rate_limits = parse_rate_limits(raw.headers)
                response = raw.parse()
                self.stats.record("chat")
                return _result(response, model, (time.perf_counter() - started) * 1000)
            return await self._astream(client, kwargs, started)
        except openai.APIError as exc:
            if isinstance(exc, openai.APIStatusError):
                self.rate_limits = parse_rate_limits(exc.response.headers)
            raise provider_error(exc, f"chat with model {model!r}", self.endpoint) from exc

    async def _astream(self, client: openai.AsyncOpenAI, kwargs: dict[str, Any],
                       started: float) -> ChatResult:
        parts: list[str] = []
        ttft_ms = usage = finish = None
        served = kwargs["model"]
        raw = await client.chat.completions.with_raw_response.create(
            **kwargs, stream=True, stream_options={"include_usage": True})
        self.rate_limits = parse_rate_limits(raw.headers)
        stream = raw.parse()
        async for chunk in stream:
            served = chunk.model or served
            usage = chunk.usage or usage
            for choice in chunk.choices:
                if choice.delta.content:
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - started) * 1000
                    parts.append(choice.delta.content)
                finish = choice.finish_reason or finish
        self.stats.record("chat")
        return ChatResult(text="".join(parts).strip(), model=served,
                          input_tokens=usage.prompt_tokens if usage else 0,
                          output_tokens=usage.completion_tokens if usage else 0,
                          latency_ms=(time.perf_counter() - started) * 1000, ttft_ms=ttft_ms,
                          finish_reason=finish)

    async def aclose(self) -> None:
        """Close the async client of the current event loop, if one was opened."""
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = self._aclient_loop = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings in batches the endpoint accepts, returned in input order.

        A batch that times out is split in half and retried, down to one text: a CPU server
        is slow, not broken, and the log says which endpoint and which setting to raise.
        """
        rows: list[list[float]] = []
        if texts:
            self.check.ensure()
        for start in range(0, len(texts), self.embed_batch):
            rows.extend(self._embed_batch(list(texts[start:start + self.embed_batch])))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return l2_normalise(np.asarray(rows, dtype=np.float32))

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        # A large batch is tried once without the client's retries: a timeout is split at once
        # instead of being repeated max_retries times at the same size.
        once = self.client.with_options(max_retries=0) if len(batch) > 1 else self.client
        try:
            try:
                response = once.embeddings.create(model=self.embedding_model, input=batch)
            except openai.APITimeoutError:
                raise
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError):
                if once is self.client:
                    raise
                response = self.client.embeddings.create(model=self.embedding_model, input=batch)
        except openai.APITimeoutError as exc:
            if len(batch) == 1:
                raise provider_error(exc, f"embeddings with model {self.embedding_model!r} "
                                     f"(one text; raise {self.timeout_setting})",
                                     self.endpoint) from exc
            half = len(batch) // 2
            log.warning("%s: %d texts to embed took over %gs; splitting into %d + %d (raise %s "
                        "or lower embedding_batch to avoid this)", self.endpoint, len(batch),
                        self._timeout_s, half, len(batch) - half, self.timeout_setting)
            return self._embed_batch(batch[:half]) + self._embed_batch(batch[half:])
        except openai.APIError as exc:
            raise provider_error(exc, f"embeddings with model {self.embedding_model!r}",
                                 self.endpoint) from exc
        self.stats.record("embed", len(batch))
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

    def moderate(self, texts: Sequence[str]) -> list[ModerationResult]:
        """The moderation endpoint; servers without one (vLLM, Ollama) fall back, labelled."""
        from llmops_pipelines.providers.harm_lexicon import lexicon_verdict

        if self._moderation_available:
            self.check.ensure()
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
                raise provider_error(exc, "moderation", self.endpoint) from exc
        return [lexicon_verdict(t, source="local-lexicon-v1 (endpoint has no moderation)")
                for t in texts]


def _result(response: Any, model: str, latency_ms: float) -> ChatResult:
    """A chat.completion as our ChatResult (shared by the sync and async paths)."""
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


def _request(model: str, messages: Sequence[Message], temperature: float, max_tokens: int,
             response_format: dict[str, Any] | None) -> dict[str, Any]:
    """The chat.completions.create arguments, the same for the sync and the async call."""
    kwargs: dict[str, Any] = {"model": model, "messages": list(messages),
                              "temperature": temperature, "max_tokens": max_tokens}
    if response_format:
        kwargs["response_format"] = response_format
    return kwargs
