"""BM25, reciprocal rank fusion and retrieval metrics: golden values computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.promotion.gates import Gates, load_recall_gate
from llmops_pipelines.rag.retrieval import (
    BM25Index,
    by_document,
    first_relevant_rank,
    ranks_frame,
    reciprocal_rank_fusion,
    summarise,
    tokenize,
)

REPO = Path(__file__).resolve().parents[2]


def test_tokenize_drops_stopwords_and_folds_plurals() -> None:
    assert tokenize("How do I charge the Batteries of 2 tents?") == [
        "charge", "battery", "2", "tent"]
    assert tokenize("glass bus axis") == ["glass", "bus", "axis"]  # not plurals


def test_bm25_golden() -> None:
    index = BM25Index(["c1", "c2", "c3"], ["red tent", "blue tent tent", "red boot"],
                      ["d1", "d2", "d3"])
    # N = 3, df(tent) = 2: idf = ln(1 + 1.5 / 2.5) = ln 1.6; avgdl = 7 / 3.
    # c1: tf 1, len 2 -> idf * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / (7/3))) = 0.502294
    # c2: tf 2, len 3 -> idf * 5.0 / (2 + 1.5 * (0.25 + 0.75 * 3 / (7/3))) = 0.614958
    hits = index.search("tent", 5)
    assert [i for i, _ in hits] == [1, 0]  # c3 shares no term: never returned
    assert [round(s, 6) for _, s in hits] == [0.614958, 0.502294]
    assert index.search("tents", 1) == hits[:1]  # the query folds plurals too
    assert index.search("green", 5) == []


def test_bm25_ties_keep_index_order_and_k_limits() -> None:
    index = BM25Index(["a", "b", "c"], ["same words", "same words", "same words"], ["x"] * 3)
    assert [i for i, _ in index.search("words", 2)] == [0, 1]
    assert len(BM25Index([], [], [])) == 0 and BM25Index([], [], []).search("x", 3) == []
    with pytest.raises(ValueError, match="one text and one doc id per chunk id"):
        BM25Index(["a"], ["t", "u"], ["d"])


def test_reciprocal_rank_fusion_golden() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=4)
    # a: 1/61 + 1/62 = 0.032522; c: 1/63 + 1/61 = 0.032266; b: 1/62; d: 1/63.
    assert [i for i, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert reciprocal_rank_fusion([["a"], ["b"]], k=1) == [("a", 1 / 61)]  # tie: first seen


def test_first_relevant_rank() -> None:
    assert first_relevant_rank(["d2", "d1", "d1"], "d1") == 2
    assert first_relevant_rank(["d2"], "d1") is None


def questions(n: int) -> pd.DataFrame:
    return pd.DataFrame({"qa_id": [f"q{i}" for i in range(n)],
                         "doc_id": ["d1", "d1", "d2", "d3"][:n]})


def test_summarise_golden() -> None:
    retrieved = [["d1"], ["x", "x", "d1"], ["x"] * 10, ["x"] * 5 + ["d3"]]  # ranks 1, 3, -, 6
    ranks = ranks_frame(questions(4), retrieved, "vector")
    assert list(ranks["rank"].astype("float").fillna(0)) == [1, 3, 0, 6]
    summary = summarise(ranks, [1, 5, 10], modes=["vector"]).set_index("k")
    assert summary.loc[1, "recall"] == 0.25 and summary.loc[1, "mrr"] == 0.25
    assert summary.loc[5, "recall"] == 0.5
    assert summary.loc[5, "mrr"] == pytest.approx((1 + 1 / 3) / 4)
    assert summary.loc[10, "recall"] == 0.75
    assert summary.loc[10, "mrr"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    assert set(summary["questions"]) == {4}


def test_summarise_without_questions_is_nan_not_zero() -> None:
    summary = summarise(ranks_frame(questions(0), [], "bm25"), [5])
    assert list(summary["mode"]) == ["vector", "bm25", "hybrid"]
    assert summary["recall"].map(math.isnan).all() and set(summary["questions"]) == {0}


def test_by_document_shows_which_documents_fail() -> None:
    ranks = pd.concat([
        ranks_frame(questions(3), [["d1"], ["x"], ["x"]], "vector"),
        ranks_frame(questions(3), [["d1"], ["d1"], ["d2"]], "bm25"),
    ])
    table = by_document(ranks, 5)
    assert list(table.columns) == ["doc_id", "questions", "hit@5 vector", "hit@5 bm25"]
    assert table.to_dict("records") == [
        {"doc_id": "d2", "questions": 1, "hit@5 vector": 0.0, "hit@5 bm25": 1.0},
        {"doc_id": "d1", "questions": 2, "hit@5 vector": 0.5, "hit@5 bm25": 1.0},
    ]


def test_recall_gate_lives_beside_the_promotion_gates(tmp_path: Path) -> None:
    repo_gates = REPO / "assets" / "gates.yaml"
    assert 0 < (load_recall_gate(repo_gates) or 0) <= 1
    # The promotion gates still load, and recall is not a candidate threshold.
    assert "recall_at_5" not in Gates.load(repo_gates).thresholds
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds: {}\n")
    assert load_recall_gate(path) is None
    path.write_text("retrieval:\n  recall_at_5: {min: 1.5}\n")
    with pytest.raises(DataError, match=r"within 0\.\.1.*retrieval\.recall_at_5\.min"):
        load_recall_gate(path)
    path.write_text("retrieval:\n  recall_at_5: 0.5\n")
    with pytest.raises(DataError, match="field 'retrieval.recall_at_5'"):
        load_recall_gate(path)
