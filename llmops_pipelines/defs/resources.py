"""Resources: settings, the model line-up and the providers, built when a run starts.

With cli.py, the only place that reads the environment: runs through LlmopsResource, sensors
and schedules (which have no run) through automation_settings().

One precedence rule for every setting a run can be given: the run config (the launchpad's
`resources.llmops.config`) over the environment (LLMOPS_*) over the files in assets/
(experiments.yaml's `default`, models.yaml) over the built-in defaults.
"""

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from llmops_pipelines.automation.config import automation_settings as _automation
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.cached_embeddings import CachedEmbeddings
from llmops_pipelines.evaluation.lineup import CATALOG_FILE, Lineup, build_lineup
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.prompts import Prompt, load_prompts
from llmops_pipelines.providers import Provider, make_provider
from llmops_pipelines.providers.catalog import load_catalog
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings, project_root


class EndpointKey(dg.Config):
    endpoint: str = Field(description="The endpoint in assets/models.yaml.")
    env_var: str = Field(description="The variable its entry names (api_key_env).")
    value: str = Field(description="The key, read from env_var when a run starts (masked).")


class EndpointKeysResource(dg.ConfigurableResource):
    """The API key of each models.yaml endpoint, from the variable its entry names."""

    api_keys: list[EndpointKey] = Field(default_factory=list, description=(
        "One entry per endpoint whose key variable was set when the code location loaded; the "
        "others are read from the environment when a run needs them."))

    def by_endpoint(self) -> dict[str, str]:
        return {k.endpoint: k.value for k in self.api_keys}


class LlmopsResource(dg.ConfigurableResource):
    """Settings (LLMOPS_* variables), the experiment and a provider per endpoint, per run.

    Every field left empty falls back to its LLMOPS_* variable, then to the assets files.
    """

    endpoint_keys: dg.ResourceDependency[EndpointKeysResource]
    experiment: str | None = Field(default=None, description=(
        "The experiment in assets/experiments.yaml to evaluate; empty: LLMOPS_EXPERIMENT, "
        "else the file's `default`."))
    eval_limit: int | None = Field(default=None, ge=1, description=(
        "Eval questions per candidate; empty: LLMOPS_EVAL_LIMIT, else all."))
    judge_repeats: int | None = Field(default=None, ge=1, description=(
        "Runs of each judge per row; empty: LLMOPS_JUDGE_REPEATS (1)."))
    max_cost_usd: float | None = Field(default=None, ge=0, description=(
        "The run's spending cap in USD; empty: LLMOPS_MAX_COST_USD, else none."))

    _settings: Settings | None = PrivateAttr(default=None)
    _lineup: Lineup | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._setup()

    def _setup(self) -> None:
        # Run config over the environment: only the fields the run set replace a variable.
        chosen = {name: getattr(self, name) for name in
                  ("experiment", "eval_limit", "judge_repeats", "max_cost_usd")}
        base = replace(Settings.from_env(), **{k: v for k, v in chosen.items() if v is not None})
        default = make_provider(base)
        names = [p.name for p in load_prompts(base.assets_dir / "prompts",
                                               env_allow=base.prompt_env_allow)]
        # Outside Dagster's resolution (the CLI, a variable set after load): read directly.
        self._settings, self._lineup = build_lineup(base, default, self.endpoint_keys.by_endpoint(),
                                                    names, os.environ)

    @property
    def settings(self) -> Settings:
        if self._settings is None:  # used outside a run (e.g. a sensor): read now
            self._setup()
        assert self._settings is not None
        return self._settings

    @property
    def lineup(self) -> Lineup:
        if self._lineup is None:
            self._setup()
        assert self._lineup is not None
        return self._lineup

    @property
    def provider(self) -> Provider:
        """The run's own endpoint (LLMOPS_PROVIDER): chat for the default candidates."""
        return self.lineup.default

    @property
    def embedder(self) -> Provider:
        """Who embeds the index and the questions: the experiment's embedding endpoint.

        A remote one answers from the call cache first (a re-run pays for no vector twice);
        the embedded model is free and fast, so its vectors are not stored."""
        embedder = self.lineup.embedder
        if embedder.name == "local":
            return embedder
        settings = self.settings
        return CachedEmbeddings(embedder, lambda: CallCache.from_settings(settings))

    def index(self) -> ChromaIndex:
        return ChromaIndex.from_settings(self.settings, self.embedder.embed)

    def prompts(self) -> list[Prompt]:
        return load_prompts(self.settings.assets_dir / "prompts",
                            env_allow=self.settings.prompt_env_allow)

    def pricing(self) -> Pricing:
        return Pricing.load(self.settings.assets_dir / "pricing.yaml")

    def run_defaults(self) -> dict[str, Any]:
        return {"max_tokens": self.settings.max_tokens}


def endpoint_keys_resource() -> EndpointKeysResource:
    """Each catalog endpoint's key as a dg.EnvVar (masked in the UI), where the variable is set.

    Read when the code location loads: which variables exist, never their values.
    """
    assets = Path(os.environ.get("LLMOPS_ASSETS_DIR") or project_root() / "assets")
    path = assets / CATALOG_FILE
    catalog = load_catalog(path if path.exists() else project_root() / "assets" / CATALOG_FILE)
    return EndpointKeysResource(api_keys=[
        EndpointKey(endpoint=name, env_var=spec.api_key_env, value=dg.EnvVar(spec.api_key_env))
        for name, spec in catalog.endpoints.items()
        if spec.api_key_env and os.environ.get(spec.api_key_env)])


def automation_settings() -> Settings:
    """What sensors and schedules read: the automation variables of this process alone."""
    return _automation(os.environ)
