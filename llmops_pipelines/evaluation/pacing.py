"""The endpoint's request cap as the limiter knows it: from x-ratelimit-* headers or from its 429s.

Without headers, the cap is the rate of calls the endpoint accepted over the last seconds while
it refused others (a bucket that refuses has no reserve left, so what passes is its refill
rate); before any call returned, a token bucket's Retry-After (the time to its next token) is
the first guess. The pace is a little under the estimate, and creeps up while no 429 comes,
so a cap that was under-estimated or raised is found again.
"""

from __future__ import annotations

import math
from collections import deque

from llmops_pipelines.providers.rate_limits import RateLimits

HEADROOM = 0.98  # pace this far under a cap measured from 429s: jitter then rarely hits it
PROBE_PER_S = 0.01  # the pace grows this much per second without a 429 ...
HOLD_S = 3.0  # ... once this long has passed since the last one
MAX_PROBE = 1.25
WINDOW_S = 2.0  # accepted calls counted over this long to measure the cap
HEADERS_FRESH_S = 5.0  # headers older than this no longer describe the bucket
LOWER_AFTER = 3  # 429s within the window before a paced estimate may go down
RESERVE = 1  # requests left (headers) under which the pace drops just below the cap
HEADERS_HEADROOM = 0.99  # the headers say the cap exactly: only jitter to leave room for


class CapEstimate:
    """Requests per second the endpoint sustains, and the pace to start calls at now."""

    def __init__(self, ceiling_rps: float | None = None) -> None:
        self.cap_rps: float | None = None
        # A limit declared for the endpoint (models.yaml rate_limit_rps): never paced above.
        self.ceiling_rps = ceiling_rps
        self.source = "none"  # "429" (measured) or "headers" (the endpoint said so)
        self.window_s = WINDOW_S
        self._first_done: float | None = None
        self._last_429 = -math.inf
        self._last_estimate = -math.inf
        self._headers_at = -math.inf
        self._remaining: float | None = None
        self._tokens_per_call = 0.0
        self._refused: deque[float] = deque()  # 429 times over the last window, while paced

    def started(self, now: float) -> None:
        """Note the first accepted call: the measuring window cannot reach back before it."""
        if self._first_done is None:
            self._first_done = now

    def pace(self, now: float, in_flight: int) -> float | None:
        """Calls per second to start at now; None: no cap known, or room for a burst."""
        measured = self._pace(now, in_flight)
        if self.ceiling_rps is None:
            return measured
        return self.ceiling_rps if measured is None else min(measured, self.ceiling_rps)

    def _pace(self, now: float, in_flight: int) -> float | None:
        if self.cap_rps is None:
            return None
        if self.source == "headers" and now - self._headers_at < HEADERS_FRESH_S:
            remaining = self._remaining
            if remaining is not None and remaining > 2 * in_flight + 2:
                return None  # the bucket holds more than is in flight: no reason to wait
            if remaining is not None and remaining >= RESERVE:
                # Sending at the cap keeps the reserve where it is: the calls in flight took
                # their tokens when they arrived, and as many came back meanwhile.
                return self.cap_rps
            return self.cap_rps * HEADERS_HEADROOM
        probe = 1 + PROBE_PER_S * max(0.0, now - self._last_429 - HOLD_S)
        return self.cap_rps * HEADROOM * min(probe, MAX_PROBE)

    def on_429(self, now: float, accepted: int, retry_after_s: float | None,
               rtt_s: float) -> bool:
        """Re-measure the cap on a 429 (once per round trip); True when the estimate changed."""
        self._last_429 = now
        if self.source == "headers" and now - self._headers_at < HEADERS_FRESH_S:
            return False  # the headers of this very response update the cap
        if now - self._last_estimate < min(rtt_s, 1.0):
            return False  # 429s of one overshoot are one signal
        span = min(self.window_s, now - self._first_done) if self._first_done is not None else 0.0
        if span >= 0.5 and accepted >= 5:
            estimate = accepted / span
        elif retry_after_s:
            estimate = 1.0 / max(retry_after_s, 1e-3)
        elif self.cap_rps is not None:
            estimate = self.cap_rps / 2
        else:
            return False  # nothing to measure yet: Retry-After and backoff carry the calls
        if self.cap_rps is not None and self.source == "429":
            # Accepted calls cannot show more than the pace sent: a 429 at the pace is a cap under it.
            estimate = min(estimate, self.cap_rps * 1.5)
            self._refused.append(now)
            while self._refused and self._refused[0] < now - self.window_s:
                self._refused.popleft()
            if estimate < self.cap_rps and len(self._refused) < LOWER_AFTER:
                # One refusal while pacing is jitter (calls arriving together at an emptied
                # bucket), not a lower cap: what was accepted is only what we sent.
                return False
        self.cap_rps, self.source, self._last_estimate = estimate, "429", now
        return True

    def from_headers(self, limits: RateLimits, tokens: int, now: float) -> None:
        """Take the cap (the buckets' refill rates) and the reserve from rate-limit headers."""
        requests, token_bucket = limits.requests, limits.tokens
        if tokens > 0:
            self._tokens_per_call = (tokens if not self._tokens_per_call
                                     else 0.9 * self._tokens_per_call + 0.1 * tokens)
        caps, reserves = [], []
        if (rate := requests.refill_per_s) is not None:
            caps.append(rate)
        if requests.remaining is not None:
            reserves.append(requests.remaining)
        per_call = self._tokens_per_call
        if per_call > 0:
            if (rate := token_bucket.refill_per_s) is not None:
                caps.append(rate / per_call)
            if token_bucket.remaining is not None:
                reserves.append(token_bucket.remaining / per_call)
        if not caps and not reserves:
            return
        if caps:
            self.cap_rps = min(caps)
        self.source, self._headers_at = "headers", now
        self._remaining = min(reserves) if reserves else None
