"""Settings are checked for range and finiteness: a bad value is an error naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.settings import Settings

# (variable, bad value): each must be refused, never silently replaced or accepted.
BAD = [
    ("LLMOPS_MAX_COST_USD", "nan"),
    ("LLMOPS_MAX_COST_USD", "inf"),
    ("LLMOPS_MAX_COST_USD", "-1"),
    ("LLMOPS_FINETUNE_MAX_COST_USD", "NaN"),
    ("LLMOPS_FINETUNE_MAX_COST_USD", "-0.5"),
    ("LLMOPS_EVAL_ROW_TIMEOUT_S", "-5"),
    ("LLMOPS_EVAL_ROW_TIMEOUT_S", "0"),
    ("LLMOPS_EVAL_ROW_TIMEOUT_S", "nan"),
    ("LLMOPS_EVAL_ROW_TIMEOUT_S", "inf"),
    ("LLMOPS_OPENAI_TIMEOUT_S", "-1"),
    ("LLMOPS_OPENAI_TIMEOUT_S", "0"),
    ("LLMOPS_OPENAI_TIMEOUT_S", "nan"),
    ("LLMOPS_OPENAI_MAX_RETRIES", "-1"),
    ("LLMOPS_FINETUNE_POLL_S", "-1"),
    ("LLMOPS_FINETUNE_POLL_S", "0"),
    ("LLMOPS_FINETUNE_DEADLINE_S", "-1"),
    ("LLMOPS_FINETUNE_DEADLINE_S", "0"),
    ("LLMOPS_FINETUNE_DEADLINE_S", "nan"),
    ("LLMOPS_RETRAIN_GROWTH", "-0.2"),
    ("LLMOPS_RETRAIN_GROWTH", "0"),
    ("LLMOPS_RETRAIN_GROWTH", "inf"),
    ("LLMOPS_SERVE_PORT", "99999"),
    ("LLMOPS_SERVE_PORT", "65536"),
    ("LLMOPS_SERVE_PORT", "0"),
    ("LLMOPS_SERVE_PORT", "-80"),
    ("LLMOPS_EVAL_LIMIT", "-3"),
    ("LLMOPS_EVAL_CONCURRENCY", "0"),
    ("LLMOPS_TOP_K", "0"),
    ("LLMOPS_MAX_TOKENS", "-1"),
    ("LLMOPS_CHUNK_OVERLAP", "-1"),
    ("LLMOPS_SERVE_MAX_BODY_BYTES", "0"),
    ("LLMOPS_SERVE_MAX_BODY_BYTES", "-1"),
]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"LLMOPS_HOME": str(tmp_path / "home"), **extra}


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_out_of_range_or_non_finite_value_names_the_variable(tmp_path: Path, name: str,
                                                             value: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(_env(tmp_path, **{name: value}))
    assert name in str(err.value)
    assert value.lower() in str(err.value).lower()


@pytest.mark.parametrize(("name", "value", "attribute", "expected"), [
    ("LLMOPS_MAX_COST_USD", "0", "max_cost_usd", 0.0),  # spend nothing: cached rows only
    ("LLMOPS_MAX_COST_USD", "2.5", "max_cost_usd", 2.5),
    ("LLMOPS_SERVE_PORT", "1", "serve_port", 1),
    ("LLMOPS_SERVE_PORT", "65535", "serve_port", 65535),
    ("LLMOPS_EVAL_ROW_TIMEOUT_S", "0.5", "eval_row_timeout_s", 0.5),
    ("LLMOPS_OPENAI_MAX_RETRIES", "0", "openai_max_retries", 0),
    ("LLMOPS_RETRAIN_GROWTH", "0.5", "retrain_growth", 0.5),
    ("LLMOPS_SERVE_MAX_BODY_BYTES", "2048", "serve_max_body_bytes", 2048),
])
def test_values_in_range_are_kept(tmp_path: Path, name: str, value: str, attribute: str,
                                  expected: float) -> None:
    assert getattr(Settings.from_env(_env(tmp_path, **{name: value})), attribute) == expected


def test_empty_value_means_the_default(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path, LLMOPS_MAX_COST_USD="", LLMOPS_EVAL_ROW_TIMEOUT_S=""))
    assert s.max_cost_usd is None and s.eval_row_timeout_s == 300.0


def test_webhook_credentials_are_kept_out_of_repr(tmp_path: Path) -> None:
    url = "https://user:pa55-sentinel@hooks.example/x?token=t0k-sentinel"
    s = Settings.from_env(_env(tmp_path, LLMOPS_ALERT_WEBHOOK=url, LLMOPS_SERVE_TOKEN="tok-sentinel"))
    assert s.alert_webhook == url
    text = repr(s)
    assert "pa55-sentinel" not in text and "t0k-sentinel" not in text
    assert "tok-sentinel" not in text
