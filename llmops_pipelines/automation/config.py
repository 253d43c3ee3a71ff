"""The settings sensors and schedules read: the automation variables alone, and whether a run
they would launch costs money (read from the files, never by building a provider)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.experiments import load_experiments
from llmops_pipelines.evaluation.lineup import CATALOG_FILE, EXPERIMENTS_FILE, assets_file
from llmops_pipelines.providers.catalog import load_catalog
from llmops_pipelines.settings import Settings

# Only these, so a provider misconfiguration fails the launched run with its own clear error
# instead of silencing every sensor, and loading the code location needs no API key.
AUTOMATION_VARS = ("LLMOPS_HOME", "LLMOPS_ASSETS_DIR", "LLMOPS_DATASETS_DIR", "LLMOPS_NIGHTLY_CRON",
                   "LLMOPS_TIMEZONE", "LLMOPS_SENSOR_INTERVAL_S", "LLMOPS_RETRAIN_GROWTH",
                   "LLMOPS_ALERT_WEBHOOK")
# What decides the endpoints a launched run calls (a sensor's run has no run config).
SPEND_VARS = ("LLMOPS_PROVIDER", "LLMOPS_EXPERIMENT")
FREE_KIND = "local"  # the embedded model: SmolLM2 on llama.cpp, MiniLM on ONNX


def automation_settings(env: Mapping[str, str]) -> Settings:
    """Settings from the automation variables of `env` alone (cron, interval, folders, webhook)."""
    return Settings.from_env({k: env[k] for k in AUTOMATION_VARS if k in env})


@dataclass(frozen=True)
class Spend:
    """What a launched run would call that costs money; nothing when it is all embedded."""

    experiment: str | None
    paid: tuple[str, ...]  # e.g. "LLMOPS_PROVIDER=openai", "endpoint 'openai'"

    @property
    def free(self) -> bool:
        return not self.paid

    def describe(self) -> str:
        if self.free:
            return f"every endpoint of experiment {self.experiment!r} is the embedded local model"
        return "a run would call " + ", ".join(self.paid)


def run_spend(env: Mapping[str, str]) -> Spend:
    """Whether a run launched now would only call the embedded local model: LLMOPS_PROVIDER is
    local and the chosen experiment (LLMOPS_EXPERIMENT, else experiments.yaml's default) names
    only `kind: local` endpoints for its models, embedding and judge. Read from the files alone;
    a file that does not load counts as paid (nothing is launched on a guess)."""
    provider = (env.get("LLMOPS_PROVIDER") or FREE_KIND).strip().lower() or FREE_KIND
    if provider != FREE_KIND:
        return Spend(None, (f"LLMOPS_PROVIDER={provider}",))
    try:
        settings = automation_settings(env)
        catalog = load_catalog(assets_file(settings, CATALOG_FILE))
        experiment = load_experiments(assets_file(settings, EXPERIMENTS_FILE), catalog).get(
            env.get("LLMOPS_EXPERIMENT") or None)
    except (LlmopsError, ValueError, OSError) as exc:
        return Spend(env.get("LLMOPS_EXPERIMENT") or None,
                     (f"an experiment that does not load ({exc})",))
    # A `default` model (None) is the run's own endpoint: LLMOPS_PROVIDER, local here.
    named = [m for m in (*experiment.models, experiment.embedding, experiment.judge)
             if m is not None]
    paid = sorted({m.endpoint for m in named
                   if catalog.endpoints[m.endpoint].kind != FREE_KIND})
    return Spend(experiment.name, tuple(f"endpoint {name!r}" for name in paid))
