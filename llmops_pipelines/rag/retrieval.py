"""Pure retrieval: the Retrieved chunk, a BM25 index, hybrid fusion (RRF), and retrieval metrics.

Relevance is judged by source document: a question is answered from one document, and a
retrieved chunk is relevant when it comes from that document.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MODES = ("vector", "bm25", "hybrid")
RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
TOKEN = re.compile(r"[a-z0-9]+")
# Words that say nothing about which document answers a question.
STOPWORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could",
    "do", "does", "for", "from", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "of", "on", "or", "our", "should", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "was", "we", "what", "when", "where", "which",
    "who", "why", "will", "with", "would", "you", "your"})


@dataclass(frozen=True)
class Retrieved:
    """One retrieved chunk with its cosine similarity to the query (or its BM25/RRF score)."""

    chunk_id: str
    doc_id: str
    text: str
    score: float


def _stem(word: str) -> str:
    """Plural folding only ("batteries" -> "battery", "tents" -> "tent"): safe, and enough here."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric terms without stopwords, plurals folded."""
    return [_stem(t) for t in TOKEN.findall(text.lower()) if t not in STOPWORDS]


class BM25Index:
    """Okapi BM25 over chunk texts (k1 = 1.5, b = 0.75, Lucene's non-negative idf)."""

    def __init__(self, ids: Iterable[str], texts: Iterable[str], doc_ids: Iterable[str],
                 *, k1: float = 1.5, b: float = 0.75) -> None:
        self.ids, self.texts, self.doc_ids = list(ids), list(texts), list(doc_ids)
        if not len(self.ids) == len(self.texts) == len(self.doc_ids):
            raise ValueError("BM25Index needs one text and one doc id per chunk id")
        self.k1 = k1
        docs = [Counter(tokenize(t)) for t in self.texts]
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1.0)) if len(docs) else lengths
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for position, terms in enumerate(docs):
            for term, tf in terms.items():
                postings[term].append((position, tf))
        n = len(docs)
        # Per term: chunk positions and their precomputed BM25 weights, so a query is a few adds.
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, hits in postings.items():
            where = np.array([p for p, _ in hits], dtype=np.int64)
            freq = np.array([f for _, f in hits], dtype=np.float64)
            idf = math.log(1 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
            self._postings[term] = (where, idf * freq * (k1 + 1) / (freq + norm[where]))

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every chunk for one query."""
        total = np.zeros(len(self.ids), dtype=np.float64)
        for term, times in Counter(tokenize(query)).items():
            if term in self._postings:
                where, weight = self._postings[term]
                total[where] += times * weight
        return total

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk position, score) of the top k chunks sharing a term with the query, best first."""
        total = self.scores(query)
        hits = np.flatnonzero(total > 0)
        # Stable sort on -score: ties keep index order, so results are deterministic.
        best = hits[np.argsort(-total[hits], kind="stable")][:k]
        return [(int(i), float(total[i])) for i in best]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int,
                           constant: int = RRF_K) -> list[tuple[str, float]]:
    """Ids ranked by the sum of 1 / (constant + rank) over the rankings; ties by first seen."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (constant + rank)
    order = sorted(scores.items(), key=lambda kv: -kv[1])  # sorted() is stable
    return order[:k]


def lexical_search(lexical: BM25Index, questions: Sequence[str], k: int) -> list[list[Retrieved]]:
    """Top-k chunks per question by BM25 score."""
    return [[Retrieved(lexical.ids[i], lexical.doc_ids[i], lexical.texts[i], score)
             for i, score in lexical.search(q, k)] for q in questions]


def hybrid(dense: Sequence[Sequence[Retrieved]], sparse: Sequence[Sequence[Retrieved]],
           k: int) -> list[list[Retrieved]]:
    """Reciprocal rank fusion of two rankings per question; the score is the fused RRF score."""
    out = []
    for vector_hits, lexical_hits in zip(dense, sparse, strict=True):
        by_id = {r.chunk_id: r for r in [*lexical_hits, *vector_hits]}
        fused = reciprocal_rank_fusion([[r.chunk_id for r in vector_hits],
                                        [r.chunk_id for r in lexical_hits]], k)
        out.append([Retrieved(i, by_id[i].doc_id, by_id[i].text, score) for i, score in fused])
    return out


def first_relevant_rank(retrieved_doc_ids: Sequence[str], source: str) -> int | None:
    """1-based rank of the first chunk from the source document; None if none was retrieved."""
    for rank, doc_id in enumerate(retrieved_doc_ids, start=1):
        if doc_id == source:
            return rank
    return None


def ranks_frame(questions: pd.DataFrame, retrieved: Sequence[Sequence[str]],
                mode: str) -> pd.DataFrame:
    """Per question: its source document and the rank where that document first came back."""
    if len(questions) != len(retrieved):
        raise ValueError(f"{len(questions)} questions but {len(retrieved)} rankings")
    ranks = [first_relevant_rank(docs, source)
             for docs, source in zip(retrieved, questions["doc_id"], strict=True)]
    return pd.DataFrame({"mode": mode, "qa_id": questions["qa_id"].to_numpy(),
                         "doc_id": questions["doc_id"].to_numpy(),
                         "rank": pd.array(ranks, dtype="Int64")})


def _at_k(rank: pd.Series, k: int) -> tuple[pd.Series, pd.Series]:
    hit = rank.le(k).fillna(False).astype(float)
    reciprocal = (1.0 / rank.astype(float)).where(rank.le(k).fillna(False), 0.0)
    return hit, reciprocal


def summarise(ranks: pd.DataFrame, ks: Sequence[int],
              modes: Sequence[str] = MODES) -> pd.DataFrame:
    """recall@k (one source document per question, so it equals hit@k) and MRR@k per mode.

    A mode without questions gets NaN: nothing was measured, which is not a recall of 0.
    """
    rows = []
    for mode in modes:
        group = ranks[ranks["mode"] == mode]
        for k in ks:
            hit, reciprocal = _at_k(group["rank"], k)
            rows.append({"mode": mode, "k": k, "questions": len(group),
                         "recall": float(hit.mean()), "mrr": float(reciprocal.mean())})
    return pd.DataFrame(rows, columns=["mode", "k", "questions", "recall", "mrr"])


def by_document(ranks: pd.DataFrame, k: int) -> pd.DataFrame:
    """Hit rate@k per source document and mode: which documents retrieval fails."""
    hit, reciprocal = _at_k(ranks["rank"], k)
    frame = ranks.assign(hit=hit, rr=reciprocal)
    table = frame.pivot_table(index="doc_id", columns="mode", values="hit", aggfunc="mean")
    modes = [m for m in ranks["mode"].unique()]
    table = table[modes].add_prefix(f"hit@{k} ")
    table.insert(0, "questions", frame[frame["mode"] == modes[0]].groupby("doc_id").size())
    return table.reset_index().sort_values(f"hit@{k} {modes[0]}", kind="stable")
