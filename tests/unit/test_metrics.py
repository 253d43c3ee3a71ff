"""Metrics: golden values computed by hand, and NaN (never 0) for what cannot be scored."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.errors import DataError, ProviderError
from llmops_pipelines.evaluation.aggregate import bootstrap_ci, summarise
from llmops_pipelines.evaluation.embed_memo import MicroBatcher
from llmops_pipelines.evaluation.metrics.cost import Price, Pricing, cost_score
from llmops_pipelines.evaluation.metrics.groundedness import METHOD as LOCAL_GROUNDEDNESS
from llmops_pipelines.evaluation.metrics.groundedness import groundedness
from llmops_pipelines.evaluation.metrics.harm import LEXICON_SOURCE, harm_score, lexicon_verdict
from llmops_pipelines.evaluation.metrics.latency import latency_score, ttft_score
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.evaluation.metrics.quality import (
    answer_relevance,
    answer_similarity,
    combine,
    cosine,
    judge_score,
    token_f1,
)
from llmops_pipelines.evaluation.metrics.text import is_abstention, numbers, sentences, squad_tokens
from llmops_pipelines.evaluation.scoring import RowInput, Scorers, score_row, unscored
from llmops_pipelines.providers.base import ChatResult, ModerationResult
from llmops_pipelines.schemas import EVALUATION_ROWS, EVALUATION_SUMMARY

REPO = Path(__file__).resolve().parents[2]
PRICING = REPO / "assets" / "pricing.yaml"


# ---------------------------------------------------------------- text helpers

def test_squad_tokens_drop_case_punctuation_and_articles() -> None:
    assert squad_tokens("The battery, an 'A' grade, holds 625 Wh!") == [
        "battery", "grade", "holds", "625", "wh"]
    assert squad_tokens("") == []


def test_sentences_and_numbers() -> None:
    assert sentences("It takes 4.5 hours. Done!\n- Use the cable\nOk") == [
        "It takes 4.5 hours.", "Use the cable"]
    assert numbers("It costs 1,200 USD, weighs 3.2 kg and has 2 modes.") == {"1200", "3.2", "2"}


def test_abstention() -> None:
    assert is_abstention("I don't know.")
    assert is_abstention("That is not mentioned in the articles.")
    assert not is_abstention("The battery holds 625 Wh.")
    assert not is_abstention("I don't know " + "word " * 30)  # long answers are not abstentions


# ---------------------------------------------------------------- quality

def test_token_f1_articles_are_dropped() -> None:
    score = token_f1("the battery holds 625 Wh", "battery holds 625 Wh")
    assert score.value == 1.0
    assert score.reason == "precision 1.00, recall 1.00"


def test_token_f1_partial_overlap_golden() -> None:
    # pred: battery holds 500 wh of energy (6); truth: battery holds 625 wh (4); common 3.
    # P = 3/6, R = 3/4, F1 = 2 * 0.5 * 0.75 / 1.25 = 0.6
    score = token_f1("The battery holds 500 Wh of energy.", "battery holds 625 Wh")
    assert score.value == pytest.approx(0.6, abs=1e-12)
    assert score.reason == "precision 0.50, recall 0.75"


def test_token_f1_counts_repeated_tokens_once_each() -> None:
    # pred wh x3, truth wh x1 + 625: common 1, P = 1/3, R = 1/2, F1 = (1/3) / (5/6) = 0.4
    assert token_f1("Wh wh WH", "wh 625").value == pytest.approx(0.4, abs=1e-12)


def test_token_f1_no_overlap_is_zero_with_reason() -> None:
    score = token_f1("Tents sleep four.", "battery holds 625 Wh")
    assert score.value == 0.0
    assert score.scored
    assert "no token shared" in score.reason


def test_token_f1_empty_answer_is_zero_with_reason() -> None:
    score = token_f1("", "battery holds 625 Wh")
    assert score.value == 0.0
    assert score.scored
    assert score.reason == "empty answer"
    assert token_f1("the a an ...", "battery").value == 0.0


@pytest.mark.parametrize("truth", [None, ""])
def test_token_f1_without_ground_truth_is_nan(truth: str | None) -> None:
    score = token_f1("The battery holds 625 Wh.", truth)
    assert math.isnan(score.value)
    assert not score.scored
    assert "no ground truth" in score.reason


def test_cosine_clips_to_unit_interval() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    assert cosine(a, np.array([0.6, 0.8], dtype=np.float32)) == pytest.approx(0.6)
    assert cosine(a, -a) == 0.0


def test_combine_means_f1_and_similarity() -> None:
    score = combine(Score(0.6, "f1"), Score(0.8, "sim"))
    assert score.value == pytest.approx(0.7)
    assert score.reason == "mean of token F1 0.60 and similarity 0.80"


def test_combine_prefers_a_scored_judge() -> None:
    score = combine(Score(0.6, "f1"), Score(0.8, "sim"), Score(0.25, "too vague"))
    assert score.value == 0.25
    assert score.reason == "judge: too vague"
    # An unscorable judge falls back to the mean.
    fallback = combine(Score(0.6, "f1"), Score(0.8, "sim"), Score.unscorable("bad reply"))
    assert fallback.value == pytest.approx(0.7)


def test_combine_with_one_or_no_signal() -> None:
    one = combine(Score.unscorable("no ground truth"), Score(0.8, "sim"))
    assert one.value == 0.8
    assert one.reason == "one signal only"
    none = combine(Score.unscorable("no ground truth"), Score.unscorable("no ground truth"))
    assert not none.scored
    assert none.reason == "no ground truth"


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"score": 5}', 1.0),
    ('{"score": 1, "reason": "wrong"}', 0.0),
    ('{"score": 3}', 0.5),
    ('{"score": "4"}', 0.75),
])
def test_judge_score_maps_1_to_5_onto_0_to_1(raw: str, expected: float) -> None:
    assert judge_score(raw).value == expected


def test_judge_score_keeps_the_reason() -> None:
    assert judge_score('{"score": 4, "reason": "minor omission"}').reason == "minor omission"


@pytest.mark.parametrize("raw", [
    "The answer is good, 5/5.",
    '{"grade": 5}',
    '{"score": null}',
    '{"score": 0}',
    '{"score": 6}',
    '{"score": NaN}',
    "[5]",
    "5",
    "",
])
def test_judge_score_bad_reply_is_nan(raw: str) -> None:
    score = judge_score(raw)
    assert math.isnan(score.value)
    assert not score.scored
    assert "judge" in score.reason


# ---------------------------------------------------------------- groundedness

def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A deterministic embedder: tokens hashed into 256 buckets, L2-normalised."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for token in re.findall(r"\w+", text.lower()):
            out[i, int(hashlib.sha256(token.encode()).hexdigest(), 16) % 256] += 1.0
        norm = np.linalg.norm(out[i])
        if norm:
            out[i] /= norm
    return out


CONTEXTS = ["The battery holds 625 Wh. A full charge takes 4.5 hours.",
            "Store the station at 50 percent charge."]


def test_bag_of_words_embedder_is_normalised_and_deterministic() -> None:
    vectors = bag_of_words(["The battery holds 625 Wh.", "the BATTERY holds 625 wh"])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0)


def test_supported_sentence_is_grounded() -> None:
    score = groundedness("The battery holds 625 Wh.", CONTEXTS, bag_of_words)
    assert score.value == 1.0
    assert score.reason == "1/1 sentences supported"


def test_number_missing_from_context_is_unsupported() -> None:
    # The words match the context closely, but 700 appears nowhere in it.
    score = groundedness("The battery holds 700 Wh.", CONTEXTS, bag_of_words)
    assert score.value == 0.0
    assert "contradicts [context#1]: '625 Wh' (the answer says '700 Wh')" in score.reason
    before = groundedness("The battery holds 700 Wh.", CONTEXTS, bag_of_words, claim_checks=False)
    assert (before.value, "numbers ['700'] not in context" in before.reason) == (0.0, True)


def test_partly_supported_answer_golden() -> None:
    answer = "The battery holds 625 Wh. Penguins enjoy jazz music greatly."
    score = groundedness(answer, CONTEXTS, bag_of_words)
    assert score.value == 0.5
    assert score.reason.startswith("1/2 sentences supported; unsupported: 'Penguins")


def test_abstention_is_grounded() -> None:
    score = groundedness("I don't know.", CONTEXTS, bag_of_words)
    assert score.value == 1.0
    assert "abstained" in score.reason


@pytest.mark.parametrize("answer", ["", "   \n"])
def test_empty_answer_is_unscorable(answer: str) -> None:
    score = groundedness(answer, CONTEXTS, bag_of_words)
    assert math.isnan(score.value)
    assert "empty answer" in score.reason


def test_no_context_supports_nothing() -> None:
    score = groundedness("The battery holds 625 Wh.", [], bag_of_words)
    assert score.value == 0.0
    assert score.scored
    assert "no context" in score.reason


def test_threshold_is_respected() -> None:
    # 4 of 5 words shared with a context sentence: cosine 0.8.
    answer = "The battery holds 625 Wh kWh."
    assert groundedness(answer, CONTEXTS, bag_of_words, threshold=0.6).value == 1.0
    strict = groundedness(answer, CONTEXTS, bag_of_words, threshold=0.95, claim_checks=False)
    assert strict.value == 0.0
    assert "best match" in strict.reason
    # With claim checks, a claim made of the context's own words (4 of 5) is supported by
    # those words even below the cosine threshold; the checks then apply to it.
    assert groundedness(answer, CONTEXTS, bag_of_words, threshold=0.95).value == 1.0
    unrelated = groundedness("Penguins enjoy jazz.", CONTEXTS, bag_of_words, threshold=0.95)
    assert unrelated.value == 0.0 and "best match" in unrelated.reason


# ---------------------------------------------------------------- harm

def test_lexicon_flags_violence() -> None:
    verdict = lexicon_verdict("If the neighbour complains, kill him with a weapon.")
    assert verdict.flagged
    assert verdict.categories == ("violence",)
    assert verdict.source == LEXICON_SOURCE


def test_lexicon_passes_a_benign_support_answer() -> None:
    verdict = lexicon_verdict("Charge the battery for 4.5 hours with the supplied cable; "
                              "to troubleshoot, hold the reset button for 10 seconds.")
    assert not verdict.flagged
    assert verdict.categories == ()


def test_lexicon_reports_every_category_sorted() -> None:
    verdict = lexicon_verdict("Shut up, or I will SHOOT.")
    assert verdict.categories == ("harassment", "violence")


def test_harm_score_values() -> None:
    flagged = harm_score(lexicon_verdict("kill"), "kill")
    assert flagged.value == 1.0
    assert flagged.reason == f"flagged by {LEXICON_SOURCE}: violence"
    clean = harm_score(ModerationResult(False, (), "openai-moderation"), "Fine answer.")
    assert clean.value == 0.0
    assert clean.reason == "clean per openai-moderation"


def test_harm_score_without_answer_is_nan() -> None:
    assert math.isnan(harm_score(lexicon_verdict(""), None).value)
    assert math.isnan(harm_score(None, "an answer").value)
    assert "no answer" in harm_score(None, None).reason


# ---------------------------------------------------------------- cost

def test_shipped_pricing_gpt_4o_mini_golden() -> None:
    pricing = Pricing.load(PRICING)
    # (1000 x 0.15 + 500 x 0.60) / 1e6 = (150 + 300) / 1e6
    assert pricing.price("gpt-4o-mini").cost(1000, 500) == pytest.approx(0.00045, rel=1e-12)
    assert pricing.price("gpt-4o").cost(2_000_000, 1_000_000) == pytest.approx(15.0, rel=1e-12)
    assert pricing.price("smollm2-135m-instruct").cost(10_000, 10_000) == 0.0


def test_fine_tuned_model_priced_via_prefix() -> None:
    pricing = Pricing.load(PRICING)
    ft = pricing.price("ft:gpt-4o-mini-2024-07-18:contoso::abc123")
    assert ft == pricing.price("gpt-4o-mini") == Price(0.15, 0.60)
    assert pricing.price("local-ft:tents-2").cost(1000, 1000) == 0.0


def test_unknown_model_is_an_error_naming_it() -> None:
    pricing = Pricing.load(PRICING)
    with pytest.raises(DataError) as err:
        pricing.price("claude-haiku")
    assert "claude-haiku" in str(err.value)
    assert err.value.field == "models"
    assert "pricing.yaml" in str(err.value)
    # A fine-tune of an unpriced base is not silently priced by a shorter name.
    with pytest.raises(DataError, match="ft:gpt-3.5-turbo:x"):
        pricing.price("ft:gpt-3.5-turbo:x")


def test_unknown_model_error_names_the_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  m: {input: 1, output: 2}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Pricing.load(path).price("other")
    assert err.value.path == str(path)
    assert str(err.value).startswith(f"{path}: model 'other' has no price")


def test_longest_prefix_wins_whatever_the_order(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  gpt-4o: {input: 2.5, output: 10}\n"
        "  gpt-4o-mini: {input: 0.15, output: 0.6}\n"
        "prefixes:\n"
        "  'ft:gpt-4o': gpt-4o\n"
        "  'ft:gpt-4o-mini': gpt-4o-mini\n", encoding="utf-8")
    pricing = Pricing.load(path)
    assert pricing.price("ft:gpt-4o-mini:org::1") == Price(0.15, 0.6)
    assert pricing.price("ft:gpt-4o:org::1") == Price(2.5, 10.0)


def test_bad_price_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  m: {input: 1}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Pricing.load(path)
    assert str(path) in str(err.value)
    assert err.value.field == "models.m"
    assert "(field 'models.m')" in str(err.value)


def test_unparseable_price_table_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models: [unclosed\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Pricing.load(path)
    assert str(err.value).startswith(f"{path}: cannot read price table")


# ---------------------------------------------------------------- aggregate

def _row(candidate: str, i: int, **values) -> dict:
    row = {name: None for name in EVALUATION_ROWS.names}
    row.update({
        "row_id": f"{candidate}-{i}", "candidate_id": candidate, "qa_id": f"q{i}",
        "prompt_name": "grounded_concise", "prompt_version": "v1", "model": "gpt-4o-mini",
        "question": f"question {i}?", "ground_truth": f"truth {i}", "answer": f"answer {i}",
        "context_ids": [f"c{i}"], "context_doc_ids": [f"d{i}"], "source_doc_retrieved": True,
        "token_f1": 0.5, "answer_similarity": 0.5, "quality_reason": "r",
        "groundedness_reason": "r", "harm_categories": "clean", "harm_source": LEXICON_SOURCE,
        "input_tokens": 100, "output_tokens": 10, "latency_ms": 100.0, "error": None,
        "cached": False, "data_version": "dv", "index_version": "iv",
    })
    row.update(values)
    return row


def _rows() -> pd.DataFrame:
    nan = math.nan
    rows = [
        _row("c1", 0, quality=0.8, groundedness=1.0, harm=0.0, cost_usd=0.001,
             ms_per_output_token=10.0),
        _row("c1", 1, quality=0.6, groundedness=0.5, harm=0.0, cost_usd=0.002,
             ms_per_output_token=20.0),
        # The provider timed out: no answer, every metric NaN.
        _row("c1", 2, answer=None, quality=nan, groundedness=nan, harm=nan, cost_usd=nan,
             ms_per_output_token=nan, input_tokens=0, output_tokens=0, error="timeout"),
        _row("c1", 3, quality=1.0, groundedness=1.0, harm=1.0, cost_usd=0.003,
             ms_per_output_token=40.0),
        _row("c1", 4, quality=0.4, groundedness=0.5, harm=0.0, cost_usd=0.002,
             ms_per_output_token=100.0),
        _row("b2", 0, quality=0.5, groundedness=0.9, harm=0.0, cost_usd=0.0,
             ms_per_output_token=5.0, model="smollm2-135m-instruct"),
        _row("b2", 1, quality=0.5, groundedness=0.7, harm=0.0, cost_usd=0.0,
             ms_per_output_token=5.0, model="smollm2-135m-instruct"),
    ]
    frame = pd.DataFrame(rows, columns=EVALUATION_ROWS.names)
    assert list(frame.columns) == EVALUATION_ROWS.names
    return frame


def test_summarise_golden() -> None:
    summary = summarise(_rows())
    assert list(summary.columns) == EVALUATION_SUMMARY.names
    assert list(summary["candidate_id"]) == ["b2", "c1"]  # sorted by candidate
    c1 = summary.set_index("candidate_id").loc["c1"]
    assert c1["rows"] == 5
    assert c1["coverage"] == pytest.approx(0.8)  # 4 of 5 rows scored on every metric
    # The unscorable row is left out of the mean, not counted as 0 (that would be 0.56).
    assert c1["quality"] == pytest.approx((0.8 + 0.6 + 1.0 + 0.4) / 4)
    assert c1["groundedness"] == pytest.approx(0.75)
    assert c1["harm_rate"] == pytest.approx(0.25)
    assert c1["cost_usd"] == pytest.approx(0.008)
    # 0.008 USD over 4 answers = 0.002 per answer = 2.0 per 1000 answers.
    assert c1["cost_per_1k_answers_usd"] == pytest.approx(2.0)
    assert c1["latency_ms_per_token"] == pytest.approx(42.5)
    # Linear interpolation over [10, 20, 40, 100]: p50 at 1.5 -> 30, p95 at 2.85 -> 91.
    assert c1["latency_p50_ms_per_token"] == pytest.approx(30.0)
    assert c1["latency_p95_ms_per_token"] == pytest.approx(91.0)
    assert c1["errors"] == 1
    assert c1["model"] == "gpt-4o-mini"
    assert c1["quality_ci_low"] <= c1["quality"] <= c1["quality_ci_high"]
    assert c1["groundedness_ci_low"] <= c1["groundedness"] <= c1["groundedness_ci_high"]

    b2 = summary.set_index("candidate_id").loc["b2"]
    assert (b2["rows"], b2["coverage"], b2["errors"]) == (2, 1.0, 0)
    assert b2["quality"] == 0.5
    assert (b2["quality_ci_low"], b2["quality_ci_high"]) == (0.5, 0.5)
    assert b2["cost_per_1k_answers_usd"] == 0.0
    assert b2["model"] == "smollm2-135m-instruct"


def test_summarise_candidate_without_answers() -> None:
    frame = _rows()
    frame = frame[(frame["candidate_id"] == "c1") & (frame["qa_id"] == "q2")]
    row = summarise(frame).iloc[0]
    assert row["coverage"] == 0.0
    assert math.isnan(row["quality"])
    assert math.isnan(row["cost_per_1k_answers_usd"])
    assert math.isnan(row["latency_p95_ms_per_token"])
    assert row["errors"] == 1


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean() -> None:
    values = np.array([0.1, 0.9, 0.4, 0.7, 0.3, 1.0, 0.0, 0.6, math.nan])
    low, high = bootstrap_ci(values)
    assert (low, high) == bootstrap_ci(values.copy())
    assert (low, high) == bootstrap_ci(values, seed=0, samples=1000)
    mean = float(np.nanmean(values))
    assert 0.0 <= low < mean < high <= 1.0
    # Wider than nothing, narrower than the data's own range.
    assert high - low < 1.0


def test_bootstrap_ci_needs_two_values() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([0.5])))
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([0.5, math.nan])))
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([], dtype=float)))


# ---------------------------------------------------------------- latency and cost per row

def _result(**values) -> ChatResult:
    base = {"text": "It takes 4.5 hours.", "model": "gpt-4o-mini", "input_tokens": 120,
            "output_tokens": 8, "latency_ms": 400.0}
    return ChatResult(**{**base, **values})


def test_latency_per_output_token_golden() -> None:
    score = latency_score(_result())
    assert score.value == pytest.approx(50.0)  # 400 ms / 8 tokens
    assert score.reason == "400 ms for 8 tokens"


@pytest.mark.parametrize("result, reason", [
    (None, "no answer: the call failed"),
    (_result(output_tokens=0), "no output tokens reported (400 ms)"),
])
def test_latency_unscorable_is_nan_with_reason(result, reason: str) -> None:
    score = latency_score(result)
    assert math.isnan(score.value) and score.reason == reason


def test_time_to_first_token_only_when_streamed() -> None:
    assert ttft_score(_result(ttft_ms=120.0)).value == 120.0
    unstreamed = ttft_score(_result())
    assert math.isnan(unstreamed.value) and "LLMOPS_STREAM" in unstreamed.reason


def test_cost_score_golden_and_failed_call() -> None:
    pricing = Pricing.load(PRICING)
    cost = cost_score(pricing, "gpt-4o-mini", _result())
    # 120 x 0.15 + 8 x 0.60 = 22.8 USD per 1M tokens.
    assert cost.value == pytest.approx(22.8e-6)
    assert "120 in + 8 out tokens at gpt-4o-mini" in cost.reason
    # A dated name the table lacks is priced as the requested model.
    dated = cost_score(pricing, "gpt-4o-mini", _result(model="gpt-4o-mini-2099-01-01"))
    assert dated.value == pytest.approx(22.8e-6)
    failed = cost_score(pricing, "gpt-4o-mini", None)
    assert math.isnan(failed.value) and "nothing was billed" in failed.reason


def test_similarity_and_relevance_golden_and_unscorable() -> None:
    answer, truth, question = bag_of_words(["charge takes hours", "charge takes hours",
                                            "unrelated words entirely"])
    assert answer_similarity(answer, truth).value == pytest.approx(1.0)
    assert answer_relevance(answer, question).value == pytest.approx(0.0)
    missing = answer_similarity(answer, None)
    assert math.isnan(missing.value) and missing.reason == "no ground truth for this question"
    assert math.isnan(answer_relevance(None, question).value)


# ---------------------------------------------------------------- one whole row, scored

def _scorers(embed=None) -> Scorers:
    async def vectors(texts: list[str]) -> np.ndarray:
        return (embed or bag_of_words)(texts)

    async def moderate(texts: list[str]) -> list[ModerationResult]:
        return [lexicon_verdict(t) for t in texts]

    return Scorers(MicroBatcher(vectors), MicroBatcher(moderate))


def _score(answer: str, ground_truth: str | None = "A full charge takes 4.5 hours.",
           scorers: Scorers | None = None) -> tuple[dict, bool]:
    row = RowInput("How long does a full charge take?", ground_truth, answer,
                   [("manual", c) for c in CONTEXTS])
    return asyncio.run(score_row(row, scorers or _scorers()))


def test_score_row_golden() -> None:
    metrics, complete = _score("A full charge takes 4.5 hours.")
    assert complete
    # Identical to the ground truth: token F1 1, similarity 1, quality their mean.
    assert metrics["token_f1"] == pytest.approx(1.0)
    assert metrics["answer_similarity"] == pytest.approx(1.0)
    assert metrics["quality"] == pytest.approx(1.0)
    assert metrics["groundedness"] == pytest.approx(1.0)
    assert metrics["groundedness_reason"] == "1/1 sentences supported"
    assert metrics["groundedness_source"] == LOCAL_GROUNDEDNESS == "local-heuristic-claims-v1"
    assert (metrics["harm"], metrics["harm_source"]) == (0.0, LEXICON_SOURCE)
    # No judge configured: judge columns are NaN, not 0.
    assert math.isnan(metrics["quality_judge"]) and math.isnan(metrics["quality_judge_spread"])


def test_score_row_half_grounded_answer_golden() -> None:
    metrics, _ = _score("A full charge takes 4.5 hours. It also ships with 3 free batteries.")
    assert metrics["groundedness"] == pytest.approx(0.5)
    assert "unsupported: 'It also ships with 3 free batteries.'" in metrics["groundedness_reason"]


def test_unscorable_row_is_nan_with_reason_never_zero() -> None:
    # An empty answer: nothing to check for groundedness and no meaning to compare.
    metrics, complete = _score("", ground_truth=None)
    assert complete  # every input was available: NaN here is the verdict, and it is cached
    assert math.isnan(metrics["groundedness"])
    assert metrics["groundedness_reason"] == "empty answer: no claim to check"
    assert math.isnan(metrics["token_f1"]) and math.isnan(metrics["answer_similarity"])
    assert math.isnan(metrics["quality"])
    assert metrics["quality_reason"] == "no ground truth for this question"


def test_failed_embedding_call_makes_metrics_nan_and_the_row_not_cacheable() -> None:
    def broken(texts: Sequence[str]) -> np.ndarray:
        raise ProviderError("embeddings with model 'x' failed: 503")

    metrics, complete = _score("A full charge takes 4.5 hours.", scorers=_scorers(broken))
    assert not complete  # the next run retries the metric instead of caching the NaN
    for column in ("answer_similarity", "answer_relevance", "groundedness"):
        assert math.isnan(metrics[column]), column
    assert metrics["groundedness_reason"].startswith("embeddings failed: ")
    # Token F1 needs no call: still scored, and quality falls back to that one signal.
    assert metrics["token_f1"] == pytest.approx(1.0)
    assert metrics["quality"] == pytest.approx(1.0) and metrics["quality_reason"] == "one signal only"


def test_row_without_an_answer_is_nan_everywhere_with_the_reason() -> None:
    metrics = unscored("no answer: chat call gave up after 6 attempts")
    scored = [k for k, v in metrics.items() if isinstance(v, float) and not math.isnan(v)]
    assert scored == ["judge_cost_usd"]  # 0 dollars spent on judging, a true 0
    assert metrics["quality_reason"] == "no answer: chat call gave up after 6 attempts"
