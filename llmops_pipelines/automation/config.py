"""The settings sensors and schedules read: the automation variables alone."""

from __future__ import annotations

from collections.abc import Mapping

from llmops_pipelines.settings import Settings

# Only these, so a provider misconfiguration fails the launched run with its own clear error
# instead of silencing every sensor, and loading the code location needs no API key.
AUTOMATION_VARS = ("LLMOPS_HOME", "LLMOPS_ASSETS_DIR", "LLMOPS_DATASETS_DIR", "LLMOPS_NIGHTLY_CRON",
                   "LLMOPS_TIMEZONE", "LLMOPS_SENSOR_INTERVAL_S", "LLMOPS_RETRAIN_GROWTH",
                   "LLMOPS_ALERT_WEBHOOK")


def automation_settings(env: Mapping[str, str]) -> Settings:
    """Settings from the automation variables of `env` alone (cron, interval, folders, webhook)."""
    return Settings.from_env({k: env[k] for k in AUTOMATION_VARS if k in env})
