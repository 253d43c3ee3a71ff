"""evaluation_rows fanned out in shards: the same rows as one step, in-process and over processes.

Real Dagster against the local OpenAI-compatible server: calls are counted at the server, so a
row answered twice (by two shards, or by a re-run) shows as a repeated request body.
"""

from __future__ import annotations

import json
from collections import Counter

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from llmops_pipelines.definitions import defs
from llmops_pipelines.defs.evaluation_shards import catalog_endpoints, evaluation_rows_asset
from llmops_pipelines.defs.resources import EndpointKeysResource
from tests.integration.test_evaluation_assets import upstream
from tests.integration.test_lifecycle import table
from tests.support.openai_server import FakeOpenAIServer

LINEAGE = dg.AssetSelection.assets("evaluation_summary").upstream().required_multi_asset_neighbors()
SHARD_STEP = "evaluation_rows.evaluate_shard_"


def materialize(selection: dg.AssetSelection, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                          instance=dg.DagsterInstance.ephemeral(), selection=selection, **kwargs)


def chat_bodies(server: FakeOpenAIServer) -> Counter[str]:
    """Each successful chat request body the server saw, with how often it saw it."""
    return Counter(json.dumps(body, sort_keys=True) for kind, body in server.requests
                   if kind == "chat")


def rows_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("evaluation_rows")]
    return dict(event.materialization.metadata)


def test_candidate_shards_give_the_rows_of_one_step_each_asked_once(
        openai_env, isolated_home, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "5")
    # The reference: shards off (one step, today's behaviour) on a fresh home and its own server,
    # so its fine-tune job gets the same id and so its candidates the same ids.
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "reference-home"))
    with FakeOpenAIServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        assert materialize(LINEAGE).success
    reference = table(tmp_path / "reference-home", "evaluation_rows")

    monkeypatch.setenv("LLMOPS_HOME", str(isolated_home))
    monkeypatch.setenv("OPENAI_BASE_URL", openai_env.base_url)
    monkeypatch.setenv("LLMOPS_EVAL_SHARDS", "candidate")
    monkeypatch.setenv("LLMOPS_EVAL_SHARD_QUESTIONS", "2")
    result = materialize(LINEAGE)
    assert result.success
    rows = table(isolated_home, "evaluation_rows")
    assert rows["row_id"].tolist() == reference["row_id"].tolist()  # the same rows, same order
    assert rows["answer"].tolist() == reference["answer"].tolist()
    assert rows["error"].isna().all()
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["one_row_per_question_and_candidate"] is True

    # 4 candidates x 5 questions in ranges of 2: 12 shards, each request once at the server.
    bodies = chat_bodies(openai_env)
    assert set(bodies.values()) == {1} and sum(bodies.values()) == len(rows) == 20
    meta = rows_metadata(result)
    shards = meta["shards"].records
    assert len(shards) == 12 and sum(r.data["rows"] for r in shards) == 20
    assert meta["chat_calls"].value == 20 and meta["cached_rows"].value == 0
    assert meta["endpoints"].data["openai"]["chat_calls"] == 20
    assert not (isolated_home / "tables" / "evaluation_rows.partial.parquet").exists()


def sharded_evaluation_job() -> dg.JobDefinition:
    """evaluation_rows (and its check) on the multiprocess executor: a step per process."""
    job = dg.define_asset_job("sharded_evaluation",
                              selection=dg.AssetSelection.assets("evaluation_rows"),
                              executor_def=dg.multiprocess_executor.configured(
                                  {"max_concurrent": 2}))
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks,
                          resources=defs.resources, jobs=[job]).resolve_job_def("sharded_evaluation")


def _run_in_processes(instance: dg.DagsterInstance) -> list[dict]:
    """Execute the job; return the shard steps' `rows` output metadata."""
    with dg.execute_job(dg.reconstructable(sharded_evaluation_job), instance=instance) as result:
        assert result.success
        outputs = [e for e in result.all_events if e.is_successful_output
                   and (e.step_key or "").startswith(SHARD_STEP)
                   and e.event_specific_data.step_output_handle.output_name == "rows"]
        return [{k: v.value for k, v in e.event_specific_data.metadata.items()}
                for e in outputs]


def test_shards_on_the_multiprocess_executor_run_in_several_processes(
        openai_env, isolated_home, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "4")
    assert materialize(upstream()).success
    monkeypatch.setenv("LLMOPS_EVAL_SHARDS", "candidate")
    openai_env.reset()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the conftest's, persistent for the run
    # One shard per candidate (a process each costs an import: the team test covers more
    # shards, on Dask workers, and a second run there).
    shards = _run_in_processes(instance)
    assert len(shards) == 4  # 4 candidates x their 4 questions
    assert len({s["pid"] for s in shards}) >= 2
    assert all(s["worker"] == f"{s['host']}:{s['pid']}" for s in shards)  # not on Dask
    rows = table(isolated_home, "evaluation_rows")
    candidates = table(isolated_home, "candidates")
    assert len(rows) == 16 == len(rows.drop_duplicates(["candidate_id", "qa_id"]))
    assert set(rows["candidate_id"]) == set(candidates["candidate_id"])
    # Asked once each; the rest were answered upstream by the prompt playground (same keys).
    bodies = chat_bodies(openai_env)
    assert set(bodies.values()) == {1} and sum(bodies.values()) == int((~rows["cached"]).sum()) > 0
    # The shards' files are on tables_root, where every worker reads them.
    shard_files = isolated_home / "tables" / ".shards"
    assert list(shard_files.rglob("evaluation_rows.evaluate_shard_*/rows*.parquet"))


@pytest.mark.parametrize("cap", ["0.0016"])
def test_a_shard_over_its_budget_share_fails_the_run_and_a_rerun_rebills_nothing(
        openai_env, isolated_home, monkeypatch, cap: str) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "4")
    assert materialize(upstream()).success
    monkeypatch.setenv("LLMOPS_EVAL_SHARDS", "candidate")
    monkeypatch.setenv("LLMOPS_EVAL_SHARD_QUESTIONS", "2")
    # 8 shards of 2 rows: $0.0002 each, less than two answers' worst case (max_tokens reserved).
    monkeypatch.setenv("LLMOPS_MAX_COST_USD", cap)
    openai_env.reset()
    result = materialize(dg.AssetSelection.assets("evaluation_rows"), raise_on_error=False)
    assert not result.success
    failures = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    assert failures and all(f"of LLMOPS_MAX_COST_USD=${cap}" in text and "partial results in"
                            in text for text in failures)
    partials = sorted((isolated_home / "tables").glob("evaluation_rows.partial.*.parquet"))
    assert len(partials) == len(failures)
    kept = pd.concat([pd.read_parquet(p) for p in partials])
    answered = chat_bodies(openai_env)
    assert len(kept) > 0 and sum(answered.values()) >= len(kept)
    assert not (isolated_home / "tables" / "evaluation_rows.parquet").exists()

    monkeypatch.setenv("LLMOPS_MAX_COST_USD", "1.0")
    openai_env.reset()
    assert materialize(dg.AssetSelection.assets("evaluation_rows")).success
    again = chat_bodies(openai_env)
    assert not set(again) & set(answered)  # nothing answered before is paid again
    rows = table(isolated_home, "evaluation_rows")
    # Cached: what the stopped run answered, and what the prompt playground asked upstream.
    assert len(rows) == 16 and int(rows["cached"].sum()) >= sum(answered.values())
    assert not list((isolated_home / "tables").glob("evaluation_rows.partial*.parquet"))


def test_shard_files_go_to_any_fsspec_tables_root(monkeypatch) -> None:
    """LLMOPS_TABLES_URI may be any fsspec URL: here fsspec's in-memory filesystem."""
    from dagster._core.types.dagster_type import resolve_dagster_type

    from llmops_pipelines.defs.resources import LlmopsResource
    from llmops_pipelines.defs.shard_io import ShardIOManager, ShardIOManagerResource

    monkeypatch.setenv("LLMOPS_TABLES_URI", "memory://team-tables")
    resource = ShardIOManagerResource(llmops=LlmopsResource(endpoint_keys=EndpointKeysResource()))
    manager = resource.create_io_manager(dg.build_init_resource_context())
    assert isinstance(manager, ShardIOManager)
    frame = pd.DataFrame({"row_id": ["a", "b"], "cost_usd": [0.1, 0.2]})
    step = "evaluation_rows.evaluate_shard_openai[s0_x_q0]"
    for name, value, kind in (("rows", frame, pd.DataFrame), ("stats", {"rows": 2}, dict)):
        out = dg.build_output_context(run_id="run-1", step_key=step, name=name,
                                      dagster_type=resolve_dagster_type(kind))
        manager.handle_output(out, value)
        back = manager.load_input(dg.build_input_context(upstream_output=out))
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(back, value)
        else:
            assert back == value
    written = sorted(str(p.relative_to(UPath("memory://team-tables/.shards")))
                     for p in UPath("memory://team-tables/.shards").rglob("*") if p.is_file())
    assert written == [f"run-1/{step}/rows.parquet", f"run-1/{step}/stats.json"]


def test_a_shard_op_per_catalog_endpoint_each_in_its_pool(tmp_path, monkeypatch) -> None:
    asset = evaluation_rows_asset(["openai", "my-vllm"])
    ops = {node.name: node for node in asset.node_def.node_defs}  # type: ignore[union-attr]
    assert {name: op.pool for name, op in ops.items() if name.startswith("evaluate_shard_")} == {
        "evaluate_shard_openai": "llm_endpoint_openai",
        "evaluate_shard_my_vllm": "llm_endpoint_my-vllm", "evaluate_shard_mixed": None}
    assert asset.key == dg.AssetKey("evaluation_rows")
    # A catalog that cannot be read when the code loads: the two built-in endpoints.
    broken = tmp_path / "assets"
    broken.mkdir()
    (broken / "models.yaml").write_text("endpoints: [not, a, mapping]\n")
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(broken))
    assert catalog_endpoints() == ["local", "openai"]


def test_a_candidate_whose_endpoint_has_no_op_runs_in_the_mixed_step(
        openai_env, isolated_home, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "2")
    assert materialize(upstream()).success
    monkeypatch.setenv("LLMOPS_EVAL_SHARDS", "candidate")
    # As if the catalog had no `openai` endpoint when the code location loaded.
    rows_key = dg.AssetKey("evaluation_rows")
    assets = [a for a in defs.assets if rows_key not in getattr(a, "keys", ())]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([*assets, evaluation_rows_asset(["local"]), *defs.asset_checks],
                            resources=defs.resources, instance=instance,
                            selection=dg.AssetSelection.assets("evaluation_rows"))
    assert result.success
    steps = {e.step_key for e in result.all_events if e.is_step_success}
    assert sum(1 for s in steps if s.startswith(f"{SHARD_STEP}mixed[")) == 4  # one per candidate
    assert not any(s.startswith(f"{SHARD_STEP}local[") for s in steps)
    warnings = [r.user_message for r in instance.all_logs(result.run_id)
                if r.step_key == "evaluation_rows.plan_evaluation_shards"
                and "has no shard step" in r.user_message]
    assert len(warnings) == 4
    assert len(table(isolated_home, "evaluation_rows")) == 8
