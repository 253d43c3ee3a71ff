"""Latency: milliseconds per output token of one answer, and time to first token when streamed.

Measured in the provider adapter around the one successful attempt: queueing, rate-limit
waits and retries are the engine's, not the model's, and are left out.
"""

from __future__ import annotations

from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.providers.base import ChatResult


def latency_score(result: ChatResult | None) -> Score:
    """Wall time of the call / output tokens; NaN when there was no call or no token."""
    if result is None:
        return Score.unscorable("no answer: the call failed")
    if result.output_tokens <= 0:
        return Score.unscorable(f"no output tokens reported ({result.latency_ms:.0f} ms)")
    return Score(result.latency_ms / result.output_tokens,
                 f"{result.latency_ms:.0f} ms for {result.output_tokens} tokens")


def ttft_score(result: ChatResult | None) -> Score:
    """Time to the first streamed token; NaN when the answer was not streamed (LLMOPS_STREAM)."""
    if result is None:
        return Score.unscorable("no answer: the call failed")
    if result.ttft_ms is None:
        return Score.unscorable("not streamed (set LLMOPS_STREAM=on to measure it)")
    return Score(result.ttft_ms, "first content token")
