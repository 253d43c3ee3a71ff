"""Promotion: absolute gates first, then no regression against the champion."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.aggregate import summarise
from llmops_pipelines.promotion.decide import (
    GATED_METRICS,
    Contender,
    GateCheck,
    Gates,
    check_gates,
    choose,
    decide,
)
from llmops_pipelines.promotion.paired_bootstrap import paired_diff
from tests.support.eval_tables import candidate_rows

REPO = Path(__file__).resolve().parents[2]
GATES = REPO / "assets" / "gates.yaml"


def summary(candidate_id: str, **overrides: float) -> dict:
    """A summary that passes every shipped gate unless overridden."""
    values = {
        "candidate_id": candidate_id, "quality": 0.5, "groundedness": 0.8, "harm_rate": 0.0,
        "cost_per_1k_answers_usd": 1.0, "latency_p95_ms_per_token": 100.0, "coverage": 1.0,
    }
    values.update(overrides)
    return values


@pytest.fixture
def gates() -> Gates:
    return Gates.load(GATES)


def test_shipped_gates_load(gates: Gates) -> None:
    assert gates.primary_metric == "quality"
    assert gates.thresholds == {
        "quality": {"min": 0.20},
        "groundedness": {"min": 0.30},
        "harm_rate": {"max": 0.05},
        "cost_per_1k_answers_usd": {"max": 5.0},
        "latency_p95_ms_per_token": {"max": 500.0},
        "coverage": {"min": 0.90},
    }


@pytest.mark.parametrize("bound", ["0.2", "{}", "{minimum: 0.2}", "{min: 0.2, avg: 0.3}",
                                   "[0.2]"])
def test_threshold_without_min_or_max_names_file_and_field(tmp_path: Path, bound: str) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(f"primary_metric: quality\nthresholds:\n  groundedness: {bound}\n",
                    encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path)
    assert err.value.path == str(path)
    assert err.value.field == "thresholds.groundedness"
    assert str(err.value) == (f"{path}: each threshold needs 'min' and/or 'max' "
                              "(field 'thresholds.groundedness')")


def test_non_numeric_threshold_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds:\n  coverage: {min: high}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path)
    assert str(path) in str(err.value)
    assert err.value.field == "thresholds.coverage"


def test_gates_not_a_mapping_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("- quality\n- coverage\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path)
    assert str(path) in str(err.value)


def test_unreadable_gates_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DataError) as err:
        Gates.load(missing)
    assert str(err.value).startswith(f"{missing}: cannot read gates")


def test_primary_metric_defaults_to_quality(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds:\n  coverage: {min: 0.5, max: 1}\n", encoding="utf-8")
    loaded = Gates.load(path)
    assert loaded == Gates("quality", {"coverage": {"min": 0.5, "max": 1.0}})


def test_check_gates_golden(gates: Gates) -> None:
    checks = check_gates(summary("a", harm_rate=0.05, coverage=0.89), gates)
    by_metric = {c.metric: c for c in checks}
    assert len(checks) == 6
    assert by_metric["harm_rate"] == GateCheck("harm_rate", 0.05, "max", 0.05, True)  # inclusive
    assert by_metric["coverage"] == GateCheck("coverage", 0.89, "min", 0.9, False)
    assert by_metric["coverage"].describe() == "coverage = 0.89 (needs >= 0.9): FAIL"
    assert by_metric["harm_rate"].describe() == "harm_rate = 0.05 (needs <= 0.05): pass"


def test_failing_a_gate_is_not_promoted_and_names_the_metric(gates: Gates) -> None:
    decision = decide(summary("a", groundedness=0.1), None, gates)
    assert not decision.promote
    assert decision.candidate_id == "a"
    assert decision.reasons == ["groundedness = 0.1 fails its threshold (needs >= 0.3)"]
    assert decision.champion_id is None


def test_failing_a_gate_with_a_champion_keeps_the_champion(gates: Gates) -> None:
    decision = decide(summary("a", quality=0.9, harm_rate=0.2), summary("champ"), gates)
    assert not decision.promote
    assert decision.champion_id == "champ"
    assert len(decision.reasons) == 1
    assert "harm_rate" in decision.reasons[0]


def test_every_failed_gate_is_listed(gates: Gates) -> None:
    decision = decide(summary("a", quality=0.1, cost_per_1k_answers_usd=9.0), None, gates)
    assert not decision.promote
    assert [r.split(" = ")[0] for r in decision.reasons] == [
        "quality", "cost_per_1k_answers_usd"]


def test_first_deployment_passing_gates_is_promoted(gates: Gates) -> None:
    decision = decide(summary("a"), None, gates)
    assert decision.promote
    assert decision.reasons == ["no champion yet; first deployment: every threshold passed"]
    assert all(c.passed for c in decision.checks)


def test_worse_than_champion_is_not_promoted(gates: Gates) -> None:
    decision = decide(summary("new", quality=0.4), summary("champ", quality=0.5), gates)
    assert not decision.promote
    assert decision.reasons == ["quality -0.1 vs the champion (summaries: no paired rows, no "
                                "CI), margin ±0: worse beyond the margin"]
    assert decision.champion_id == "champ"


def test_better_than_champion_is_promoted(gates: Gates) -> None:
    decision = decide(summary("new", quality=0.6), summary("champ", quality=0.5), gates)
    assert decision.promote
    assert decision.reasons == [
        "better than the champion champ on quality beyond its margin; every gate passed",
        "quality +0.1 vs the champion (summaries: no paired rows, no CI), margin ±0: better "
        "beyond the margin"]
    assert decision.champion_id == "champ"


def test_equal_to_champion_is_a_tie_that_keeps_the_champion(gates: Gates) -> None:
    # Not a regression (every gate passes), but not better either: no churn on ties.
    decision = decide(summary("new"), summary("champ"), gates)
    assert not decision.promote and decision.outcome == "tie"
    assert all(g.passed for g in decision.gates)
    assert decision.reasons[0].startswith("a tie: within the margin of the champion champ")


def test_the_champion_itself_is_not_promoted_again(gates: Gates) -> None:
    decision = decide(summary("champ"), summary("champ"), gates)
    assert not decision.promote
    assert decision.reasons == ["already the champion"]


def test_lower_is_better_primary_metric(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("primary_metric: cost_per_1k_answers_usd\n"
                    "thresholds:\n  cost_per_1k_answers_usd: {max: 5}\n", encoding="utf-8")
    cheap = Gates.load(path)
    champion = summary("champ", cost_per_1k_answers_usd=2.0)
    assert decide(summary("cheaper", cost_per_1k_answers_usd=1.0), champion, cheap).promote
    dearer = decide(summary("dearer", cost_per_1k_answers_usd=3.0), champion, cheap)
    assert not dearer.promote
    assert "worse" in dearer.reasons[0]


@pytest.mark.parametrize("metric", ["quality", "coverage", "harm_rate",
                                    "latency_p95_ms_per_token"])
def test_nan_metric_never_passes(gates: Gates, metric: str) -> None:
    decision = decide(summary("a", **{metric: math.nan}), None, gates)
    assert not decision.promote
    assert any(metric in r and "nan" in r for r in decision.reasons), decision.reasons


def test_missing_metric_never_passes(gates: Gates) -> None:
    candidate = summary("a")
    del candidate["coverage"]
    decision = decide(candidate, None, gates)
    assert not decision.promote
    assert decision.reasons == ["coverage = nan (not scored) fails its threshold (needs >= 0.9)"]


def test_choose_picks_the_best_passing_candidate(gates: Gates) -> None:
    candidates = [
        summary("ok", quality=0.55),
        summary("best-but-harmful", quality=0.95, harm_rate=0.5),
        summary("best-passing", quality=0.7),
        summary("unscored", quality=math.nan),
        summary("low", quality=0.3),
    ]
    decision = choose(candidates, summary("champ", quality=0.6), gates)
    assert decision.candidate_id == "best-passing"
    assert decision.promote
    assert decision.champion_id == "champ"


def test_choose_reports_a_regression_of_the_best(gates: Gates) -> None:
    decision = choose([summary("a", quality=0.4), summary("b", quality=0.45)],
                      summary("champ", quality=0.6), gates)
    assert decision.candidate_id == "b"
    assert not decision.promote


def test_choose_with_nothing_passing_rejects(gates: Gates) -> None:
    decision = choose([summary("a", coverage=0.5), summary("b", groundedness=0.0, quality=0.9)],
                      None, gates)
    assert not decision.promote
    assert "fails its threshold" in decision.reasons[0]


def test_choose_without_candidates(gates: Gates) -> None:
    decision = choose([], None, gates)
    assert decision.candidate_id is None
    assert not decision.promote
    assert decision.reasons == ["no candidate was evaluated"]


def test_choose_lower_is_better(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("primary_metric: latency_p95_ms_per_token\n"
                    "thresholds:\n  latency_p95_ms_per_token: {max: 500}\n", encoding="utf-8")
    fast = Gates.load(path)
    decision = choose([summary("slow", latency_p95_ms_per_token=300.0),
                       summary("nan", latency_p95_ms_per_token=math.nan),
                       summary("fast", latency_p95_ms_per_token=50.0)], None, fast)
    assert decision.candidate_id == "fast"
    assert decision.promote


# --- Non-regression on the same eval rows: paired bootstrap CI of candidate - champion ----------

def contender(candidate_id: str, **levels: float) -> Contender:
    rows = candidate_rows(candidate_id, seed=levels.pop("seed", 0), **levels)
    return Contender(summarise(rows).iloc[0].to_dict(), rows)


def test_significantly_less_grounded_is_blocked_even_with_better_quality(gates: Gates) -> None:
    champ = contender("champ", quality=0.5, groundedness=0.8, seed=1)
    worse = contender("worse", quality=0.6, groundedness=0.5, seed=2)
    decision = decide(worse, champ, gates)
    assert not decision.promote
    by_metric = {g.metric: g for g in decision.gates}
    grounded = by_metric["groundedness"]
    assert not grounded.passed
    assert grounded.regression.pairs == 20
    assert grounded.regression.ci_high < 0 < by_metric["quality"].regression.ci_low
    assert decision.reasons == [grounded.failures[0]]
    assert decision.reasons[0].endswith("margin ±0: worse beyond the margin")


def test_a_difference_inside_the_noise_is_not_a_regression(gates: Gates) -> None:
    champ = contender("champ", quality=0.5, groundedness=0.80, seed=1)
    similar = contender("similar", quality=0.55, groundedness=0.79, seed=3)
    decision = decide(similar, champ, gates)
    grounded = next(g for g in decision.gates if g.metric == "groundedness")
    assert grounded.regression.ci_low < 0 < grounded.regression.ci_high
    assert decision.promote, decision.reasons


def test_primary_metric_within_the_noise_on_paired_rows_is_a_tie(gates: Gates) -> None:
    champ = contender("champ", quality=0.50, groundedness=0.8, seed=1)
    lower = contender("lower", quality=0.49, groundedness=0.8, seed=4)
    decision = decide(lower, champ, gates)
    quality = next(g for g in decision.gates if g.metric == "quality").regression
    # Neither significantly worse nor better (the CI spans 0): a tie keeps the champion.
    assert quality.ci_low < 0 < quality.ci_high and quality.diff < 0
    assert not decision.promote and decision.outcome == "tie"
    assert decision.reasons[0].startswith("a tie")


def test_paired_diff_pairs_on_qa_id_and_ignores_unscored_pairs() -> None:
    champ = candidate_rows("c", quality=0.5, groundedness=0.8, seed=1)
    cand = candidate_rows("n", quality=0.5, groundedness=0.8, seed=1).iloc[::-1]  # other order
    cand.loc[cand["qa_id"] == "q03", "groundedness"] = math.nan
    diff = paired_diff("groundedness", cand, champ, samples=200)
    assert diff.pairs == 19 and diff.diff == pytest.approx(0.0, abs=1e-12)
    assert paired_diff("groundedness", cand.head(0), champ).pairs == 0


def test_choose_keeps_the_champion_when_it_still_ranks_first(gates: Gates) -> None:
    champ = contender("champ", quality=0.6, groundedness=0.8, seed=1)
    loser = contender("loser", quality=0.4, groundedness=0.8, seed=2)
    decision = choose([loser, champ], champ, gates)
    assert decision.candidate_id == "champ" and not decision.promote
    assert all(g.passed for g in decision.gates)


def test_choose_reports_why_a_better_ranked_challenger_failed(gates: Gates) -> None:
    champ = contender("champ", quality=0.5, groundedness=0.8, seed=1)
    worse = contender("worse", quality=0.6, groundedness=0.5, seed=2)
    decision = choose([champ, worse], champ, gates)
    assert decision.candidate_id == "worse" and not decision.promote
    assert "groundedness" in decision.reasons[0]


@pytest.mark.parametrize("text, field", [
    ("thresholds:\n  qualty: {min: 0.2}\n", "thresholds.qualty"),
    ("primary_metric: speed\n", "primary_metric"),
    ("non_regression:\n  confidence: 1.5\n", "non_regression.confidence"),
    ("non_regression:\n  margins: {speed: 1}\n", "non_regression.margins"),
    ("monitoring:\n  question_drift: 0.3\n", "monitoring.question_drift"),
])
def test_bad_gates_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path)
    assert err.value.field == field and err.value.path == str(path)


def test_shipped_regression_and_monitoring_settings(gates: Gates) -> None:
    assert (gates.confidence, gates.bootstrap_samples) == (0.95, 2000)
    assert set(gates.margins) <= set(GATED_METRICS)
    assert set(gates.monitoring) == {"question_drift", "negative_feedback_rate"}


def test_provider_section_overrides_thresholds_and_margins() -> None:
    default, local = Gates.load(GATES), Gates.load(GATES, "local")
    assert default.thresholds["latency_p95_ms_per_token"] == {"max": 500.0}
    assert local.thresholds["latency_p95_ms_per_token"] == {"max": 3000.0}
    assert local.margins["latency_p95_ms_per_token"] == 250.0
    # Only what the provider names moves; an unlisted provider gets the defaults.
    assert {k: v for k, v in local.thresholds.items() if k != "latency_p95_ms_per_token"} == \
        {k: v for k, v in default.thresholds.items() if k != "latency_p95_ms_per_token"}
    assert local.margins["cost_per_1k_answers_usd"] == default.margins["cost_per_1k_answers_usd"]
    assert Gates.load(GATES, "openai") == default


@pytest.mark.parametrize(("section", "field"), [
    ("providers: [local]\n", "providers"),
    ("providers:\n  local: {gates: {}}\n", "providers.local"),
    ("providers:\n  local: {thresholds: {speed: {max: 1}}}\n",
     "providers.local.thresholds.speed"),
])
def test_bad_provider_section_names_file_and_field(tmp_path: Path, section: str,
                                                   field: str) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds:\n  coverage: {min: 0.5}\n" + section, encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path, "local")
    assert err.value.field == field and str(path) in str(err.value)
