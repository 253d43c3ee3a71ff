"""Names used in paths never climb out of LLMOPS_HOME (issue 13, finding 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmops_pipelines.errors import PromptError
from llmops_pipelines.promotion.deploy import snapshot_prompt
from llmops_pipelines.promotion.registry import Deployment
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def deployment(prompt_name: str, version: str, deployment_id: str = "dep-0123abcd") -> Deployment:
    return Deployment(deployment_id, f"{prompt_name}@m#1", prompt_name, version, "m", "{}", "i",
                      "d", {}, 0.0)


def assets_with(tmp_path: Path, name_line: str) -> Path:
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    path = assets / "prompts" / "grounded_concise.prompty"
    path.write_text(path.read_text().replace("name: grounded_concise", name_line, 1))
    return assets


def test_a_climbing_prompt_name_never_loads_so_never_becomes_a_path(tmp_path: Path,
                                                                  monkeypatch) -> None:
    assets = assets_with(tmp_path, "name: ../../../../../tmp/escaped")
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    with pytest.raises(PromptError, match=r"grounded_concise\.prompty:2: prompt name"):
        load_prompts(assets / "prompts")


def test_snapshot_refuses_a_name_from_the_registry_that_climbs(tmp_path: Path) -> None:
    settings = Settings.from_env()
    # A registry row written by an older version (or by hand) is not trusted either.
    for bad in (deployment("../../../../tmp/escaped", "v"),
                deployment("grounded_concise", "v", deployment_id="../../outside")):
        with pytest.raises(PromptError, match="cannot be used"):
            snapshot_prompt(settings, bad)
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path / "outside").exists()


def test_snapshot_of_a_name_with_spaces_is_slugged_inside_the_home(tmp_path: Path,
                                                                  monkeypatch) -> None:
    assets = assets_with(tmp_path, "name: Grounded Concise v2")
    monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
    settings = Settings.from_env()
    prompt = next(p for p in load_prompts(assets / "prompts") if p.name == "Grounded Concise v2")
    kept = snapshot_prompt(settings, deployment(prompt.name, prompt.version))
    assert kept.version == prompt.version
    files = list((settings.home / "deployments").rglob("*.prompty"))
    assert [f.name for f in files] == ["Grounded-Concise-v2.prompty"]
    assert files[0].resolve().is_relative_to(settings.home)
    # Served again from the kept copy, under the same slug.
    assert snapshot_prompt(settings, deployment(prompt.name, prompt.version)).version == prompt.version
