"""The run's budget: estimate before any call, reserve before each call, stop before the cap.

Each call reserves its worst case (prompt tokens estimated from the rendered messages, the
answer at its max_tokens) before it starts, and settles at its real usage when it returns, so
spend + reservations never pass LLMOPS_MAX_COST_USD: the run stops instead, keeping every
finished row (cached, and written as partial results).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmops_pipelines.errors import BudgetExceededError
from llmops_pipelines.evaluation.metrics.cost import Price
from llmops_pipelines.providers.base import Message

# About four characters per token for English text with the common BPE tokenizers; each
# chat message adds a few tokens of framing.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_input_tokens(messages: Sequence[Message]) -> int:
    """Prompt tokens a chat call will be billed for, estimated from the rendered text."""
    return sum(len(m.get("content") or "") // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE
               for m in messages)


@dataclass(frozen=True)
class CallEstimate:
    input_tokens: int
    output_tokens: int
    usd: float

    @classmethod
    def of(cls, messages: Sequence[Message], max_tokens: int, price: Price) -> CallEstimate:
        tokens = estimate_input_tokens(messages)
        return cls(tokens, max_tokens, price.cost(tokens, max_tokens))


class BudgetStop(Exception):
    """Raised inside the engine when a call would cross the cap; the engine winds down on it."""


class Budget:
    """Spend so far, reservations of calls in flight, and the cap (None: no cap)."""

    def __init__(self, cap_usd: float | None) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.stopped: str | None = None  # why the run stopped, once it has

    def reserve(self, usd: float, what: str) -> None:
        """Hold `usd` for a call about to start, or stop the run if that would pass the cap."""
        if self.stopped:
            raise BudgetStop(self.stopped)
        if self.cap_usd is not None and self.spent_usd + self.reserved_usd + usd > self.cap_usd:
            would = self.spent_usd + self.reserved_usd + usd
            self.stopped = (f"{what} could take spend to ${would:.6f}, over LLMOPS_MAX_COST_USD="
                            f"${self.cap_usd:g} (spent ${self.spent_usd:.6f} so far)")
            raise BudgetStop(self.stopped)
        self.reserved_usd += usd

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Replace a call's reservation with what it really cost (0 for a failed call)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.spent_usd += actual_usd


def exceeded(reason: str, estimate_usd: float, done: int, total: int,
             partial_path: str | None) -> BudgetExceededError:
    """The error a stopped run raises: what happened, what was kept, what to change."""
    kept = f"; partial results in {partial_path}" if partial_path else ""
    return BudgetExceededError(
        f"evaluation stopped before the budget was exceeded: {reason}. The whole run was "
        f"estimated at ${estimate_usd:.6f}. {done} of {total} rows finished and are cached, so a "
        f"re-run does not pay for them again{kept}. Raise LLMOPS_MAX_COST_USD (or unset it), or "
        "evaluate fewer rows with LLMOPS_EVAL_LIMIT.")
