"""Near-duplicate detection: MinHash over character 5-gram sets, LSH banding, exact Jaccard to confirm.

Character n-grams need no tokenizer, so the same code works for any language or script.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHINGLE = 5
PERMUTATIONS = 128
BANDS = 16  # 16 bands x 8 rows: a pair at Jaccard 0.8 becomes a candidate with p > 0.95
_ROWS = PERMUTATIONS // BANDS
_BLOCK = 8192  # shingles hashed per step, bounding memory for very long documents
_rng = np.random.default_rng(20240601)  # fixed: signatures must be the same in every process
_A = _rng.integers(1, 2**63, PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)
_POWERS = (np.uint64(1_000_003) ** np.arange(SHINGLE, dtype=np.uint64)).astype(np.uint64)
_WS = re.compile(r"\s+")


def shingles(text: str) -> np.ndarray:
    """Sorted unique 64-bit hashes of the casefolded text's character 5-grams."""
    folded = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    codes = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < SHINGLE:
        codes = np.pad(codes, (0, SHINGLE - len(codes)))
    # A polynomial rolling hash; uint64 arithmetic wraps, which is what a hash wants.
    with np.errstate(over="ignore"):
        return np.unique(sliding_window_view(codes, SHINGLE) @ _POWERS)


def signature(grams: np.ndarray) -> np.ndarray:
    """The MinHash signature: per permutation, the minimum of (a*x + b) >> 32 over all shingles."""
    sig = np.full(PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(grams), _BLOCK):
            block = grams[start:start + _BLOCK, None]
            sig = np.minimum(sig, ((block * _A + _B) >> np.uint64(32)).min(axis=0))
    return sig


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique shingle arrays."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter) if len(a) + len(b) else 1.0


@dataclass
class NearDuplicateIndex:
    """The first of each group of near-duplicates; `add` names the earlier text a new one repeats."""

    threshold: float
    _buckets: list[dict[bytes, list[int]]] = field(default_factory=lambda: [{} for _ in range(BANDS)])
    _grams: list[np.ndarray] = field(default_factory=list)
    _signatures: list[np.ndarray] = field(default_factory=list)
    _names: list[str] = field(default_factory=list)

    def add(self, name: str, text: str) -> tuple[str, float] | None:
        """None if text is new (and now indexed), else (name of the earlier text, similarity)."""
        grams = shingles(text)
        sig = signature(grams)
        keys = [sig[i * _ROWS:(i + 1) * _ROWS].tobytes() for i in range(BANDS)]
        candidates = sorted({j for band, key in enumerate(keys)
                             for j in self._buckets[band].get(key, ())})
        if candidates:
            # The signature agreement estimates Jaccard (std. error < 0.05 with 128 permutations):
            # only pairs within 0.15 of the threshold pay for the exact comparison.
            agreement = (np.stack([self._signatures[j] for j in candidates]) == sig).mean(axis=1)
            candidates = [j for j, a in zip(candidates, agreement, strict=True)
                          if a >= self.threshold - 0.15]
        best: tuple[str, float] | None = None
        for j in candidates:
            similarity = jaccard(grams, self._grams[j])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (self._names[j], similarity)
        if best is not None:
            return best
        index = len(self._grams)
        self._grams.append(grams)
        self._signatures.append(sig)
        self._names.append(name)
        for band, key in enumerate(keys):
            self._buckets[band].setdefault(key, []).append(index)
        return None
