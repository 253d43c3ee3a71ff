"""What every metric returns: a value with its reason; NaN when it cannot score."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """A metric's verdict on one sample; NaN counts against coverage, never as 0."""

    value: float
    reason: str

    @property
    def scored(self) -> bool:
        return not math.isnan(self.value)

    @classmethod
    def unscorable(cls, reason: str) -> Score:
        return cls(math.nan, reason)
