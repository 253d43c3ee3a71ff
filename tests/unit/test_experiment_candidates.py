"""Experiments -> candidates: the default keeps today's ids; grids, endpoints and params."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.experiments import candidates_of, load_experiments
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.plan import candidate_params
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.catalog import load_catalog

REPO = Path(__file__).resolve().parents[2]
PROMPTS = load_prompts(REPO / "assets" / "prompts")
CATALOG = """\
endpoints:
  local: {kind: local}
  a: {kind: openai, base_url: "http://127.0.0.1:1/v1", api_key_env: KEY_A}
  b: {kind: openai, base_url: "http://127.0.0.1:2/v1", api_key_env: KEY_B}
models:
  - {name: smollm2-135m-instruct, endpoint: local, roles: [chat]}
  - {name: shared, endpoint: a, roles: [chat]}
  - {name: shared, endpoint: b, roles: [chat]}
  - {name: only-a, endpoint: a, roles: [chat]}
"""


def experiments(tmp_path: Path, body: str):
    (tmp_path / "models.yaml").write_text(CATALOG)
    (tmp_path / "experiments.yaml").write_text(body)
    catalog = load_catalog(tmp_path / "models.yaml")
    return load_experiments(tmp_path / "experiments.yaml", catalog, [p.name for p in PROMPTS])


def test_the_repo_default_experiment_keeps_todays_candidate_ids() -> None:
    catalog = load_catalog(REPO / "assets" / "models.yaml")
    default = load_experiments(REPO / "assets" / "experiments.yaml", catalog).get(None)
    models = ["smollm2-135m-instruct", "local-ft:abc"]
    built = candidates_of(default, PROMPTS, models, "local")
    # cross() is how candidates were built before experiments existed.
    assert [c.candidate_id for c in built] == [c.candidate_id for c in cross(PROMPTS, models)]
    assert {c.endpoint for c in built} == {"local"}


def test_a_model_two_endpoints_serve_is_named_with_its_endpoint(tmp_path: Path) -> None:
    grid = experiments(tmp_path, """\
experiments:
  mixed:
    prompts: [grounded_concise]
    models: [default, a/shared, b/shared, a/only-a, local/smollm2-135m-instruct]
""").get("mixed")
    built = candidates_of(grid, PROMPTS, ["smollm2-135m-instruct"], "local")
    # The default model listed again as local/<model> is the same candidate: kept once.
    assert [c.label for c in built] == ["smollm2-135m-instruct", "a/shared", "b/shared", "only-a"]
    assert [c.endpoint for c in built] == ["local", "a", "b", "a"]
    assert len({c.candidate_id for c in built}) == 4
    assert built[1].candidate_id.startswith("grounded_concise@a/shared#")


def test_params_grid_sets_chat_and_retrieval_params_apart(tmp_path: Path) -> None:
    grid = experiments(tmp_path, """\
experiments:
  sweep:
    prompts: [grounded_concise]
    models: [a/only-a]
    params: {temperature: [0.0, 0.7], top_k: [2, 5], retrieval: hybrid}
""").get("sweep")
    built = candidates_of(grid, PROMPTS, [], "local")
    assert len(built) == 4 and len({c.candidate_id for c in built}) == 4
    first = built[0]
    assert first.retrieval == (2, "hybrid")
    # top_k and the retrieval mode choose the chunks; they never reach the chat request.
    params = candidate_params(first, {"max_tokens": 50})
    assert set(params) == {"temperature", "max_tokens"} and params["temperature"] == 0.0
    assert candidate_params(built[2], {})["temperature"] == 0.7


@pytest.mark.parametrize(("body", "where"), [
    ("experiments:\n  x:\n    models: [nowhere/m]\n", "experiments.x.models.0"),
    ("experiments:\n  x:\n    models: [shared]\n", "experiments.x.models.0"),  # ambiguous
    ("experiments:\n  x:\n    prompts: [no_such_prompt]\n", "experiments.x.prompts.0"),
    ("experiments:\n  x:\n    params: {seed: 1}\n", "experiments.x.params"),
])
def test_bad_experiments_name_file_line_and_key(tmp_path: Path, body: str, where: str) -> None:
    with pytest.raises(DataError) as caught:
        experiments(tmp_path, body)
    assert caught.value.path == str(tmp_path / "experiments.yaml")
    assert caught.value.line is not None and caught.value.field == where


def test_an_endpoint_price_wins_over_the_bare_name(tmp_path: Path) -> None:
    (tmp_path / "pricing.yaml").write_text(
        "models:\n  shared: {input: 1, output: 1}\n  b/shared: {input: 9, output: 9}\n")
    pricing = Pricing.load(tmp_path / "pricing.yaml")
    assert pricing.name_for("shared", "a") == "shared"
    assert pricing.name_for("shared", "b") == "b/shared"
    # A server answering with the bare (or a dated) name is still priced at its endpoint's.
    assert pricing.priced_model("shared", "b/shared") == "b/shared"
