"""A champion evaluated on a catalog endpoint is served by that endpoint, with its retrieval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.serving.champion_app import ChampionApp
from llmops_pipelines.settings import Settings
from tests.conftest import REPO
from tests.support.openai_server import FakeOpenAIServer


def test_the_champion_answers_from_its_own_endpoint(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key="lab-key") as lab:
        assets = tmp_path / "assets"
        shutil.copytree(REPO / "assets", assets)
        catalog = yaml.safe_load((assets / "models.yaml").read_text())
        catalog["endpoints"]["lab"] = {"kind": "openai", "base_url": lab.base_url,
                                       "api_key_env": "LAB_KEY", "max_retries": 0}
        catalog["models"].append({"name": "lab-chat", "endpoint": "lab", "roles": ["chat"]})
        (assets / "models.yaml").write_text(yaml.safe_dump(catalog))
        monkeypatch.setenv("LLMOPS_ASSETS_DIR", str(assets))
        monkeypatch.setenv("LAB_KEY", "lab-key")
        settings = Settings.from_env()  # LLMOPS_PROVIDER=local: the run's own endpoint
        prompt = next(p for p in load_prompts(assets / "prompts") if p.name == "grounded_concise")
        summary = {"candidate_id": "grounded_concise@lab-chat#x", "prompt_name": prompt.name,
                   "prompt_version": prompt.version, "model": "lab-chat", "endpoint": "lab",
                   "params": json.dumps({"temperature": 0.3, "top_k": 2})}
        Registry(settings.registry_path).promote(summary, {"index": "i", "data": "d"},
                                                 reason="test")
        served = ChampionApp(settings).answer("How long is the warranty?")

        # The lab server answered, with the deployment's chat parameters and not its top_k
        # (a retrieval setting); the embedded model was never asked.
        chats = [body for route, body in lab.requests if route == "chat"]
        assert [body["model"] for body in chats] == ["lab-chat"]
        assert chats[0]["temperature"] == 0.3 and "top_k" not in chats[0]
        assert served.result.model == "lab-chat" and served.result.text
