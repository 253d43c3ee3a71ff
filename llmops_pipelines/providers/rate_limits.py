"""The x-ratelimit-* response headers OpenAI and Azure send: the endpoint's own account of its cap.

    x-ratelimit-limit-requests: 3000        x-ratelimit-limit-tokens: 250000
    x-ratelimit-remaining-requests: 2999    x-ratelimit-remaining-tokens: 249900
    x-ratelimit-reset-requests: 20ms        x-ratelimit-reset-tokens: 6m0s

A bucket that refills continuously is back at its limit after `reset`, so it refills at
(limit - remaining) / reset per second: the rate a client can keep up for ever.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(raw: str | None) -> float | None:
    """'20ms', '1s', '6m0s', '1h2m3.5s' or a bare number of seconds; None when unreadable."""
    if raw is None:
        return None
    text = raw.strip().lower()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _SCALE[unit] for number, unit in parts)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class Bucket:
    limit: float | None
    remaining: float | None
    reset_s: float | None

    @property
    def refill_per_s(self) -> float | None:
        """The sustained rate the bucket allows, when the headers say enough to know it."""
        if self.limit is None or self.remaining is None or not self.reset_s:
            return None
        used = self.limit - self.remaining
        return used / self.reset_s if used > 0 else None


@dataclass(frozen=True)
class RateLimits:
    """One response's rate-limit headers (requests and tokens), with when they were read."""

    requests: Bucket
    tokens: Bucket
    seen_at: float = field(default_factory=time.monotonic)

    @property
    def present(self) -> bool:
        return any(v is not None for b in (self.requests, self.tokens)
                   for v in (b.limit, b.remaining))


def parse_rate_limits(headers: Mapping[str, str]) -> RateLimits | None:
    """The headers' account of the caps, or None when the endpoint sends none."""
    def bucket(kind: str) -> Bucket:
        return Bucket(_number(headers, f"x-ratelimit-limit-{kind}"),
                      _number(headers, f"x-ratelimit-remaining-{kind}"),
                      duration_s(headers.get(f"x-ratelimit-reset-{kind}")))

    limits = RateLimits(bucket("requests"), bucket("tokens"))
    return limits if limits.present else None
