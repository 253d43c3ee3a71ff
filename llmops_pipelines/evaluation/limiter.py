"""Rate pacing at the endpoint's cap (its headers, or its 429s), Retry-After, and retries with backoff.

Calls in flight stay under `max_concurrency`; once the endpoint shows a cap, calls also start
at a paced rate just under it instead of in bursts. The cap comes from the x-ratelimit-*
headers when the endpoint sends them (OpenAI, Azure), else from the 429 pattern: the rate of
calls it accepted while refusing others is its cap. Halving a window on a 429 (AIMD) settles
near 0.8 of a cap; pacing at the measured rate keeps ~0.98 of it with few 429s. Without a
429 for a while the pace creeps up, so a raised cap is found again.
5xx, timeouts and dropped connections are retried with exponential backoff and jitter; they
do not slow the pace, since they are not a sign of sending too fast.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from llmops_pipelines.errors import ProviderError, TransientProviderError
from llmops_pipelines.evaluation.pacing import CapEstimate
from llmops_pipelines.providers.rate_limits import RateLimits

T = TypeVar("T")
# 429s are flow control, not failures: they get their own, larger bound (the row timeout
# bounds them too).
RATE_LIMIT_ATTEMPTS = 100


class AdaptiveLimiter:
    """At most `max_concurrency` calls in flight, started at the pace the endpoint's cap allows."""

    def __init__(self, max_concurrency: int, ceiling_rps: float | None = None) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.window = float(self.max_concurrency)  # calls in flight allowed; pacing does the rest
        self.in_flight = 0
        self.rtt_s = 1.0  # smoothed latency of successful calls
        self.stats: Counter[str] = Counter()
        self.cap = CapEstimate(ceiling_rps)
        self._resume_at = 0.0
        self._next_at = 0.0
        self._changed: asyncio.Event | None = None
        self._gate: asyncio.Lock | None = None
        self._done: deque[float] = deque()  # completion times of accepted calls, last few seconds

    @property
    def rate(self) -> float | None:
        """Calls per second being paced at now (None: unpaced, only the concurrency bound)."""
        return self.cap.pace(time.monotonic(), self.in_flight)

    async def acquire(self) -> None:
        """Wait for a free slot, the next paced start and any Retry-After pause to end."""
        if self._gate is None:
            self._gate = asyncio.Lock()
        # One caller at a time waits on the clock; the rest queue (FIFO) on the gate instead
        # of all waking at every paced start, which under CPU load made the pace run late.
        async with self._gate:
            await self._acquire()

    async def _acquire(self) -> None:
        while True:
            now = time.monotonic()
            rate = self.cap.pace(now, self.in_flight)
            start = max(self._resume_at, self._next_at if rate else 0.0)
            if start > now:
                await asyncio.sleep(start - now)
                continue
            if self.in_flight < self.max_concurrency:
                self.in_flight += 1
                if rate:
                    step = 1.0 / rate
                    # Up to two steps of credit: the event loop wakes a little late each time,
                    # and without it those delays would add up to a lower rate than paced.
                    self._next_at = max(self._next_at, now - 2 * step) + step
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def observe(self, limits: RateLimits | None, tokens: int = 0) -> None:
        """Take in the endpoint's rate-limit headers (from the latest response), if it sent any."""
        if limits is not None:
            self.cap.from_headers(limits, tokens, time.monotonic())

    def release(self, *, ok: bool, latency_s: float | None = None, rate_limited: bool = False,
                retry_after_s: float | None = None) -> None:
        """Give the slot back; a 429 re-measures the cap, a success is counted for the next one."""
        self.in_flight -= 1
        now = time.monotonic()
        if rate_limited:
            self.stats["rate_limited"] += 1
            while self._done and self._done[0] < now - self.cap.window_s:
                self._done.popleft()
            if self.cap.on_429(now, len(self._done), retry_after_s, self.rtt_s):
                self.stats["cap_estimates"] += 1
            if retry_after_s:
                self._resume_at = max(self._resume_at, now + retry_after_s)
        elif ok:
            self.stats["ok"] += 1
            self._done.append(now)
            self.cap.started(now)
            if latency_s is not None:
                self.rtt_s = 0.8 * self.rtt_s + 0.2 * latency_s
        else:
            self.stats["failed"] += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and jitter (equal jitter: half fixed, half random)."""

    max_attempts: int = 6
    base_s: float = 0.25
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=lambda: random.Random(0), compare=False)

    def delay(self, attempt: int, error: TransientProviderError) -> float:
        if error.rate_limited and error.retry_after_s is not None:
            # A little jitter keeps the calls refused together from all coming back together.
            return error.retry_after_s * (1 + 0.25 * self.rng.random())
        step = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        if error.retry_after_s is not None:
            step = max(step, error.retry_after_s)
        return step / 2 + self.rng.random() * step / 2


async def with_retries(call: Callable[[], Awaitable[T]], limiter: AdaptiveLimiter,
                       policy: RetryPolicy, what: str,
                       rate_limits: Callable[[], RateLimits | None] | None = None,
                       tokens: int = 0) -> tuple[T, int]:
    """Run `call` inside the limiter until it succeeds; returns (result, attempts made).

    `rate_limits` returns the latest response's x-ratelimit-* headers, when the provider reads
    them; `tokens` is what one call counts against a token cap (prompt + max_tokens).
    """
    failures = limited = 0
    while True:
        await limiter.acquire()
        started = time.monotonic()
        try:
            result = await call()
        except TransientProviderError as exc:
            if rate_limits is not None:
                limiter.observe(rate_limits(), tokens)
            limiter.release(ok=False, rate_limited=exc.rate_limited,
                            retry_after_s=exc.retry_after_s)
            if exc.rate_limited:
                limited += 1
            else:
                failures += 1
            if failures >= policy.max_attempts or limited >= RATE_LIMIT_ATTEMPTS:
                raise ProviderError(
                    f"{what}: gave up after {failures + limited} attempts "
                    f"({failures} failures, {limited} rate limited; LLMOPS_EVAL_MAX_ATTEMPTS="
                    f"{policy.max_attempts}): {exc}") from exc
            await asyncio.sleep(policy.delay(failures or 1, exc))
            continue
        except BaseException:
            # Not retryable (a 400, a bad model name) or cancelled: free the slot, pass it on.
            limiter.release(ok=False)
            raise
        if rate_limits is not None:
            limiter.observe(rate_limits(), tokens)
        limiter.release(ok=True, latency_s=time.monotonic() - started)
        return result, failures + limited + 1
