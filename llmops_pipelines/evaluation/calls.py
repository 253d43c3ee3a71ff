"""Every model call of an evaluation run: cache first, one call per key, rate limited, retried, budgeted.

The result is written to the cache the moment the call returns, so a run that is killed or
stopped loses nothing, and the next run pays only for what is missing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.evaluation.budget import Budget, CallEstimate
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.limiter import AdaptiveLimiter, RetryPolicy, with_retries
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.providers.base import ChatResult, Message, Provider


@dataclass(frozen=True)
class CallOutcome:
    result: ChatResult | None
    cached: bool  # no call made for this row: from the cache, or shared with an identical call
    attempts: int = 0
    error: str | None = None
    billed_usd: float = 0.0  # spent by this run for this call


class ModelCalls:
    """Chat calls (answers and judges) for one run, each sent to its endpoint's provider.

    `routes` maps an endpoint name to its provider and limiter: each endpoint is paced and
    bounded on its own, all at the same time; "" (and any unknown name) is the run's own.
    """

    def __init__(self, provider: Provider, cache: CallCache, pricing: Pricing, budget: Budget,
                 limiter: AdaptiveLimiter, policy: RetryPolicy, *, timeout_s: float,
                 stream: bool = False,
                 routes: dict[str, tuple[Provider, AdaptiveLimiter]] | None = None) -> None:
        self.provider, self.cache, self.pricing, self.budget = provider, cache, pricing, budget
        self.limiter, self.policy, self.timeout_s, self.stream = limiter, policy, timeout_s, stream
        self.routes = {"": (provider, limiter), **(routes or {})}
        self._running: dict[str, asyncio.Task[tuple[ChatResult, int, float]]] = {}
        self.stats: Counter[str] = Counter()  # "<kind>:called|cached|shared|failed"

    @property
    def limiters(self) -> dict[str, AdaptiveLimiter]:
        """Each endpoint's limiter once, by endpoint name (the run's own as 'default')."""
        out: dict[str, AdaptiveLimiter] = {}
        for name, (_, limiter) in self.routes.items():
            if all(limiter is not seen for seen in out.values()):
                out[name or "default"] = limiter
        return out

    async def chat(self, key: str, kind: str, messages: list[Message], model: str,
                   params: dict[str, Any], *, endpoint: str = "",
                   priced: str | None = None) -> CallOutcome:
        """The cached result for `key`, or one call (shared by every row asking for the same key)."""
        hit = self.cache.get(key)
        if hit is not None:
            self.stats[f"{kind}:cached"] += 1
            return CallOutcome(ChatResult.from_dict(hit), cached=True)
        task = self._running.get(key)
        leader = task is None
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._call(key, kind, messages, model, params, endpoint, priced or model))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        try:
            # Shielded: a caller that gives up does not cancel the call others wait on.
            result, attempts, billed = await asyncio.shield(task)
        except ProviderError as exc:
            self.stats[f"{kind}:failed"] += 1
            return CallOutcome(None, cached=False, error=str(exc)[:500])
        if not leader:
            self.stats[f"{kind}:shared"] += 1
            return CallOutcome(result, cached=True)
        self.stats[f"{kind}:called"] += 1
        return CallOutcome(result, cached=False, attempts=attempts, billed_usd=billed)

    async def _call(self, key: str, kind: str, messages: list[Message], model: str,
                    params: dict[str, Any], endpoint: str,
                    priced: str) -> tuple[ChatResult, int, float]:
        provider, limiter = self.routes.get(endpoint) or self.routes[""]
        price = self.pricing.price(priced)
        estimate = CallEstimate.of(messages, int(params.get("max_tokens", 256)), price)
        self.budget.reserve(estimate.usd, f"a {kind} call to {model}")
        billed = 0.0
        try:
            async with asyncio.timeout(self.timeout_s):
                result, attempts = await with_retries(
                    lambda: _once(provider, messages, model, params,
                                  stream=self.stream and kind == "chat"),
                    limiter, self.policy, f"{kind} call to {model!r}"
                    + (f" at endpoint {endpoint!r}" if endpoint else ""),
                    rate_limits=lambda: getattr(provider, "rate_limits", None),
                    tokens=estimate.input_tokens + estimate.output_tokens)
            served = self.pricing.priced_model(result.model, priced)
            billed = self.pricing.price(served).cost(result.input_tokens, result.output_tokens)
        except TimeoutError as exc:
            raise ProviderError(f"{kind} call to {model!r}: no result within "
                                f"LLMOPS_EVAL_ROW_TIMEOUT_S={self.timeout_s:g}s, retries "
                                "included") from exc
        finally:
            self.budget.settle(estimate.usd, billed)
        self.cache.put(key, kind, result.to_dict())
        return result, attempts, billed


async def _once(provider: Provider, messages: list[Message], model: str, params: dict[str, Any], *,
                stream: bool) -> ChatResult:
    achat = getattr(provider, "achat", None)
    if achat is not None:
        return await achat(messages, model=model, stream=stream, **params)
    # Providers without an async client (the local llama.cpp one) run in a worker thread;
    # the caller's limiter keeps them to the concurrency they support.
    return await asyncio.to_thread(provider.chat, messages, model=model, **params)
