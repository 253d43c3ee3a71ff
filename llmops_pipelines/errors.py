"""Typed errors that say what to fix: which file, line, field or variable."""

from __future__ import annotations


class LlmopsError(Exception):
    """Base class for every error this package raises on purpose."""


class SettingsError(LlmopsError):
    """A missing or invalid environment variable."""


class DataError(LlmopsError):
    """Input data that cannot be used; names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field {field!r})" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.path, self.line, self.field = path, line, field


class PromptError(LlmopsError):
    """A prompt file that does not load, validate or render."""


class ProviderError(LlmopsError):
    """A model provider that is misconfigured or failed after its retries."""


class TransientProviderError(ProviderError):
    """A call worth retrying: rate limited (429), a 5xx, a timeout or a dropped connection."""

    def __init__(self, message: str, *, rate_limited: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.rate_limited, self.retry_after_s = rate_limited, retry_after_s


class BudgetExceededError(LlmopsError):
    """A run would spend more than its configured budget."""


class FineTuneError(LlmopsError):
    """A fine-tune job that failed, was cancelled or missed its deadline."""
