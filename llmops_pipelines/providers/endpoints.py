"""One provider per catalog endpoint, built on first use, so one run can call many endpoints.

The run's own endpoint (the one LLMOPS_PROVIDER names) is the run's provider, built from the
environment exactly as before: its cache namespace, and so the default candidates' cache keys,
do not move. Any other endpoint is built from its models.yaml entry; its key is read from the
variable the entry names (never from the file), through `keys` when Dagster resolved it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.providers.base import Provider
from llmops_pipelines.providers.catalog import Catalog, CatalogModel, Endpoint
from llmops_pipelines.settings import Settings

DEFAULT_ENDPOINT = ""  # a candidate on the run's own endpoint


@dataclass(frozen=True)
class Route:
    """Where one endpoint's calls go and how many may be in flight there at once."""

    name: str
    provider: Provider
    concurrency: int
    rate_limit_rps: float | None = None


class EndpointProviders:
    """Providers by endpoint name; the local endpoint is one process-wide model, serialised."""

    def __init__(self, settings: Settings, catalog: Catalog, default: Provider,
                 keys: Mapping[str, str]) -> None:
        self.settings, self.catalog, self.default = settings, catalog, default
        self._keys = dict(keys)  # endpoint name -> key; never logged, never in a message
        self._built: dict[str, Provider] = {}
        self._lock = threading.Lock()

    @property
    def default_name(self) -> str:
        return self.settings.provider

    def name_of(self, endpoint: str) -> str:
        return endpoint or self.default_name

    def endpoint(self, endpoint: str) -> Endpoint | None:
        return self.catalog.endpoints.get(self.name_of(endpoint))

    def is_default(self, endpoint: str) -> bool:
        return self.name_of(endpoint) == self.default_name

    def provider(self, endpoint: str, *, embedding_model: str | None = None) -> Provider:
        """The provider serving `endpoint` ("" or the run's own name: the run's provider)."""
        if self.is_default(endpoint) and embedding_model in (None, self.default.embedding_model):
            return self.default
        name = self.name_of(endpoint)
        key = f"{name}|{embedding_model or ''}"
        with self._lock:
            if key not in self._built:
                self._built[key] = self._build(name, embedding_model)
            return self._built[key]

    def route(self, endpoint: str) -> Route:
        """The provider and concurrency for chat calls to `endpoint`."""
        provider = self.provider(endpoint)
        spec = self.endpoint(endpoint)
        if provider.name == "local":
            # One llama.cpp model serves one call at a time: more would only queue.
            return Route(self.name_of(endpoint), provider, 1)
        if self.is_default(endpoint):
            return Route(self.default_name, provider, self.settings.eval_concurrency,
                         spec.rate_limit_rps if spec else None)
        assert spec is not None  # built from the catalog, so it is there
        return Route(spec.name, provider, spec.concurrency, spec.rate_limit_rps)

    def for_model(self, model: CatalogModel | None) -> Provider:
        return self.default if model is None else self.provider(model.endpoint)

    def _build(self, name: str, embedding_model: str | None) -> Provider:
        if self.is_default(name) and self.default.name == "openai":
            from llmops_pipelines.providers.openai_provider import OpenAIProvider

            # The run's own endpoint with another embedding model: configured by the same env.
            return OpenAIProvider(self.settings, embedding_model=embedding_model)
        spec = self.catalog.endpoints.get(name)
        if spec is None:
            raise SettingsError(f"unknown endpoint {name!r}: {self.catalog.path} defines "
                                f"{sorted(self.catalog.endpoints)}")
        if spec.kind == "local":
            if self.default.name == "local":
                return self.default  # one embedded model per process, whatever the role
            from llmops_pipelines.providers.local import (
                BASE_CHAT_MODEL,
                EMBEDDING_MODEL,
                LocalProvider,
            )

            return LocalProvider(replace(self.settings, chat_model=BASE_CHAT_MODEL,
                                         embedding_model=EMBEDDING_MODEL))
        from llmops_pipelines.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(self.settings, endpoint=spec, api_key=self._key(spec),
                              chat_model=self._first(name, "chat"),
                              embedding_model=embedding_model or self._first(name, "embedding"))

    def _key(self, spec: Endpoint) -> str | None:
        if spec.api_key_env is None:
            return "not-needed"  # a server without auth; the client insists on some key
        key = self._keys.get(spec.name)
        if not key:
            raise self.catalog.error(f"endpoint {spec.name!r} reads its key from "
                                     f"{spec.api_key_env}, which is not set; export it (any "
                                     "non-empty value for servers without auth)",
                                     f"endpoints.{spec.name}.api_key_env")
        return key

    def _first(self, endpoint: str, role: str) -> str | None:
        return next((m.name for m in self.catalog.models
                     if m.endpoint == endpoint and role in m.roles), None)


def endpoint_keys(catalog: Catalog, env: Mapping[str, str]) -> dict[str, str]:
    """endpoint name -> key, for the endpoints whose key variable is set in `env`."""
    return {name: env[spec.api_key_env] for name, spec in catalog.endpoints.items()
            if spec.api_key_env and env.get(spec.api_key_env)}
