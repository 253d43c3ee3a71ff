"""Rate pacing: the cap from x-ratelimit-* headers or from the 429 pattern, and the pace under it."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmops_pipelines.evaluation.limiter import AdaptiveLimiter
from llmops_pipelines.evaluation.pacing import (
    HEADERS_HEADROOM,
    HEADROOM,
    HOLD_S,
    PROBE_PER_S,
    CapEstimate,
)
from llmops_pipelines.providers.rate_limits import Bucket, RateLimits, duration_s, parse_rate_limits


@pytest.mark.parametrize(("raw", "seconds"), [
    ("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("0.25", 0.25),
    ("59.347s", 59.347), ("soon", None), ("", None), (None, None), ("5x", None)])
def test_reset_durations_as_openai_writes_them(raw, seconds) -> None:
    assert duration_s(raw) == (pytest.approx(seconds) if seconds is not None else None)


def test_headers_give_the_refill_rate_and_none_without_headers() -> None:
    limits = parse_rate_limits({"x-ratelimit-limit-requests": "50",
                                "x-ratelimit-remaining-requests": "10",
                                "x-ratelimit-reset-requests": "800ms",
                                "x-ratelimit-limit-tokens": "10000",
                                "x-ratelimit-remaining-tokens": "10000"})
    assert limits is not None
    # 40 requests used come back in 0.8 s: the bucket refills at 50 requests/s.
    assert limits.requests.refill_per_s == pytest.approx(50.0)
    assert limits.tokens.refill_per_s is None  # full: no rate to read
    assert parse_rate_limits({"content-type": "application/json"}) is None


def test_first_429_before_any_success_paces_at_the_retry_after_hint() -> None:
    cap = CapEstimate()
    assert cap.pace(0.0, 0) is None  # no cap seen: only the concurrency bound
    assert cap.on_429(0.0, accepted=0, retry_after_s=0.02, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(50.0)
    assert cap.pace(0.1, 16) == pytest.approx(50.0 * HEADROOM)
    # More 429s of the same overshoot (within a round trip) are one signal.
    assert not cap.on_429(0.1, accepted=0, retry_after_s=0.001, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(50.0)


def test_the_cap_is_the_accepted_rate_while_refused_and_the_pace_creeps_up_without_429s() -> None:
    cap = CapEstimate()
    cap.started(0.0)
    cap.on_429(0.0, accepted=0, retry_after_s=0.05, rtt_s=0.2)  # a first guess of 20/s
    # Two seconds later: 80 calls accepted in the last 2 s while others were refused.
    assert cap.on_429(2.0, accepted=80, retry_after_s=0.05, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(30.0)  # capped at 1.5x the previous estimate per step
    assert cap.on_429(4.0, accepted=80, retry_after_s=0.05, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(40.0)
    held = cap.pace(4.0 + HOLD_S, 8)
    later = cap.pace(4.0 + HOLD_S + 10, 8)
    assert held == pytest.approx(40.0 * HEADROOM)
    assert later == pytest.approx(40.0 * HEADROOM * (1 + 10 * PROBE_PER_S))


def test_headers_pace_at_the_cap_with_a_reserve_and_burst_when_the_bucket_is_full() -> None:
    cap = CapEstimate()

    def seen(remaining: float, reset: str, now: float) -> None:
        limits = parse_rate_limits({"x-ratelimit-limit-requests": "50",
                                    "x-ratelimit-remaining-requests": str(remaining),
                                    "x-ratelimit-reset-requests": reset})
        assert limits is not None
        cap.from_headers(limits, 0, now)

    seen(0, "1s", 0.0)
    assert cap.source == "headers" and cap.cap_rps == pytest.approx(50.0)
    assert cap.pace(0.0, 10) == pytest.approx(50.0 * HEADERS_HEADROOM)  # no reserve: just under
    seen(12, "760ms", 1.0)
    assert cap.pace(1.0, 10) == pytest.approx(50.0)  # a reserve covers what is in flight
    seen(40, "200ms", 2.0)
    assert cap.pace(2.0, 10) is None  # room for more than is in flight: no pacing
    # A 429 while the headers are fresh does not override what they say.
    assert not cap.on_429(2.1, accepted=3, retry_after_s=1.0, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(50.0)


def test_a_token_cap_binds_when_it_allows_fewer_calls_than_the_request_cap() -> None:
    cap = CapEstimate()
    limits = RateLimits(Bucket(100, 50, 1.0), Bucket(60_000, 0, 6.0))
    cap.from_headers(limits, 1000, 0.0)  # 10,000 tokens/s at 1,000 tokens a call: 10 calls/s
    assert cap.cap_rps == pytest.approx(10.0)


def test_the_limiter_spaces_starts_at_the_paced_rate_and_keeps_its_concurrency() -> None:
    async def scenario() -> tuple[list[float], int]:
        limiter = AdaptiveLimiter(4)
        limiter.cap.on_429(time.monotonic(), 0, 0.05, 1.0)  # 20/s: 1/(20 * HEADROOM) s apart
        schedule = []
        for _ in range(4):
            await limiter.acquire()
            schedule.append(limiter._next_at)  # noqa: SLF001 - the pacer's own schedule
        blocked = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.2)
        full = limiter.in_flight
        limiter.release(ok=True, latency_s=0.01)
        await blocked
        return schedule, full

    schedule, full = asyncio.run(scenario())
    step = 1 / (20 * HEADROOM)
    gaps = [b - a for a, b in zip(schedule[:-1], schedule[1:], strict=True)]
    assert gaps == pytest.approx([step] * 3)
    assert full == 4  # the fifth waited for a slot, not only for its start time


def test_one_429_while_paced_is_jitter_and_three_lower_the_estimate() -> None:
    cap = CapEstimate()
    cap.started(0.0)
    cap.on_429(0.0, accepted=0, retry_after_s=0.02, rtt_s=0.2)  # 50/s
    # Paced at 49/s, 94 accepted in 2 s (47/s, the client ran late) and one refusal: kept.
    assert not cap.on_429(3.0, accepted=94, retry_after_s=0.02, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(50.0)
    assert not cap.on_429(3.5, accepted=80, retry_after_s=0.02, rtt_s=0.2)
    # A third refusal within the window: the endpoint really allows less.
    assert cap.on_429(4.0, accepted=80, retry_after_s=0.02, rtt_s=0.2)
    assert cap.cap_rps == pytest.approx(40.0)
