"""Settings.from_env: defaults per provider, overrides, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import LlmopsError, SettingsError
from llmops_pipelines.settings import Settings


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An explicit environment: never the process's own, so the host cannot leak in."""
    return {"LLMOPS_HOME": str(tmp_path / "home"), **extra}


def test_local_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path))
    assert s.provider == "local"
    assert s.chat_model == "smollm2-135m-instruct"
    assert s.embedding_model == "all-minilm-l6-v2-int8"
    assert s.finetune_base_model == "smollm2-135m-instruct"
    assert s.judge_model is None
    assert s.openai_base_url is None
    assert s.top_k == 3
    assert s.max_tokens == 160
    assert s.eval_concurrency == 8
    assert s.eval_limit is None
    assert s.max_cost_usd is None
    assert s.finetune == "auto"
    assert s.home == (tmp_path / "home").resolve()


def test_empty_env_is_local(tmp_path: Path) -> None:
    # No LLMOPS_HOME at all: still local, home under the project root.
    s = Settings.from_env({})
    assert s.provider == "local"
    assert s.chat_model == "smollm2-135m-instruct"
    assert s.home.name == ".llmops"


def test_openai_without_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_PROVIDER="openai"))
    assert "OPENAI_API_KEY" in str(err.value)


def test_openai_with_empty_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        Settings.from_env(_env(tmp_path, LLMOPS_PROVIDER="openai", OPENAI_API_KEY=""))


def test_openai_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path, LLMOPS_PROVIDER="OpenAI", OPENAI_API_KEY="k"))
    assert s.provider == "openai"
    assert s.chat_model == "gpt-4o-mini"
    assert s.embedding_model == "text-embedding-3-small"
    assert s.finetune_base_model == "gpt-4o-mini-2024-07-18"


def test_env_overrides_win(tmp_path: Path) -> None:
    s = Settings.from_env(_env(
        tmp_path, LLMOPS_PROVIDER="openai", OPENAI_API_KEY="k",
        LLMOPS_CHAT_MODEL="llama3.2:1b", LLMOPS_EMBEDDING_MODEL="nomic-embed-text",
        LLMOPS_JUDGE_MODEL="gpt-4.1-mini", LLMOPS_FINETUNE_BASE_MODEL="gpt-4.1-nano",
        OPENAI_BASE_URL="http://127.0.0.1:11434/v1", LLMOPS_TOP_K="5",
        LLMOPS_MAX_TOKENS="64", LLMOPS_EVAL_LIMIT="10", LLMOPS_MAX_COST_USD="0.25",
        LLMOPS_FINETUNE="off", LLMOPS_OPENAI_TIMEOUT_S="12.5",
    ))
    assert s.chat_model == "llama3.2:1b"
    assert s.embedding_model == "nomic-embed-text"
    assert s.judge_model == "gpt-4.1-mini"
    assert s.finetune_base_model == "gpt-4.1-nano"
    assert s.openai_base_url == "http://127.0.0.1:11434/v1"
    assert s.top_k == 5
    assert s.max_tokens == 64
    assert s.eval_limit == 10
    assert s.max_cost_usd == 0.25
    assert s.finetune == "off"
    assert s.openai_timeout_s == 12.5


def test_local_overrides_win(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path, LLMOPS_CHAT_MODEL="my-gguf"))
    assert s.chat_model == "my-gguf"
    assert s.embedding_model == "all-minilm-l6-v2-int8"


def test_bad_integer_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_TOP_K="abc"))
    assert "LLMOPS_TOP_K" in str(err.value)
    assert "abc" in str(err.value)


def test_integer_below_minimum_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_EVAL_CONCURRENCY="0"))
    assert "LLMOPS_EVAL_CONCURRENCY" in str(err.value)
    assert ">= 1" in str(err.value)


def test_bad_float_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_MAX_COST_USD="five dollars"))
    assert "LLMOPS_MAX_COST_USD" in str(err.value)


def test_bad_choice_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_FINETUNE="sometimes"))
    assert "LLMOPS_FINETUNE" in str(err.value)
    assert "sometimes" in str(err.value)


def test_unknown_provider_raises(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, LLMOPS_PROVIDER="azure"))
    assert "LLMOPS_PROVIDER" in str(err.value)
    assert "azure" in str(err.value)
    # A SettingsError is an LlmopsError, so the CLI's one handler reports it.
    assert isinstance(err.value, LlmopsError)


def test_path_creates_parent_under_home(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path))
    target = s.path("tables", "x.parquet")
    assert target == (tmp_path / "home" / "tables" / "x.parquet").resolve()
    assert target.parent.is_dir()
    assert s.registry_path == (tmp_path / "home" / "registry.sqlite").resolve()
