"""A run's line-up: the model catalog, the chosen experiment and a provider per endpoint.

Built once when a run starts, before any call, so a bad catalog or experiment (an unknown
endpoint, a missing key variable, a duplicate model) fails the run with file:line first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.experiments import Experiment, candidates_of, load_experiments
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.base import Provider
from llmops_pipelines.providers.catalog import Catalog, load_catalog
from llmops_pipelines.providers.endpoints import EndpointProviders, Route, endpoint_keys
from llmops_pipelines.settings import Settings, project_root

CATALOG_FILE = "models.yaml"
EXPERIMENTS_FILE = "experiments.yaml"


def assets_file(settings: Settings, name: str) -> Path:
    """The file in LLMOPS_ASSETS_DIR, or the project's own when that folder predates it."""
    path = settings.assets_dir / name
    return path if path.exists() else project_root() / "assets" / name


@dataclass
class Lineup:
    catalog: Catalog
    experiment: Experiment
    providers: EndpointProviders
    embedder: Provider  # builds the index and embeds for the metrics
    judge_endpoint: str = ""

    @property
    def default(self) -> Provider:
        return self.providers.default

    def candidates(self, prompts: list[Prompt], default_models: list[str]) -> list[Candidate]:
        return candidates_of(self.experiment, prompts, default_models,
                             self.providers.default_name)

    def routes(self, candidates: list[Candidate]) -> dict[str, Route]:
        """Each endpoint the candidates (and the judge) call, built before the first call."""
        names = {c.endpoint for c in candidates} | {self.judge_endpoint}
        return {name: self.providers.route(name) for name in sorted(names) if name}

    def check_keys(self) -> None:
        """Build the provider of every endpoint the experiment names, now: a missing key
        variable fails the run when it starts, before any call of any asset."""
        experiment = self.experiment
        for model in [*experiment.models, experiment.embedding, experiment.judge]:
            if model is not None:
                self.providers.route(model.endpoint)


def build_lineup(settings: Settings, default: Provider, keys: Mapping[str, str],
                 prompt_names: Collection[str],
                 env: Mapping[str, str] | None = None) -> tuple[Settings, Lineup]:
    """The settings with the experiment's embedding and judge applied, and the line-up.

    `keys` (endpoint -> key, e.g. resolved by Dagster) win over the variables in `env`.
    """
    catalog = load_catalog(assets_file(settings, CATALOG_FILE))
    keys = {**endpoint_keys(catalog, env or {}), **keys}
    experiments = load_experiments(assets_file(settings, EXPERIMENTS_FILE), catalog, prompt_names)
    try:
        experiment = experiments.get(settings.experiment)
    except ValueError as exc:  # named by LLMOPS_EXPERIMENT or the run config
        raise SettingsError(f"{exc} (chosen by the run config or LLMOPS_EXPERIMENT)") from None
    providers = EndpointProviders(settings, catalog, default, keys)
    embedder, judge_endpoint = default, ""
    if experiment.embedding is not None:
        model = experiment.embedding
        embedder = providers.provider(model.endpoint, embedding_model=model.name)
        settings = replace(settings, embedding_model=model.name)
    if experiment.judge is not None:
        settings = replace(settings, judge_model=experiment.judge.name)
        judge_endpoint = experiment.judge.endpoint
    lineup = Lineup(catalog, experiment, providers, embedder, judge_endpoint)
    lineup.check_keys()
    return settings, lineup
