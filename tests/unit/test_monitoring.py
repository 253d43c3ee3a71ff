"""Monitoring: the production log read by cursor, scored with the offline metrics, checked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.metrics.harm import lexicon_verdict
from llmops_pipelines.monitoring.production import (
    checks,
    load_cursor,
    question_drift,
    sample,
    save_cursor,
    score,
    summarise,
)
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.serving.production_log import ProductionLog, read_since

REPO = Path(__file__).resolve().parents[2]
WORDS = ["tent", "stove", "fuel", "battery", "lamp", "rain", "pitch", "clean", "stock", "price",
         "football", "election", "recipe"]


def embed(texts) -> np.ndarray:
    """Bag of known words, normalised: shared words mean high cosine similarity."""
    vectors = np.array([[t.lower().count(w) for w in WORDS] + [0.01] for t in texts], float)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def moderate(texts):
    return [lexicon_verdict(t) for t in texts]


def exchange(i: int, answer: str, context: str, **extra) -> dict:
    return {"type": "exchange", "id": f"chatcmpl-{i}", "at": 1000.0 + i,
            "question": f"how do I pitch the tent {i}?", "answer": answer,
            "contexts": [{"chunk_id": "c", "doc_id": "tent", "text": context}],
            "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10,
            "latency_ms": 200.0, **extra}


def test_log_is_read_from_the_cursor_and_bad_lines_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = ProductionLog(path)
    log.append(exchange(1, "Pitch the tent.", "Pitch the tent on level ground."))
    first = read_since(path, 0)
    assert [e["id"] for e in first.exchanges] == ["chatcmpl-1"] and first.start == 0
    with path.open("a") as f:
        f.write("not json\n")
        f.write(json.dumps({"type": "feedback", "id": "chatcmpl-1"}) + "\n")  # no rating
        f.write(json.dumps({"type": "mystery"}) + "\n")
    log.append({"type": "feedback", "id": "chatcmpl-1", "at": 1.0, "rating": -1})
    with path.open("a") as f:
        f.write('{"type": "exchange", "id": "half')  # a line still being written
    second = read_since(path, first.end)
    assert [f["rating"] for f in second.feedback] == [-1] and second.exchanges == []
    assert [(r["line"], r["reason"].split(":")[0]) for r in second.rejects] == [
        (2, "not JSON"), (3, "missing fields ['at', 'rating']"), (4, "unknown record type 'mystery'")]
    assert all(r["path"] == str(path) for r in second.rejects)
    assert read_since(path, second.end).end == second.end  # the half line waits
    assert read_since(path, 10**9).start == 0  # a truncated log restarts at its beginning
    assert read_since(tmp_path / "none.jsonl", 0).exchanges == []


def test_cursor_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "m" / "cursor.json"
    assert load_cursor(path) == 0
    save_cursor(path, 1234)
    assert load_cursor(path) == 1234
    path.write_text("{}")
    with pytest.raises(LlmopsError, match="delete it"):
        load_cursor(path)


def test_sample_is_deterministic_and_bounded() -> None:
    items = [{"id": f"chatcmpl-{i}"} for i in range(50)]
    picked = sample(items, 10)
    assert len(picked) == 10 and picked == sample(list(reversed(items)), 10)
    assert sample(items[:3], 10) == items[:3]


def test_score_uses_the_offline_metrics_and_summary_crosses_gates() -> None:
    pricing = Pricing.load(REPO / "assets" / "pricing.yaml")
    grounded = exchange(1, "Pitch the tent on level ground.", "Pitch the tent on level ground.")
    invented = exchange(2, "The stock price is 400 dollars.", "Pitch the tent on level ground.")
    harmful = exchange(3, "Shoot the stove with a weapon.", "Clean the stove when cold.")
    unsampled = exchange(4, "Pitch the tent.", "Pitch the tent.")
    logged = [grounded, invented, harmful, unsampled]
    scored = score(logged, {"chatcmpl-1", "chatcmpl-2", "chatcmpl-3"}, embed, moderate, pricing)
    by_id = scored.set_index("exchange_id")
    assert by_id.loc["chatcmpl-1", "groundedness"] == 1.0
    assert by_id.loc["chatcmpl-2", "groundedness"] == 0.0
    assert "unsupported: 'The stock price is 400 dollars.'" in \
        by_id.loc["chatcmpl-2", "groundedness_reason"]
    assert by_id.loc["chatcmpl-3", "harm"] == 1.0
    assert math.isnan(by_id.loc["chatcmpl-4", "groundedness"]) and not by_id.loc["chatcmpl-4",
                                                                                  "sampled"]
    # Latency and cost for every exchange: 200 ms / 10 tokens, gpt-4o-mini prices.
    assert (scored["ms_per_output_token"] == 20.0).all()
    assert by_id.loc["chatcmpl-4", "cost_usd"] == pytest.approx((100 * 0.15 + 10 * 0.60) / 1e6)

    drift = question_drift([e["question"] for e in logged], ["how to pitch a tent"], embed)
    summary = summarise(scored, [{"rating": 1}, {"rating": -1}, {"rating": -1}], drift)
    assert summary["exchanges"] == 4 and summary["scored"] == 3
    assert summary["harm_rate"] == pytest.approx(1 / 3)
    assert summary["negative_feedback_rate"] == pytest.approx(2 / 3)
    verdicts = {c.metric: c for c in checks(summary, Gates.load(REPO / "assets" / "gates.yaml"))}
    assert not verdicts["harm_rate"].passed and "crosses its gate (needs <= 0.05)" in \
        verdicts["harm_rate"].description
    assert not verdicts["negative_feedback_rate"].passed
    assert verdicts["question_drift"].passed and verdicts["latency_p95_ms_per_token"].passed


def test_drift_is_small_for_in_domain_and_large_for_off_topic_questions() -> None:
    reference = ["how do I pitch the tent", "which fuel does the stove take", "lamp battery"]
    near = question_drift(["pitch the tent in rain", "stove fuel"], reference, embed)
    far = question_drift(["football election results", "a recipe for the election"], reference,
                         embed)
    assert near < 0.35 < far
    assert math.isnan(question_drift([], reference, embed))


def test_no_traffic_cannot_fail_a_check() -> None:
    summary = summarise(score([], set(), embed, moderate, Pricing({}, {})), [], math.nan)
    verdicts = checks(summary, Gates.load(REPO / "assets" / "gates.yaml"))
    assert len(verdicts) == 6 and all(v.passed for v in verdicts)
    assert all("not measured" in v.description for v in verdicts)


def test_one_in_domain_question_is_not_drift_but_one_off_topic_question_is() -> None:
    # A single question sits far from any mean: the window is held against same-size samples
    # of the eval questions, so a small window of ordinary traffic does not page anyone.
    reference = ["how do I pitch the tent", "which fuel does the stove take", "lamp battery",
                 "tent pegs in sand", "stove fuel canister size", "lamp brightness modes"]
    one_in = question_drift(["how do I pitch the tent in wind"], reference, embed)
    one_out = question_drift(["football election results tonight"], reference, embed)
    assert one_in < 0.35 < one_out
