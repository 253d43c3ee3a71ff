"""Resources: settings and the provider, built when a run starts (never at import).

With cli.py, the only place that reads the environment: runs through LlmopsResource, sensors
and schedules (which have no run) through automation_settings().
"""

import os
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from llmops_pipelines.automation.config import automation_settings as _automation
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.prompts import Prompt, load_prompts
from llmops_pipelines.providers import Provider, make_provider
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings


class LlmopsResource(dg.ConfigurableResource):
    """Reads Settings from the environment at run start and hands out the provider and stores."""

    _settings: Settings | None = PrivateAttr(default=None)
    _provider: Provider | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = Settings.from_env()
        self._provider = make_provider(self._settings)

    @property
    def settings(self) -> Settings:
        if self._settings is None:  # used outside a run (e.g. a sensor): read now
            self._settings = Settings.from_env()
        return self._settings

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.settings)
        return self._provider

    def index(self) -> ChromaIndex:
        s = self.settings
        return ChromaIndex.open(path=str(s.chroma_dir), url=s.chroma_url,
                                embedding_model=s.embedding_model, embed=self.provider.embed)

    def prompts(self) -> list[Prompt]:
        return load_prompts(self.settings.assets_dir / "prompts",
                            env_allow=self.settings.prompt_env_allow)

    def pricing(self) -> Pricing:
        return Pricing.load(self.settings.assets_dir / "pricing.yaml")

    def run_defaults(self) -> dict[str, Any]:
        return {"max_tokens": self.settings.max_tokens}


def automation_settings() -> Settings:
    """What sensors and schedules read: the automation variables of this process alone."""
    return _automation(os.environ)
