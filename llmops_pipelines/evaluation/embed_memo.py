"""Embeddings memoised per text, primed in one batch: per-row metrics make no per-row calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np


class EmbeddingMemo:
    """Wraps an embed function; `prime` embeds every new text in one batched call."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def prime(self, texts: Iterable[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, self._embed(missing), strict=True):
                self._vectors[text] = vector

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.prime(texts)
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 0))
