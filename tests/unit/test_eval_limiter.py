"""The engine's flow control: rate pacing, Retry-After, retries with backoff, bounded attempts."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmops_pipelines.errors import ProviderError, TransientProviderError
from llmops_pipelines.evaluation.limiter import AdaptiveLimiter, RetryPolicy, with_retries


def test_a_429_paces_calls_instead_of_halving_the_window() -> None:
    # Replaces the AIMD test (window 16 -> 8 on a 429): halving settled at 0.8 of a cap, so a
    # 429 now sets a paced rate measured from the endpoint and keeps the concurrency.
    limiter = AdaptiveLimiter(16)
    limiter.rtt_s = 60.0  # one "round trip" spans the whole test
    for _ in range(3):
        limiter.in_flight += 1
        limiter.release(ok=False, rate_limited=True, retry_after_s=0.02)
    assert limiter.window == 16.0 and limiter.max_concurrency == 16
    # A burst of 429s from one overshoot is one estimate, not three.
    assert (limiter.stats["rate_limited"], limiter.stats["cap_estimates"]) == (3, 1)
    assert limiter.rate is not None and 45 < limiter.rate < 50


def test_concurrency_stays_between_one_and_max() -> None:
    limiter = AdaptiveLimiter(4)
    limiter.rtt_s = 0.0  # every 429 may re-estimate
    for _ in range(10):
        limiter.in_flight += 1
        limiter.release(ok=False, rate_limited=True)
    assert limiter.window == 4.0 and limiter.in_flight == 0
    assert AdaptiveLimiter(0).max_concurrency == 1


def test_server_errors_do_not_shrink_the_window() -> None:
    limiter = AdaptiveLimiter(8)
    limiter.in_flight += 1
    limiter.release(ok=False)
    assert limiter.window == 8.0 and limiter.stats["failed"] == 1


def test_retry_after_pauses_new_calls() -> None:
    async def scenario() -> tuple[bool, bool]:
        limiter = AdaptiveLimiter(8)
        await limiter.acquire()
        limiter.release(ok=False, rate_limited=True, retry_after_s=30.0)
        waiting = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.05)
        paused = not waiting.done()
        waiting.cancel()
        return paused, limiter.in_flight == 0

    paused, nothing_in_flight = asyncio.run(scenario())
    assert paused and nothing_in_flight


def test_retry_delay_honours_retry_after_and_backs_off_otherwise() -> None:
    policy = RetryPolicy(base_s=0.25, cap_s=10.0)
    limited = TransientProviderError("429", rate_limited=True, retry_after_s=2.0)
    assert all(2.0 <= policy.delay(1, limited) <= 2.5 for _ in range(50))
    server_error = TransientProviderError("500")
    # Equal jitter: between half and all of base * 2^(attempt-1), capped.
    assert all(0.125 <= policy.delay(1, server_error) <= 0.25 for _ in range(50))
    assert all(1.0 <= policy.delay(4, server_error) <= 2.0 for _ in range(50))
    assert all(5.0 <= policy.delay(30, server_error) <= 10.0 for _ in range(50))
    # A 503 with Retry-After waits at least that long.
    hinted = TransientProviderError("503", retry_after_s=3.0)
    assert all(1.5 <= policy.delay(1, hinted) <= 3.0 for _ in range(50))


def _flaky(failures: list[Exception]):
    calls = []

    async def call() -> str:
        calls.append(time.monotonic())
        if failures:
            raise failures.pop(0)
        return "ok"

    return call, calls


def test_transient_errors_are_retried_until_success() -> None:
    call, calls = _flaky([TransientProviderError("500"), TransientProviderError("timeout")])
    policy = RetryPolicy(max_attempts=3, base_s=0.001)
    result, attempts = asyncio.run(with_retries(call, AdaptiveLimiter(2), policy, "chat"))
    assert (result, attempts, len(calls)) == ("ok", 3, 3)


def test_retries_give_up_after_max_attempts_with_a_clear_error() -> None:
    call, calls = _flaky([TransientProviderError("boom 500") for _ in range(10)])
    policy = RetryPolicy(max_attempts=3, base_s=0.001)
    limiter = AdaptiveLimiter(2)
    with pytest.raises(ProviderError, match=r"chat: gave up after 3 attempts .*"
                                            r"LLMOPS_EVAL_MAX_ATTEMPTS=3.*boom 500"):
        asyncio.run(with_retries(call, limiter, policy, "chat"))
    assert len(calls) == 3 and limiter.in_flight == 0


def test_rate_limits_do_not_use_up_the_failure_attempts() -> None:
    limited = [TransientProviderError("429", rate_limited=True, retry_after_s=0.001)
               for _ in range(5)]
    call, calls = _flaky(limited)
    policy = RetryPolicy(max_attempts=2, base_s=0.001)
    result, attempts = asyncio.run(with_retries(call, AdaptiveLimiter(4), policy, "chat"))
    assert (result, attempts) == ("ok", 6)


def test_permanent_errors_are_not_retried() -> None:
    call, calls = _flaky([ProviderError("400 bad model")])
    limiter = AdaptiveLimiter(2)
    with pytest.raises(ProviderError, match="400 bad model"):
        asyncio.run(with_retries(call, limiter, RetryPolicy(), "chat"))
    assert len(calls) == 1 and limiter.in_flight == 0
