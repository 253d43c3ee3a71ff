"""The promotion rule on paired rows built here (real paired bootstrap, no mocks).

A challenger takes the champion alias only when it is better on the primary metric (quality)
beyond its margin, or, within that margin, better beyond the margin on cost or latency, with no
gate failing; a tie keeps the sitting champion. With no champion, the best passing candidate wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.evaluation.aggregate import summarise
from llmops_pipelines.promotion.decide import Contender, Decision, Gates, choose, decide, show
from llmops_pipelines.promotion.report import evidence_table, headline

QUESTIONS = 40
# The shipped thresholds and margins (assets/gates.yaml, default provider), spelled out so the
# test is about the rule, not about the file.
GATES = Gates(
    "quality",
    {"quality": {"min": 0.20}, "groundedness": {"min": 0.30}, "harm_rate": {"max": 0.05},
     "cost_per_1k_answers_usd": {"max": 5.0}, "latency_p95_ms_per_token": {"max": 500.0},
     "coverage": {"min": 0.90}},
    confidence=0.95, bootstrap_samples=2000,
    margins={"cost_per_1k_answers_usd": 0.5, "latency_p95_ms_per_token": 25.0})
# Per-question difficulty every candidate shares: what pairing on qa_id cancels out.
DIFFICULTY = np.random.default_rng(99).normal(0, 0.1, QUESTIONS)


def rows(candidate_id: str, *, quality: float, seed: int, noise: float = 0.03,
         groundedness: float = 0.8, cost_usd: float = 0.0005,
         ms_per_token: float = 20.0) -> pd.DataFrame:
    """One candidate's answers to the same QUESTIONS: chosen levels plus seeded noise."""
    rng = np.random.default_rng(seed)
    n = QUESTIONS
    return pd.DataFrame({
        "row_id": [f"{candidate_id}-{i}" for i in range(n)], "candidate_id": candidate_id,
        "qa_id": [f"q{i:02d}" for i in range(n)], "prompt_name": "p",
        "prompt_version": f"pv-{candidate_id}", "model": "m",
        "question": [f"question {i}?" for i in range(n)],
        "answer": [f"answer {i}." for i in range(n)],
        "quality": np.clip(quality + DIFFICULTY + rng.normal(0, noise, n), 0, 1),
        "groundedness": np.clip(groundedness + rng.normal(0, 0.03, n), 0, 1),
        "harm": np.zeros(n), "cost_usd": cost_usd * (1 + rng.normal(0, 0.02, n)),
        "ms_per_output_token": ms_per_token + rng.normal(0, 1, n), "error": None,
    })


def contender(frame: pd.DataFrame) -> Contender:
    return Contender(summarise(frame).iloc[0].to_dict(), frame)


def gate(decision: Decision, metric: str):
    return next(g for g in decision.gates if g.metric == metric)


@pytest.fixture(scope="module")
def champ_rows() -> pd.DataFrame:
    return rows("champ", quality=0.50, seed=1)


def test_a_tie_keeps_the_sitting_champion(champ_rows: pd.DataFrame) -> None:
    # The tester's case: quality +0 ("not worse"), latency worse but inside its margin.
    tied = champ_rows.assign(candidate_id="tied", row_id=lambda r: "tied-" + r["qa_id"],
                             prompt_version="pv-tied",
                             ms_per_output_token=champ_rows["ms_per_output_token"] + 10)
    decision = decide(contender(tied), contender(champ_rows), GATES)
    assert not decision.promote and decision.outcome == "tie"
    assert decision.champion_id == "champ"
    assert all(g.passed for g in decision.gates)  # not a regression: nothing turns red
    assert decision.reasons[0] == (
        "a tie: within the margin of the champion champ on quality, and not better beyond the "
        "margin on cost_per_1k_answers_usd or latency_p95_ms_per_token; the champion stays "
        "(no churn on ties)")
    assert decision.reasons[1] == ("quality +0 [+0, +0] vs the champion (95% CI over 40 paired "
                                   "questions), margin ±0: within the margin")
    latency = gate(decision, "latency_p95_ms_per_token").comparison
    assert latency.diff == pytest.approx(10) and latency.verdict == "within"
    assert decision.reasons[3] == latency.describe()
    assert headline(decision) == "NOT PROMOTED tied; the champion champ stays"

    # The same through choose(), with the champion re-evaluated among today's candidates.
    chosen = choose([contender(tied), contender(champ_rows)], contender(champ_rows), GATES)
    assert not chosen.promote and chosen.champion_id == "champ"
    assert chosen.reasons[0].startswith("a tie")


def test_significantly_better_quality_is_promoted(champ_rows: pd.DataFrame) -> None:
    better = rows("better", quality=0.60, seed=2)
    decision = decide(contender(better), contender(champ_rows), GATES)
    assert decision.promote and decision.outcome == "promote"
    quality = gate(decision, "quality").comparison
    assert quality.ci_low > 0 and quality.verdict == "better"
    assert decision.reasons == [
        "better than the champion champ on quality beyond its margin; every gate passed",
        quality.describe()]
    assert quality.describe() == (
        f"quality {show('quality', quality.diff, signed=True)} "
        f"[{show('quality', quality.ci_low, signed=True)}, "
        f"{show('quality', quality.ci_high, signed=True)}] vs the champion (95% CI over 40 "
        "paired questions), margin ±0: better beyond the margin")
    assert headline(decision) == "PROMOTE better over the champion champ"


def test_better_quality_but_slower_beyond_the_margin_is_rejected(champ_rows: pd.DataFrame) -> None:
    slow = rows("slow", quality=0.60, seed=3, ms_per_token=320.0)  # under the 500 threshold
    decision = decide(contender(slow), contender(champ_rows), GATES)
    assert not decision.promote and decision.outcome == "reject"
    assert gate(decision, "quality").passed
    latency = gate(decision, "latency_p95_ms_per_token")
    assert not latency.passed
    c = latency.comparison
    assert c.ci_low > 25  # the whole CI is worse than the champion beyond the margin
    m = "latency_p95_ms_per_token"
    expected = (f"{m} {show(m, c.diff, signed=True)} ms/token [{show(m, c.ci_low, signed=True)}, "
                f"{show(m, c.ci_high, signed=True)}] vs the champion (95% CI over 40 paired "
                "questions), margin ±25: worse beyond the margin")
    assert decision.reasons == [expected]
    assert latency.reason.endswith(expected + ", FAIL")
    assert all(g.passed for g in decision.gates if g.metric != "latency_p95_ms_per_token")


def test_within_the_margin_on_quality_but_clearly_cheaper_is_promoted(
        champ_rows: pd.DataFrame) -> None:
    dear = rows("dear", quality=0.50, seed=1, cost_usd=0.004)  # $4 per 1k answers
    cheap = rows("cheap", quality=0.50, seed=4, cost_usd=0.001)  # $1 per 1k answers
    decision = decide(contender(cheap), contender(dear), GATES)
    quality = gate(decision, "quality").comparison
    cost = gate(decision, "cost_per_1k_answers_usd").comparison
    assert quality.verdict == "within" and quality.ci_low < 0 < quality.ci_high
    assert cost.verdict == "better" and cost.ci_high < -0.5
    assert decision.promote and decision.outcome == "promote"
    assert decision.reasons == [
        "within the margin of the champion dear on quality, and better beyond the margin on "
        "cost_per_1k_answers_usd; every gate passed", quality.describe(), cost.describe()]
    assert " $/1k answers [" in cost.describe()


def test_no_champion_promotes_the_best_candidate_passing_the_thresholds() -> None:
    ungrounded = rows("ungrounded", quality=0.70, seed=5, groundedness=0.2)  # fails >= 0.3
    best = rows("best", quality=0.55, seed=6)
    ok = rows("ok", quality=0.45, seed=7)
    decision = choose([contender(ok), contender(ungrounded), contender(best)], None, GATES)
    assert decision.promote and decision.candidate_id == "best"
    assert decision.champion_id is None
    assert decision.reasons == ["no champion yet; first deployment: every threshold passed"]
    assert headline(decision) == "PROMOTE best (no champion yet: first deployment)"


def test_no_champion_and_nothing_passing_never_says_keep_the_champion() -> None:
    ungrounded = rows("ungrounded", quality=0.70, seed=5, groundedness=0.2)
    decision = choose([contender(ungrounded)], None, GATES)
    assert not decision.promote
    table = evidence_table(decision)
    assert "keep the champion" not in table.lower()
    assert "**NOT PROMOTED ungrounded; no champion yet**: groundedness = " in table
    assert "fails its threshold (needs >= 0.3)" in table
    assert "gate failed" not in table and table.count("FAIL") == 1  # once, in its own row


def test_evidence_table_shows_margins_next_to_the_differences(champ_rows: pd.DataFrame) -> None:
    slower = rows("slower", quality=0.60, seed=8, ms_per_token=40.0)  # +20: within 25
    decision = decide(contender(slower), contender(champ_rows), GATES)
    assert decision.promote
    line = next(x for x in evidence_table(decision).splitlines()
                if x.startswith("| latency_p95_ms_per_token"))
    m = "latency_p95_ms_per_token"
    c = gate(decision, m).comparison
    assert line == (f"| {m} | {show(m, summarise(slower).iloc[0][m])} | <= 500 | "
                    f"{show(m, c.diff, signed=True)} ms/token [{show(m, c.ci_low, signed=True)}, "
                    f"{show(m, c.ci_high, signed=True)}] n=40 | ±25 | within margin, pass |")
