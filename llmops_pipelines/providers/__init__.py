"""Model providers behind one protocol; `make_provider` picks one from Settings."""

from __future__ import annotations

from llmops_pipelines.providers.base import ChatResult, ModerationResult, Provider
from llmops_pipelines.settings import Settings


def make_provider(settings: Settings) -> Provider:
    """The provider LLMOPS_PROVIDER names, imported lazily so each runs without the other's deps."""
    if settings.provider == "openai":
        from llmops_pipelines.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(settings)
    from llmops_pipelines.providers.local import LocalProvider

    return LocalProvider(settings)


__all__ = ["ChatResult", "ModerationResult", "Provider", "make_provider"]
