"""assets/models.yaml: named endpoints and the models they serve, validated on load.

An endpoint names the environment variable that holds its key, never the key. Prices stay in
assets/pricing.yaml (one source of truth); the catalog says where a model runs and what for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_pipelines.errors import DataError
from llmops_pipelines.providers.yaml_lines import Located, load_located

KINDS = ("local", "openai")  # openai = any OpenAI-compatible API: OpenAI, Azure, vLLM, Ollama...
ROLES = ("chat", "embedding", "judge", "moderation", "finetune_base")
CAPABILITIES = ("chat", "embeddings", "moderation", "fine_tuning", "streaming")
ENDPOINT_KEYS = {"kind", "base_url", "api_key_env", "timeout_s", "max_retries", "concurrency",
                 "rate_limit_rps", "embedding_batch", "capabilities"}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# A key variable's name, not a value: upper case, digits and underscores.
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
LOCAL_CAPABILITIES = frozenset({"chat", "embeddings", "moderation", "fine_tuning"})


@dataclass(frozen=True)
class Endpoint:
    """Where calls go, how long they may take, and how hard the endpoint may be pushed."""

    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    concurrency: int = 8
    rate_limit_rps: float | None = None
    embedding_batch: int = 256
    capabilities: frozenset[str] | None = None  # None: probe once when first needed

    def supports(self, capability: str) -> bool | None:
        """True/False when declared (or implied for the local endpoint); None when unknown."""
        if self.kind == "local":
            return capability in LOCAL_CAPABILITIES
        return None if self.capabilities is None else capability in self.capabilities


@dataclass(frozen=True)
class CatalogModel:
    name: str
    endpoint: str
    roles: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.endpoint}/{self.name}"


@dataclass(frozen=True)
class Catalog:
    endpoints: dict[str, Endpoint]
    models: tuple[CatalogModel, ...]
    path: str
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def error(self, message: str, where: str) -> DataError:
        """A DataError naming this file, the line of `where` (a key path) and the key."""
        return Located(None, self.path, self.lines).error(message, where)

    def resolve(self, ref: str, role: str, *, where: str = "") -> CatalogModel:
        """`endpoint/model`, or a bare model name served by exactly one endpoint, in that role."""
        endpoint, _, name = ref.rpartition("/") if "/" in ref else ("", "", ref)
        found = [m for m in self.models if m.name == name and (not endpoint or m.endpoint == endpoint)]
        if endpoint and endpoint not in self.endpoints:
            raise ValueError(f"{where or ref}: unknown endpoint {endpoint!r}; the catalog "
                             f"{self.path} has {sorted(self.endpoints)}")
        if not found:
            raise ValueError(f"{where or ref}: no model {ref!r} in {self.path}")
        if len(found) > 1:
            raise ValueError(f"{where or ref}: {name!r} is served by "
                             f"{sorted(m.endpoint for m in found)}: write endpoint/{name}")
        model = found[0]
        if role not in model.roles:
            raise ValueError(f"{where or ref}: {model.ref} is not listed with role {role!r} "
                             f"(its roles: {list(model.roles)})")
        return model


def _number(doc: Located, value: Any, where: str, *, lo: float, integer: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise doc.error(f"must be {kind} >= {lo:g}, found {value!r}", where)
    return int(value) if integer else float(value)


def _endpoint(doc: Located, name: str, spec: Any) -> Endpoint:
    where = f"endpoints.{name}"
    if not NAME.match(name):
        raise doc.error("endpoint names are lower-case letters, digits, '-' and '_'", where)
    if not isinstance(spec, dict):
        raise doc.error("an endpoint is a mapping with at least 'kind'", where)
    unknown = sorted(set(spec) - ENDPOINT_KEYS)
    if unknown:
        raise doc.error(f"unknown keys {unknown}; expected some of {sorted(ENDPOINT_KEYS)}", where)
    kind = spec.get("kind")
    if kind not in KINDS:
        raise doc.error(f"kind must be one of {list(KINDS)}, found {kind!r}", f"{where}.kind")
    key_env = spec.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not ENV_NAME.match(key_env)):
        # A value that looks like a key would be a secret committed to the repo: refuse it unread.
        raise doc.error("api_key_env names the environment variable holding the key "
                        "(e.g. OPENAI_API_KEY), never the key itself", f"{where}.api_key_env")
    caps = spec.get("capabilities")
    if caps is not None:
        if not isinstance(caps, list) or not set(caps) <= set(CAPABILITIES):
            raise doc.error(f"capabilities is a list of {list(CAPABILITIES)}", f"{where}.capabilities")
        caps = frozenset(caps)
    base_url = spec.get("base_url")
    if base_url is not None and not (isinstance(base_url, str) and re.match(r"^https?://", base_url)):
        raise doc.error(f"base_url must be an http(s) URL, found {base_url!r}", f"{where}.base_url")
    rate = spec.get("rate_limit_rps")
    return Endpoint(
        name=name, kind=kind, base_url=base_url, api_key_env=key_env,
        timeout_s=_number(doc, spec.get("timeout_s", 60.0), f"{where}.timeout_s", lo=0.001),
        max_retries=_number(doc, spec.get("max_retries", 4), f"{where}.max_retries", lo=0,
                            integer=True),
        concurrency=_number(doc, spec.get("concurrency", 8), f"{where}.concurrency", lo=1,
                            integer=True),
        rate_limit_rps=None if rate is None else _number(doc, rate, f"{where}.rate_limit_rps",
                                                         lo=0.001),
        embedding_batch=_number(doc, spec.get("embedding_batch", 256), f"{where}.embedding_batch",
                                lo=1, integer=True),
        capabilities=caps)


def _model(doc: Located, i: int, spec: Any, endpoints: dict[str, Endpoint]) -> CatalogModel:
    where = f"models.{i}"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise doc.error("a model is a mapping with 'name', 'endpoint' and 'roles'", where)
    unknown = sorted(set(spec) - {"name", "endpoint", "roles"})
    if unknown:
        raise doc.error(f"unknown keys {unknown}; expected name, endpoint, roles", where)
    if spec.get("endpoint") not in endpoints:
        raise doc.error(f"unknown endpoint {spec.get('endpoint')!r}; defined: {sorted(endpoints)}",
                        f"{where}.endpoint")
    roles = spec.get("roles")
    if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
        raise doc.error(f"roles is a non-empty list of {list(ROLES)}", f"{where}.roles")
    return CatalogModel(spec["name"], spec["endpoint"], tuple(roles))


def load_catalog(path: Path) -> Catalog:
    """Parse and validate the catalog; every error names the file, line and key."""
    doc = load_located(path)
    data = doc.data if isinstance(doc.data, dict) else None
    if data is None or not isinstance(data.get("endpoints"), dict) or not data["endpoints"]:
        raise doc.error("the catalog needs an 'endpoints' mapping", "endpoints")
    unknown = sorted(set(data) - {"endpoints", "models"})
    if unknown:
        raise doc.error(f"unknown top-level keys {unknown}; expected endpoints, models", unknown[0])
    endpoints = {str(n): _endpoint(doc, str(n), s) for n, s in data["endpoints"].items()}
    models = data.get("models") or []
    if not isinstance(models, list):
        raise doc.error("'models' is a list", "models")
    parsed = [_model(doc, i, s, endpoints) for i, s in enumerate(models)]
    seen: dict[str, int] = {}
    for i, model in enumerate(parsed):
        if model.ref in seen:
            raise doc.error(f"{model.ref} is listed twice (first at models.{seen[model.ref]})",
                            f"models.{i}.name")
        seen[model.ref] = i
    return Catalog(endpoints, tuple(parsed), doc.path, doc.lines)
