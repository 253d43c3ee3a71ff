"""The one small protocol every model provider implements: chat, embed, moderate."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmops_pipelines.prompts import Message

__all__ = ["ChatResult", "Message", "ModerationResult", "Provider", "ProviderStats", "l2_normalise"]


@dataclass(frozen=True)
class ChatResult:
    """One completion with the usage and timing the cost and latency metrics need."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    ttft_ms: float | None = None
    finish_reason: str | None = None

    @property
    def ms_per_output_token(self) -> float:
        # A completion with no tokens has no per-token latency: NaN, never a fake 0.
        return self.latency_ms / self.output_tokens if self.output_tokens else math.nan

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatResult:
        return cls(**data)


@dataclass(frozen=True)
class ModerationResult:
    """Whether a text is harmful, which categories fired, and which scorer said so."""

    flagged: bool
    categories: tuple[str, ...] = ()
    source: str = "unknown"


@dataclass
class ProviderStats:
    """Calls made through a provider: tests and benches assert on these, not on timings."""

    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0  # the most chat calls this provider ever ran at once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind: str, items: int = 1) -> None:
        self.calls[kind] += 1
        self.items[kind] += items

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count a call in flight for its duration (peak_in_flight: serialisation is checkable)."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


@runtime_checkable
class Provider(Protocol):
    """What a stage needs from a model provider, local or remote."""

    name: str
    chat_model: str
    embedding_model: str
    stats: ProviderStats
    cache_namespace: str  # what besides model and params decides an answer (endpoint, decoding)

    def chat(self, messages: Sequence[Message], *, model: str | None = None,
             temperature: float = 0.0, max_tokens: int = 256,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        """One chat completion."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        ...

    def moderate(self, texts: Sequence[str]) -> list[ModerationResult]:
        """A harm verdict per text."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so a dot product is a cosine similarity."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
