"""Adaptive rate limiting (AIMD on calls in flight, honouring Retry-After) and retries with backoff.

A 429 halves the window of concurrent calls (at most once per round trip, as TCP does, so a
burst of 429s from one overshoot counts once) and pauses new calls for the server's
Retry-After; each success grows the window by 1/window, about one call per round trip.
5xx, timeouts and dropped connections are retried with exponential backoff and jitter; they
do not shrink the window, since they are not a sign of sending too fast.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from llmops_pipelines.errors import ProviderError, TransientProviderError

T = TypeVar("T")
# 429s are flow control, not failures: they get their own, larger bound (the row timeout
# bounds them too).
RATE_LIMIT_ATTEMPTS = 100


class AdaptiveLimiter:
    """How many calls may be in flight now: between 1 and `max_concurrency`, adapted by AIMD."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.window = float(self.max_concurrency)
        self.in_flight = 0
        self.rtt_s = 1.0  # smoothed latency of successful calls
        self.stats: Counter[str] = Counter()
        self._resume_at = 0.0
        self._last_cut = -float("inf")
        self._changed: asyncio.Event | None = None

    async def acquire(self) -> None:
        """Wait for a free slot in the window and for any Retry-After pause to end."""
        while True:
            pause = self._resume_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.in_flight < int(self.window):
                self.in_flight += 1
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def release(self, *, ok: bool, latency_s: float | None = None, rate_limited: bool = False,
                retry_after_s: float | None = None) -> None:
        """Give the slot back and adapt: halve on 429, grow on success."""
        self.in_flight -= 1
        now = time.monotonic()
        if rate_limited:
            self.stats["rate_limited"] += 1
            if now - self._last_cut >= self.rtt_s:
                self.window = max(1.0, self.window / 2)
                self._last_cut = now
                self.stats["window_cuts"] += 1
            if retry_after_s:
                self._resume_at = max(self._resume_at, now + retry_after_s)
        elif ok:
            self.stats["ok"] += 1
            self.window = min(float(self.max_concurrency), self.window + 1 / self.window)
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
                       policy: RetryPolicy, what: str) -> tuple[T, int]:
    """Run `call` inside the limiter until it succeeds; returns (result, attempts made)."""
    failures = limited = 0
    while True:
        await limiter.acquire()
        started = time.monotonic()
        try:
            result = await call()
        except TransientProviderError as exc:
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
        limiter.release(ok=True, latency_s=time.monotonic() - started)
        return result, failures + limited + 1
