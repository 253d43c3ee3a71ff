"""Experiments through the Dagster wiring: the llmops resource's fields, masked endpoint keys, a
run config choosing the experiment and the eval limit, and bad catalogs failing before any call.

Real Dagster, the official openai client, the local OpenAI-compatible test server; no mocks.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.snap import JobSnap
from dagster._serdes import serialize_value

from llmops_pipelines.definitions import defs, resources
from llmops_pipelines.defs.resources import EndpointKeysResource, LlmopsResource
from llmops_pipelines.errors import DataError
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
SENTINEL = "sk-test-sentinel-123"
LAB_KEY = "sk-lab-key-456"  # the test server accepts only this key: it really is sent
FIELDS = {  # LlmopsResource field -> a phrase of its description (the launchpad's help)
    "experiment": "assets/experiments.yaml",
    "eval_limit": "Eval questions per candidate",
    "judge_repeats": "Runs of each judge per row",
    "max_cost_usd": "spending cap in USD",
}
EXPERIMENT = "lab-pair"
LAB_MODELS = ("alpha-chat", "beta-chat")


def catalog(base_url: str) -> str:
    """The run's own endpoint (openai, at the test server) and a second one, `lab`, there too."""
    return f"""\
endpoints:
  openai:
    kind: openai
    api_key_env: OPENAI_API_KEY
    capabilities: [chat, embeddings, moderation, streaming]
  lab:
    kind: openai
    base_url: {base_url}
    api_key_env: LAB_API_KEY
    max_retries: 0
    concurrency: 4
    capabilities: [chat, embeddings, streaming]
models:
  - {{name: gpt-4o-mini, endpoint: openai, roles: [chat, judge]}}
  - {{name: text-embedding-3-small, endpoint: openai, roles: [embedding]}}
  - {{name: alpha-chat, endpoint: lab, roles: [chat]}}
  - {{name: beta-chat, endpoint: lab, roles: [chat]}}
"""


def experiments(models: str = "[lab/alpha-chat, lab/beta-chat]") -> str:
    return f"""\
default: baseline
experiments:
  baseline:
    prompts: all
    models: [default]
  {EXPERIMENT}:
    description: two models of the lab endpoint on one prompt
    prompts: [grounded_concise]
    models: {models}
    params: {{temperature: [0.0]}}
"""


def custom_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, models_yaml: str,
                  experiments_yaml: str) -> Path:
    """A copy of assets/ with our catalog, experiments and the lab endpoint's prices."""
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    (assets / "models.yaml").write_text(models_yaml)
    (assets / "experiments.yaml").write_text(experiments_yaml)
    pricing = assets / "pricing.yaml"
    prices = "".join(f"  lab/{m}: {{input: 0.10, output: 0.40}}\n" for m in LAB_MODELS)
    pricing.write_text(pricing.read_text().replace("models:\n", f"models:\n{prices}", 1))
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    return assets


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A test server that accepts only LAB_KEY, serving the run's endpoint and `lab` alike."""
    with FakeOpenAIServer(api_key=LAB_KEY) as server:
        monkeypatch.setenv("LLMOPS_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", LAB_KEY)
        monkeypatch.setenv("LLMOPS_OPENAI_MAX_RETRIES", "0")
        monkeypatch.setenv("LLMOPS_FINETUNE", "off")
        yield server


def evaluation_run(run_config: dict | None = None, built: dict | None = None,
                   ) -> dg.ExecuteInProcessResult:
    """evaluation_rows and everything it needs, with resources built now (keys read now)."""
    # curation is one multi-asset: curation_rejects comes with curated_documents and curated_qa.
    selection = dg.AssetSelection.assets("evaluation_rows").upstream()
    return dg.materialize(defs.assets, resources=built or resources(), run_config=run_config,
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                          selection=selection.required_multi_asset_neighbors())


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failure's error, causes included (a resource's error is wrapped by Dagster's)."""
    texts = []
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else (
            event.event_specific_data if event.is_run_failure else None)
        error = getattr(data, "error", None)
        while error is not None:
            texts.append(error.to_string())
            error = error.cause
    return "\n".join(texts)


def table(home: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(home / "tables" / f"{name}.parquet")


def answer_calls(server: FakeOpenAIServer) -> Counter[str]:
    """Chat calls the server answered, by model (no judge and no synthetic Q&A in these runs)."""
    return Counter(str(body.get("model")) for kind, body in server.requests if kind == "chat")


# -- 1. the definitions --------------------------------------------------------------------------


def test_llmops_fields_have_defaults_and_descriptions_and_keys_are_masked_env_vars(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    built = resources()
    # shard_io_manager: the evaluation shards' intermediate files, on the same settings.
    assert set(built) == {"llmops", "endpoint_keys", "io_manager", "shard_io_manager"}

    llmops = built["llmops"]
    assert isinstance(llmops, LlmopsResource)
    fields = LlmopsResource.model_fields
    for name, phrase in FIELDS.items():
        assert fields[name].default is None and getattr(llmops, name) is None, name
        assert phrase in (fields[name].description or ""), name

    keys = built["endpoint_keys"]
    assert isinstance(keys, EndpointKeysResource) and llmops.endpoint_keys is keys
    # Only the endpoint whose variable is set (the ollama one's is not), as an EnvVar by name.
    assert [(k.endpoint, k.env_var) for k in keys.api_keys] == [("openai", "OPENAI_API_KEY")]
    value = keys.api_keys[0].value
    assert isinstance(value, dg.EnvVar) and value == "OPENAI_API_KEY"
    for shown in (repr(built), str(built), repr(keys), str(keys), repr(llmops)):
        assert SENTINEL not in shown

    # What the UI and the launchpad get: the job's config schema, serialized as Dagster does.
    built_defs = dg.Definitions(assets=defs.assets, resources=built)
    job = built_defs.resolve_implicit_global_asset_job_def()
    schema = job.run_config_schema.config_type.fields["resources"].config_type.fields
    llmops_config = schema["llmops"].config_type.fields["config"]
    assert llmops_config.default_value == dict.fromkeys(FIELDS)
    for name, phrase in FIELDS.items():
        field = llmops_config.config_type.fields[name]
        assert not field.is_required and phrase in field.description, name
    keys_default = schema["endpoint_keys"].config_type.fields["config"].default_value
    assert keys_default == {"api_keys": [{"endpoint": "openai", "env_var": "OPENAI_API_KEY",
                                          "value": {"env": "OPENAI_API_KEY"}}]}
    snapshot = serialize_value(JobSnap.from_job_def(job))
    assert '{\\"env\\": \\"OPENAI_API_KEY\\"}' in snapshot
    assert SENTINEL not in snapshot


def test_an_empty_field_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "7")
    monkeypatch.setenv("LLMOPS_JUDGE_REPEATS", "2")
    keys = EndpointKeysResource()
    assert LlmopsResource(endpoint_keys=keys).settings.eval_limit == 7
    chosen = LlmopsResource(endpoint_keys=keys, eval_limit=3, judge_repeats=4).settings
    assert (chosen.eval_limit, chosen.judge_repeats) == (3, 4)
    assert chosen.experiment is None  # the file's default
    # ge=1: a run given 0 fails when its resources start, before any asset runs.
    result = dg.materialize(defs.assets, resources=resources(), raise_on_error=False,
                            selection=dg.AssetSelection.assets("candidates"),
                            instance=dg.DagsterInstance.ephemeral(),
                            run_config={"resources": {"llmops": {"config": {"eval_limit": 0}}}})
    assert not result.success and not result.get_asset_materialization_events()
    error = failure_text(result)
    assert "eval_limit" in error and "greater than or equal to 1" in error, error


# -- 2. a run config choosing the experiment and the limit ---------------------------------------


def test_run_config_evaluates_its_experiment_on_its_limit_over_the_environment(
        lab: FakeOpenAIServer, isolated_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    custom_assets(tmp_path, monkeypatch, models_yaml=catalog(lab.base_url),
                  experiments_yaml=experiments())
    monkeypatch.setenv("LAB_API_KEY", LAB_KEY)
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "5")  # the run config says 3: it wins
    monkeypatch.setenv("LLMOPS_EXPERIMENT", "baseline")  # and names another experiment

    result = evaluation_run({"resources": {"llmops": {"config": {
        "experiment": EXPERIMENT, "eval_limit": 3}}}})

    assert result.success, failure_text(result)
    candidates = table(isolated_home, "candidates")
    assert sorted(candidates["model"]) == list(LAB_MODELS)
    assert set(candidates["endpoint"]) == {"lab"}
    assert set(candidates["prompt_name"]) == {"grounded_concise"}
    metadata = result.asset_materializations_for_node("candidates")[0].metadata
    assert metadata["experiment"].value == EXPERIMENT
    rows = table(isolated_home, "evaluation_rows")
    assert set(rows["candidate_id"]) == set(candidates["candidate_id"])
    assert rows.groupby("candidate_id").size().to_dict() == dict.fromkeys(
        candidates["candidate_id"], 3)
    assert rows["qa_id"].nunique() == 3 and rows["error"].isna().all()
    # Exactly 3 answers per candidate reached the server, with the key the lab's EnvVar holds.
    assert answer_calls(lab) == dict.fromkeys(LAB_MODELS, 3)


# -- 3. a bad catalog fails before any call, naming file:line ------------------------------------


def attempt(run_config: dict | None = None) -> str:
    """The error of a run that must fail: raised building resources, or the run's failure."""
    try:
        built = resources()
    except DataError as exc:  # models.yaml is read by resources() itself
        return str(exc)
    result = evaluation_run(run_config, built)
    assert not result.success
    return failure_text(result)


def test_an_experiment_naming_an_unknown_endpoint_fails_before_any_call(
        lab: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = custom_assets(tmp_path, monkeypatch, models_yaml=catalog(lab.base_url),
                           experiments_yaml=experiments("[lab/alpha-chat, nowhere/x]"))
    monkeypatch.setenv("LAB_API_KEY", LAB_KEY)
    error = attempt({"resources": {"llmops": {"config": {"experiment": EXPERIMENT}}}})
    path = assets / "experiments.yaml"
    line = experiments("[lab/alpha-chat, nowhere/x]").splitlines().index(
        "    models: [lab/alpha-chat, nowhere/x]") + 1
    assert f"{path}:{line}" in error, error
    assert "nowhere" in error and f"experiments.{EXPERIMENT}.models" in error, error
    assert sum(lab.attempts.values()) == 0


def test_an_endpoint_whose_key_variable_is_unset_fails_before_any_call(
        lab: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = custom_assets(tmp_path, monkeypatch, models_yaml=catalog(lab.base_url),
                           experiments_yaml=experiments())
    monkeypatch.delenv("LAB_API_KEY", raising=False)
    error = attempt({"resources": {"llmops": {"config": {"experiment": EXPERIMENT}}}})
    path = assets / "models.yaml"
    line = catalog(lab.base_url).splitlines().index("    api_key_env: LAB_API_KEY") + 1
    assert sum(lab.attempts.values()) == 0, lab.attempts
    assert "LAB_API_KEY" in error and str(path) in error, error
    assert f"{path}:{line}" in error, error


def test_a_model_listed_twice_fails_before_any_call(
        lab: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models_yaml = catalog(lab.base_url) + "  - {name: beta-chat, endpoint: lab, roles: [chat]}\n"
    assets = custom_assets(tmp_path, monkeypatch, models_yaml=models_yaml,
                           experiments_yaml=experiments())
    monkeypatch.setenv("LAB_API_KEY", LAB_KEY)
    error = attempt({"resources": {"llmops": {"config": {"experiment": EXPERIMENT}}}})
    path = assets / "models.yaml"
    line = len(models_yaml.splitlines())  # the second listing, the file's last line
    assert f"{path}:{line}" in error, error
    assert "lab/beta-chat is listed twice" in error and "models.4.name" in error, error
    assert sum(lab.attempts.values()) == 0
