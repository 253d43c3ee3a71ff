"""Planning keys (what a change re-runs), the budget's reservations, and judge repeats."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from llmops_pipelines.errors import BudgetExceededError
from llmops_pipelines.evaluation.budget import Budget, BudgetStop, CallEstimate, exceeded
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.judges import JudgeReply, Judges, aggregate, run_judge
from llmops_pipelines.evaluation.metrics.cost import Price, Pricing
from llmops_pipelines.evaluation.plan import estimate_usd, judge_key, plan_rows
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.rag.retrieval import Retrieved

REPO = Path(__file__).resolve().parents[2]
PROMPTS = load_prompts(REPO / "assets" / "prompts")
PRICING = Pricing.load(REPO / "assets" / "pricing.yaml")
QA = pd.DataFrame({"qa_id": ["q1", "q2"], "question": ["How long to charge?", "Is it waterproof?"],
                   "ground_truth": ["4.5 hours.", "Yes, IP67."], "doc_id": ["d1", "d2"]})
CONTEXTS = [[Retrieved("c1", "d1", "A full charge takes 4.5 hours.", 0.9)],
            [Retrieved("c2", "d2", "The case is rated IP67.", 0.8)]]


def _keys(prompts=PROMPTS, models=("gpt-4o-mini",), index="idx1", namespace="openai:a",
          defaults=None, contexts=CONTEXTS, params=None) -> dict[tuple[str, str, str], str]:
    plans = plan_rows(cross(list(prompts), list(models), params), QA, contexts,
                      defaults or {"max_tokens": 64}, index, namespace, lambda key, row: "m" + key)
    return {(p.candidate.prompt.name, p.candidate.model, p.qa.qa_id): p.key for p in plans}


def test_every_question_x_candidate_is_planned_once_in_order() -> None:
    plans = list(plan_rows(cross(PROMPTS, ["gpt-4o-mini", "ft:gpt-4o-mini:x"]), QA, CONTEXTS,
                           {"max_tokens": 64}, "idx", "ns", lambda key, row: key))
    assert [p.order for p in plans] == list(range(len(PROMPTS) * 2 * len(QA)))
    assert len({p.row_id for p in plans}) == len(plans)
    assert len({p.key for p in plans}) == len(plans)


def test_keys_are_stable_and_change_only_where_the_input_changed() -> None:
    base = _keys()
    assert _keys() == base
    edited = dataclasses.replace(PROMPTS[0], template=PROMPTS[0].template + "\nBe brief.\n")
    changed = _keys(prompts=[edited, *PROMPTS[1:]])
    differs = {k for k in base if base[k] != changed[k]}
    # Only the edited variant's rows get new keys: the other variant is not re-run.
    assert differs == {k for k in base if k[0] == PROMPTS[0].name}
    # A prompt file's own max_tokens wins over the run default: only other params count.
    assert _keys(defaults={"max_tokens": 65}) == base
    # The index version is lineage, not a key: the messages already hold the retrieved text.
    assert _keys(index="idx2") == base
    for other in (_keys(namespace="openai:b"), _keys(params={"top_p": 0.5}),
                  _keys(models=("gpt-4.1-mini",))):
        assert set(other.values()).isdisjoint(base.values())
    new_context = [[Retrieved("c9", "d1", "A full charge takes 5 hours.", 0.9)], CONTEXTS[1]]
    moved = _keys(contexts=new_context)
    assert {k for k in base if base[k] != moved[k]} == {k for k in base if k[2] == "q1"}


def test_judge_key_has_the_repeat_index_and_rubric_version() -> None:
    messages = [{"role": "user", "content": "ANSWER: 4.5 hours"}]
    keys = {judge_key("ns", "v1", messages, "gpt-4o-mini", {}, i) for i in range(3)}
    assert len(keys) == 3
    assert judge_key("ns", "v2", messages, "gpt-4o-mini", {}, 0) not in keys


def test_estimate_counts_answers_at_max_tokens_and_every_judge_repeat() -> None:
    plans = list(plan_rows(cross(PROMPTS[:1], ["gpt-4o-mini"]), QA, CONTEXTS, {"max_tokens": 100},
                           "idx", "ns", lambda key, row: key))
    usd, tokens_in, tokens_out = estimate_usd(plans, PRICING, None)
    assert tokens_out == 2 * PROMPTS[0].parameters["max_tokens"]
    assert tokens_in == sum(p.input_tokens for p in plans) > 0
    assert usd == pytest.approx((tokens_in * 0.15 + tokens_out * 0.60) / 1e6)
    judges = Judges.load(REPO / "assets" / "evaluators", "gpt-4o-mini", repeats=3)
    judged_usd, judged_in, judged_out = estimate_usd(plans, PRICING, judges, answers=False)
    # Two rubrics x 3 repeats x 2 rows, each at the rubric's max_tokens (200).
    assert judged_out == 2 * 3 * 2 * 200
    assert judged_usd > 0 and judged_in > 0


def test_budget_reserves_worst_case_and_stops_before_the_cap() -> None:
    budget = Budget(cap_usd=1.0)
    budget.reserve(0.4, "a chat call")
    budget.reserve(0.4, "a chat call")
    with pytest.raises(BudgetStop, match=r"a judge call could take spend to \$1.2"):
        budget.reserve(0.4, "a judge call")
    # Settled at the real price: the reservation goes, the real cost stays.
    budget.settle(0.4, 0.1)
    assert (budget.spent_usd, budget.reserved_usd) == pytest.approx((0.1, 0.4))
    with pytest.raises(BudgetStop):  # once stopped, stays stopped: no new call starts
        budget.reserve(0.01, "a chat call")


def test_no_cap_never_stops() -> None:
    budget = Budget(None)
    for _ in range(100):
        budget.reserve(1e6, "a chat call")
    assert budget.stopped is None


def test_call_estimate_from_messages() -> None:
    messages = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 40}]
    estimate = CallEstimate.of(messages, 100, Price(1.0, 2.0))
    assert (estimate.input_tokens, estimate.output_tokens) == (100 + 4 + 10 + 4, 100)
    assert estimate.usd == pytest.approx((118 * 1.0 + 100 * 2.0) / 1e6)


def test_budget_error_says_what_was_kept_and_what_to_change() -> None:
    error = exceeded("a chat call could take spend to $0.02", 0.5, 40, 100, "/h/partial.parquet")
    assert isinstance(error, BudgetExceededError)
    text = str(error)
    for part in ("40 of 100 rows finished", "partial results in /h/partial.parquet",
                 "LLMOPS_MAX_COST_USD", "LLMOPS_EVAL_LIMIT", "$0.500000"):
        assert part in text, part


def test_judge_repeats_report_mean_and_spread() -> None:
    replies = [JudgeReply('{"score": 5, "reason": "all supported"}', cost_usd=0.001),
               JudgeReply('{"score": 3, "reason": "partly"}', cost_usd=0.001),
               JudgeReply('{"score": 4, "reason": "minor gap"}', cost_usd=0.001)]
    verdict = aggregate(replies)
    assert verdict.score.value == pytest.approx((1.0 + 0.5 + 0.75) / 3)
    assert verdict.spread == pytest.approx(0.5)  # 5 vs 3 on the 1-5 scale
    assert "mean of 3/3 judge runs, spread 0.50" in verdict.score.reason
    assert verdict.cost_usd == pytest.approx(0.003) and verdict.failed_calls == 0


def test_one_judge_run_has_no_spread() -> None:
    verdict = aggregate([JudgeReply('{"score": 4, "reason": "ok"}')])
    assert verdict.score.value == 0.75 and math.isnan(verdict.spread)


def test_failed_and_unparsable_judge_runs() -> None:
    partly = aggregate([JudgeReply(None, "chat gave up"), JudgeReply('{"score": 2}')])
    assert partly.score.value == 0.25 and partly.failed_calls == 1
    none = aggregate([JudgeReply(None, "chat gave up"), JudgeReply("not json")])
    assert math.isnan(none.score.value) and none.score.reason == "judge call failed: chat gave up"


def test_run_judge_renders_the_rubric_once_per_repeat() -> None:
    judges = Judges.load(REPO / "assets" / "evaluators", "gpt-4o-mini", repeats=2)
    seen = []

    async def call(prompt, messages, params, repeat):
        seen.append((prompt.name, repeat, params["response_format"], messages[-1]["content"]))
        return JudgeReply('{"score": 5, "reason": "ok"}')

    verdict = asyncio.run(run_judge(judges.groundedness, {"context": "[d1] 4.5 hours",
                                                          "answer": "4.5 hours"}, 2, call))
    assert verdict.score.value == 1.0 and verdict.spread == 0.0
    assert sorted(r for _, r, _, _ in seen) == [0, 1]
    assert all(fmt == {"type": "json_object"} for _, _, fmt, _ in seen)
    assert all("ANSWER: 4.5 hours" in text for _, _, _, text in seen)


def test_judges_version_changes_with_model_repeats_or_rubric() -> None:
    folder = REPO / "assets" / "evaluators"
    base = Judges.load(folder, "gpt-4o-mini", 1)
    assert Judges.load(folder, "gpt-4o-mini", 1).version == base.version
    assert Judges.load(folder, "gpt-4o", 1).version != base.version
    assert Judges.load(folder, "gpt-4o-mini", 3).version != base.version
