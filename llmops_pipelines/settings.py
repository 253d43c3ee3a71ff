"""One Settings object built from environment variables when a run starts, never at import."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upath import UPath

from llmops_pipelines.errors import SettingsError

PROVIDERS = ("local", "openai")

# Defaults per provider: the local ones name the embedded models, the remote ones are
# cheap OpenAI models that any OpenAI-compatible server may override by name.
DEFAULT_MODELS = {
    "local": {
        "chat": "smollm2-135m-instruct",
        "embedding": "all-minilm-l6-v2-int8",
        "finetune_base": "smollm2-135m-instruct",
    },
    "openai": {
        "chat": "gpt-4o-mini",
        "embedding": "text-embedding-3-small",
        "finetune_base": "gpt-4o-mini-2024-07-18",
    },
}


def project_root() -> Path:
    """The checkout this package runs from, or the working directory when installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0,
         maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum or (maximum is not None and value > maximum):
        expected = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name}={raw!r} is out of range: expected {expected}")
    return value


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...],
            default: str | None = None) -> str:
    value = (env.get(name) or default or allowed[0]).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: expected one of {allowed}")
    return value


def _float(env: dict[str, str], name: str, default: float | None, *,
           minimum: float = 0.0, positive: bool = False) -> float | None:
    """A finite number >= minimum (> 0 when positive); NaN and inf would disable a bound silently."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if value < minimum or (positive and value <= 0):
        raise SettingsError(f"{name}={raw!r} is out of range: expected "
                            f"{'> 0' if positive else f'>= {minimum:g}'}")
    return value


def _positive(env: dict[str, str], name: str, default: float) -> float:
    value = _float(env, name, default, positive=True)
    return default if value is None else value


def _token_header(env: dict[str, str]) -> str:
    """The header LLMOPS_CHROMA_TOKEN travels in, spelled as chromadb's token auth spells it."""
    raw = (env.get("LLMOPS_CHROMA_TOKEN_HEADER") or "Authorization").strip()
    allowed = {"authorization": "Authorization", "x-chroma-token": "X-Chroma-Token"}
    if raw.lower() not in allowed:
        raise SettingsError(f"LLMOPS_CHROMA_TOKEN_HEADER={raw!r}: expected one of "
                            f"{tuple(allowed.values())}")
    return allowed[raw.lower()]


def _team(env: dict[str, str]) -> dict[str, Any]:
    """The team-profile settings: PostgreSQL, shared tables, Chroma server auth, Dask, shards."""
    profile = _choice(env, "LLMOPS_PROFILE", ("local", "team"))
    database_url = env.get("LLMOPS_DATABASE_URL") or None
    if profile == "team" and not database_url:
        raise SettingsError("LLMOPS_PROFILE=team needs LLMOPS_DATABASE_URL (e.g. postgresql+"
                            "psycopg2://user@db:5432/llmops): every worker and server shares "
                            "the registry, call cache and production log there; see "
                            "deploy/team/env.example")
    return {
        "profile": profile, "database_url": database_url,
        "tables_uri": env.get("LLMOPS_TABLES_URI") or None,
        "chroma_token": env.get("LLMOPS_CHROMA_TOKEN") or None,
        "chroma_token_header": _token_header(env),
        "dask_scheduler": env.get("LLMOPS_DASK_SCHEDULER") or None,
        # A team run fans the evaluation out by default; a laptop keeps one step.
        "eval_shards": _choice(env, "LLMOPS_EVAL_SHARDS", ("off", "candidate"),
                               default="candidate" if profile == "team" else "off"),
        "eval_shard_questions": _int(env, "LLMOPS_EVAL_SHARD_QUESTIONS", 0),
    }


@dataclass(frozen=True)
class Settings:
    """Every knob of a run; see the README's configuration table for each variable."""

    home: Path
    datasets_dir: Path
    assets_dir: Path
    provider: str = "local"
    chat_model: str = DEFAULT_MODELS["local"]["chat"]
    embedding_model: str = DEFAULT_MODELS["local"]["embedding"]
    judge_model: str | None = None
    finetune_base_model: str = DEFAULT_MODELS["local"]["finetune_base"]
    openai_base_url: str | None = None
    chroma_url: str | None = None
    openai_timeout_s: float = 60.0
    openai_max_retries: int = 4
    eval_concurrency: int = 8
    eval_limit: int | None = None
    eval_row_timeout_s: float = 300.0
    eval_max_attempts: int = 6
    judge_repeats: int = 1
    stream: bool = False
    top_k: int = 3
    retrieval: str = "vector"
    chunk_tokens: int = 160
    chunk_overlap: int = 0
    max_tokens: int = 160
    max_cost_usd: float | None = None
    finetune: str = "auto"
    finetune_prompt: str = "grounded_concise"
    finetune_epochs: int = 2
    finetune_poll_s: float = 10.0
    finetune_deadline_s: float = 6 * 3600.0
    finetune_max_cost_usd: float | None = None
    finetune_retrain_share: float | None = None  # None: any change locally, retrain_growth remotely
    synthetic_qa: int = 0
    min_eval_rows: int = 5
    # Serving and monitoring. The token is a secret: kept out of repr, so never in logs.
    serve_token: str | None = field(default=None, repr=False)
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    serve_max_body_bytes: int = 1 << 20  # larger request bodies get 413
    monitor_sample: int = 200
    # Conversations: what retrieval searches for on a follow-up (concat: the last user turns;
    # rewrite: the candidate's model writes a standalone question), and the model's window the
    # history is trimmed to (oldest turns first).
    conversation_query: str = "concat"
    context_tokens: int = 2048
    trace_content: bool = False  # LLMOPS_TRACE_CONTENT=on: question/answer text in span attributes
    # Automation: the cron, timezone and sensor interval are read when the code location loads.
    nightly_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    sensor_interval_s: int = 30
    retrain_growth: float = 0.2
    # May carry credentials (user:password@, ?token=): a secret, so never in repr or logs.
    alert_webhook: str | None = field(default=None, repr=False)
    index_allow_shrink: bool = False  # a sync may empty or halve the index (else it refuses)
    index_max_shrink: float = 0.5  # the share of the index a sync may lose without the above
    prompt_env_allow: tuple[str, ...] = ()  # variables ${env:} may read; secrets never
    experiment: str | None = None  # assets/experiments.yaml; None: the file's `default`
    # Team scale (README "Running as a team"). The URL may carry a password: never in repr.
    profile: str = "local"  # local | team
    database_url: str | None = field(default=None, repr=False)  # our state; None: SQLite
    tables_uri: str | None = None  # Parquet outputs; None: LLMOPS_HOME/tables; any fsspec URL
    chroma_token: str | None = field(default=None, repr=False)  # Chroma server auth header
    chroma_token_header: str = "Authorization"  # Authorization (Bearer) | X-Chroma-Token
    dask_scheduler: str | None = None  # tcp://host:8786 of a running Dask cluster (team)
    eval_shards: str = "off"  # off: one evaluation step; candidate: a step per candidate
    eval_shard_questions: int = 0  # with eval_shards=candidate: at most this many per step

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read and validate the environment; raise SettingsError naming the variable."""
        env = dict(os.environ if env is None else env)
        root = project_root()
        provider = env.get("LLMOPS_PROVIDER", "local").strip().lower() or "local"
        if provider not in PROVIDERS:
            raise SettingsError(f"LLMOPS_PROVIDER={provider!r}: expected one of {PROVIDERS}")
        if provider == "openai" and not env.get("OPENAI_API_KEY"):
            raise SettingsError(
                "LLMOPS_PROVIDER=openai needs OPENAI_API_KEY (any non-empty value for servers "
                "without auth such as Ollama or llama.cpp server); set it in the environment."
            )
        defaults = DEFAULT_MODELS[provider]
        limit = _int(env, "LLMOPS_EVAL_LIMIT", 0)
        return cls(
            home=Path(env.get("LLMOPS_HOME") or root / ".llmops").expanduser().resolve(),
            datasets_dir=Path(env.get("LLMOPS_DATASETS_DIR") or root / "datasets").expanduser(),
            assets_dir=Path(env.get("LLMOPS_ASSETS_DIR") or root / "assets").expanduser(),
            provider=provider,
            chat_model=env.get("LLMOPS_CHAT_MODEL") or defaults["chat"],
            embedding_model=env.get("LLMOPS_EMBEDDING_MODEL") or defaults["embedding"],
            judge_model=env.get("LLMOPS_JUDGE_MODEL") or None,
            finetune_base_model=env.get("LLMOPS_FINETUNE_BASE_MODEL") or defaults["finetune_base"],
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            chroma_url=env.get("LLMOPS_CHROMA_URL") or None,
            openai_timeout_s=_positive(env, "LLMOPS_OPENAI_TIMEOUT_S", 60.0),
            openai_max_retries=_int(env, "LLMOPS_OPENAI_MAX_RETRIES", 4),
            eval_concurrency=_int(env, "LLMOPS_EVAL_CONCURRENCY", 8, minimum=1),
            eval_limit=limit or None,
            eval_row_timeout_s=_positive(env, "LLMOPS_EVAL_ROW_TIMEOUT_S", 300.0),
            eval_max_attempts=_int(env, "LLMOPS_EVAL_MAX_ATTEMPTS", 6, minimum=1),
            judge_repeats=_int(env, "LLMOPS_JUDGE_REPEATS", 1, minimum=1),
            stream=_choice(env, "LLMOPS_STREAM", ("off", "on")) == "on",
            top_k=_int(env, "LLMOPS_TOP_K", 3, minimum=1),
            retrieval=_choice(env, "LLMOPS_RETRIEVAL", ("vector", "bm25", "hybrid")),
            chunk_tokens=_int(env, "LLMOPS_CHUNK_TOKENS", 160, minimum=16),
            chunk_overlap=_int(env, "LLMOPS_CHUNK_OVERLAP", 0),
            max_tokens=_int(env, "LLMOPS_MAX_TOKENS", 160, minimum=1),
            max_cost_usd=_float(env, "LLMOPS_MAX_COST_USD", None),
            finetune=_choice(env, "LLMOPS_FINETUNE", ("auto", "off")),
            finetune_prompt=env.get("LLMOPS_FINETUNE_PROMPT") or "grounded_concise",
            finetune_epochs=_int(env, "LLMOPS_FINETUNE_EPOCHS", 2, minimum=1),
            finetune_poll_s=_positive(env, "LLMOPS_FINETUNE_POLL_S", 10.0),
            finetune_deadline_s=_positive(env, "LLMOPS_FINETUNE_DEADLINE_S", 21600.0),
            finetune_max_cost_usd=_float(env, "LLMOPS_FINETUNE_MAX_COST_USD", None),
            finetune_retrain_share=_float(env, "LLMOPS_FINETUNE_RETRAIN_SHARE", None),
            synthetic_qa=_int(env, "LLMOPS_SYNTHETIC_QA", 0),
            min_eval_rows=_int(env, "LLMOPS_MIN_EVAL_ROWS", 5),
            serve_token=env.get("LLMOPS_SERVE_TOKEN") or None,
            serve_host=env.get("LLMOPS_SERVE_HOST") or "127.0.0.1",
            serve_port=_int(env, "LLMOPS_SERVE_PORT", 8000, minimum=1, maximum=65535),
            serve_max_body_bytes=_int(env, "LLMOPS_SERVE_MAX_BODY_BYTES", 1 << 20, minimum=1),
            monitor_sample=_int(env, "LLMOPS_MONITOR_SAMPLE", 200, minimum=1),
            conversation_query=_choice(env, "LLMOPS_CONVERSATION_QUERY", ("concat", "rewrite")),
            context_tokens=_int(env, "LLMOPS_CONTEXT_TOKENS", 2048, minimum=256),
            trace_content=_choice(env, "LLMOPS_TRACE_CONTENT", ("off", "on")) == "on",
            nightly_cron=env.get("LLMOPS_NIGHTLY_CRON") or "0 2 * * *",
            timezone=env.get("LLMOPS_TIMEZONE") or "UTC",
            sensor_interval_s=_int(env, "LLMOPS_SENSOR_INTERVAL_S", 30, minimum=1),
            retrain_growth=_positive(env, "LLMOPS_RETRAIN_GROWTH", 0.2),
            alert_webhook=env.get("LLMOPS_ALERT_WEBHOOK") or None,
            index_allow_shrink=_choice(env, "LLMOPS_INDEX_ALLOW_SHRINK", ("0", "1")) == "1",
            index_max_shrink=min(_float(env, "LLMOPS_INDEX_MAX_SHRINK", 0.5) or 0.0, 1.0),
            prompt_env_allow=tuple(n.strip() for n in env.get("LLMOPS_PROMPT_ENV_ALLOW", "").split(",")
                                   if n.strip()),
            experiment=env.get("LLMOPS_EXPERIMENT") or None,
            **_team(env),
        )

    # Where each kind of state lives under LLMOPS_HOME; created on first use.
    def path(self, *parts: str) -> Path:
        """A path under LLMOPS_HOME whose parent directory exists."""
        target = self.home.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only or foreign-owned home: say which folder
            raise SettingsError(f"LLMOPS_HOME {self.home}: cannot create {target.parent} "
                                f"({exc.strerror or exc}); point LLMOPS_HOME at a writable "
                                "folder") from exc
        return target

    @property
    def tables_root(self) -> UPath:
        """Where Parquet outputs live: LLMOPS_TABLES_URI (any fsspec URL) or LLMOPS_HOME/tables."""
        # Nothing is created here: readers (`llmops status`) work on a read-only home, and the
        # writers in llmops_pipelines.tables create the folders they write into.
        return UPath(self.tables_uri) if self.tables_uri else UPath(self.home / "tables")

    @property
    def tables_dir(self) -> Path:
        return self.path("tables", ".keep").parent

    @property
    def chroma_dir(self) -> Path:
        return self.path("chroma", ".keep").parent

    @property
    def registry_path(self) -> Path:
        return self.path("registry.sqlite")

    @property
    def cache_path(self) -> Path:
        return self.path("cache.sqlite")

    @property
    def production_log_path(self) -> Path:
        return self.path("production", "exchanges.jsonl")
