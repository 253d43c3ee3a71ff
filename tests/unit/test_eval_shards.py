"""Shard planning: which candidates x question ranges each evaluation step answers."""

from __future__ import annotations

import os
import re

import pytest

from llmops_pipelines.evaluation.shards import (
    MIXED,
    ShardSpec,
    budget_shares,
    plan_shards,
    safe_name,
    worker_identity,
)

CANDIDATES = [("grounded@gpt-4o-mini#aaaa", "openai"), ("friendly@gpt-4o-mini#bbbb", "openai"),
              ("grounded@smollm2#cccc", "local")]


def test_off_is_one_mixed_shard_with_everything_and_the_whole_budget() -> None:
    specs, warnings = plan_shards(CANDIDATES, 7, "off", max_questions=2, max_cost_usd=0.5,
                                  endpoints={"openai", "local"})
    assert warnings == []
    [spec] = specs
    assert spec.candidate_ids == tuple(c for c, _ in CANDIDATES)
    assert (spec.start, spec.stop, spec.rows) == (0, 7, 21)
    assert spec.endpoint == MIXED and spec.budget_usd == 0.5 and spec.key == "all"


def test_candidate_shards_split_questions_in_plan_order() -> None:
    specs, warnings = plan_shards(CANDIDATES, 5, "candidate", max_questions=2,
                                  endpoints={"openai", "local"})
    assert warnings == []
    # Candidates in order, each one's questions in ranges of at most 2: the row order of one
    # evaluate() over everything is the concatenation in plan order.
    assert [(s.candidate_ids[0], s.start, s.stop) for s in specs] == [
        (cid, start, stop) for cid, _ in CANDIDATES for start, stop in ((0, 2), (2, 4), (4, 5))]
    assert [s.index for s in specs] == list(range(9))
    assert [s.endpoint for s in specs] == ["openai"] * 6 + ["local"] * 3
    assert sum(s.rows for s in specs) == 15 and all(s.budget_usd is None for s in specs)
    keys = [s.key for s in specs]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", k) for k in keys)  # Dagster mapping keys


def test_no_question_split_gives_one_shard_per_candidate() -> None:
    specs, _ = plan_shards(CANDIDATES, 5, "candidate", endpoints={"openai", "local"})
    assert [(s.candidate_ids, s.start, s.stop) for s in specs] == [((c,), 0, 5) for c, _ in CANDIDATES]


def test_an_endpoint_without_a_step_goes_to_the_mixed_step_with_a_warning() -> None:
    specs, warnings = plan_shards(CANDIDATES, 3, "candidate", endpoints={"openai"})
    assert [s.endpoint for s in specs] == ["openai", "openai", MIXED]
    [warning] = warnings
    assert "grounded@smollm2#cccc" in warning and "'local'" in warning


def test_budget_shares_follow_rows_and_never_pass_the_total() -> None:
    specs, _ = plan_shards(CANDIDATES, 5, "candidate", max_questions=2, max_cost_usd=0.001,
                           endpoints={"openai", "local"})
    shares = [s.budget_usd for s in specs]
    assert all(share is not None for share in shares)
    assert sum(s for s in shares if s is not None) <= 0.001
    # A two-question shard gets twice a one-question shard's share (to a billionth of a dollar).
    assert shares[0] == pytest.approx(2 * shares[2], abs=2e-9)
    assert budget_shares([3, 1], 1.0) == [0.75, 0.25]
    assert budget_shares([7], 0.3) == [0.3] and budget_shares([1, 2], None) == [None, None]
    thirds = budget_shares([1, 1, 1], 0.1)
    assert sum(thirds) <= 0.1  # type: ignore[arg-type]


def test_nothing_to_plan_and_bad_modes() -> None:
    assert plan_shards(CANDIDATES, 0, "candidate") == ([], [])
    assert plan_shards([], 4, "off") == ([], [])
    with pytest.raises(ValueError, match="expected one of"):
        plan_shards(CANDIDATES, 4, "question")


def test_specs_round_trip_through_json_dicts() -> None:
    spec = ShardSpec("s0_x", 0, ("a", "b"), 2, 4, "openai", 0.25, 4)
    assert ShardSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["candidate_ids"] == ["a", "b"] and spec.questions == 2


def test_safe_names_and_where_this_process_runs() -> None:
    assert safe_name("grounded@gpt-4o-mini#ab12") == "grounded_gpt_4o_mini_ab12"
    assert safe_name("--") == "x"
    identity = worker_identity()  # not inside a Dask worker here
    assert identity["pid"] == os.getpid()
    assert identity["worker"] == f"{identity['host']}:{os.getpid()}"


def test_inside_a_dask_worker_the_worker_is_named_by_dask() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        identity = client.submit(worker_identity, pure=False).result(timeout=60)
        [name] = [w.name for w in cluster.workers.values()]
    assert identity["worker"] == str(name) != f"{identity['host']}:{identity['pid']}"
