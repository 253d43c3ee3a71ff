"""The model catalog and experiment grids: the shipped files load; every bad file names file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.experiments import load_experiments
from llmops_pipelines.providers.catalog import load_catalog

ASSETS = Path(__file__).resolve().parents[2] / "assets"

CATALOG = """\
endpoints:
  local: {kind: local}
  alpha:
    kind: openai
    base_url: http://127.0.0.1:9001/v1
    api_key_env: ALPHA_KEY
    concurrency: 4
  beta: {kind: openai, base_url: "http://127.0.0.1:9002/v1", api_key_env: BETA_KEY}
models:
  - {name: small, endpoint: local, roles: [chat]}
  - {name: shared-name, endpoint: alpha, roles: [chat, judge]}
  - {name: shared-name, endpoint: beta, roles: [chat]}
  - {name: embedder, endpoint: local, roles: [embedding]}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_catalog_and_experiments_load() -> None:
    catalog = load_catalog(ASSETS / "models.yaml")
    assert {"local", "openai"} <= set(catalog.endpoints)
    assert catalog.endpoints["local"].supports("fine_tuning") is True
    experiments = load_experiments(ASSETS / "experiments.yaml", catalog)
    baseline = experiments.get(None)
    # The default experiment is today's behaviour: all prompts x the run's own chat model.
    assert baseline.name == "baseline" and baseline.prompts is None and baseline.models == (None,)
    assert baseline.param_grid() == [{}]
    three = experiments.get("three-models")
    assert [m.ref for m in three.models if m] == ["local/smollm2-135m-instruct",
                                                  "openai/gpt-4o-mini", "openai/gpt-4.1-nano"]
    assert three.embedding and three.embedding.endpoint == "local"


def test_a_name_served_by_two_endpoints_needs_its_endpoint(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "models.yaml", CATALOG))
    assert catalog.resolve("beta/shared-name", "chat").endpoint == "beta"
    with pytest.raises(ValueError, match=r"served by \['alpha', 'beta'\]: write endpoint/shared-name"):
        catalog.resolve("shared-name", "chat")
    with pytest.raises(ValueError, match="not listed with role 'judge'"):
        catalog.resolve("beta/shared-name", "judge")


def test_param_grid_is_the_cross_product_in_file_order(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "models.yaml", CATALOG))
    experiments = load_experiments(write(tmp_path, "experiments.yaml", """\
experiments:
  grid:
    models: [small, alpha/shared-name]
    params: {temperature: [0.0, 0.7], max_tokens: 64}
"""), catalog)
    grid = experiments.get("grid")
    assert grid.param_grid() == [{"temperature": 0.0, "max_tokens": 64},
                                 {"temperature": 0.7, "max_tokens": 64}]
    assert experiments.default == "grid"


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("endpoints:\n  a: {kind: grpc}\n", 2, "endpoints.a.kind", "kind must be one of"),
    ("endpoints:\n  a:\n    kind: openai\n    api_key_env: sk-live-abcdef\n", 4,
     "endpoints.a.api_key_env", "never the key itself"),
    ("endpoints:\n  a:\n    kind: openai\n    concurrency: 0\n", 4, "endpoints.a.concurrency",
     "must be a whole number >= 1"),
    ("endpoints:\n  a: {kind: local}\nmodels:\n  - {name: m, endpoint: b, roles: [chat]}\n", 4,
     "models.0.endpoint", "unknown endpoint 'b'"),
    ("endpoints:\n  a: {kind: local}\nmodels:\n  - {name: m, endpoint: a, roles: [chat]}\n"
     "  - {name: m, endpoint: a, roles: [judge]}\n", 5, "models.1.name", "listed twice"),
    ("endpoints:\n  a: {kind: local, timeout: 3}\n", 2, "endpoints.a", "unknown keys ['timeout']"),
])
def test_a_bad_catalog_names_file_line_and_key(tmp_path: Path, text: str, line: int, field: str,
                                                message: str) -> None:
    path = write(tmp_path, "models.yaml", text)
    with pytest.raises(DataError) as err:
        load_catalog(path)
    assert err.value.path == str(path) and err.value.line == line and err.value.field == field
    assert message in str(err.value) and "sk-live-abcdef" not in str(err.value)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("experiments:\n  e:\n    models: [nope/small]\n", 3, "unknown endpoint 'nope'"),
    ("experiments:\n  e:\n    models: [embedder]\n", 3, "not listed with role 'chat'"),
    ("experiments:\n  e:\n    params: {seed: [1]}\n", 3, "params may set"),
    ("default: other\nexperiments:\n  e: {}\n", 1, "default 'other' is not an experiment"),
])
def test_a_bad_experiment_names_file_line_and_key(tmp_path: Path, text: str, line: int,
                                                   message: str) -> None:
    catalog = load_catalog(write(tmp_path, "models.yaml", CATALOG))
    path = write(tmp_path, "experiments.yaml", text)
    with pytest.raises(DataError) as err:
        load_experiments(path, catalog)
    assert err.value.line == line and message in str(err.value), str(err.value)
