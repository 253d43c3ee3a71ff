"""Alert payloads with every secret stripped, posted to a webhook without ever raising."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
# Environment variables whose values are secrets: OPENAI_API_KEY, LLMOPS_SERVE_TOKEN, ...
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|WEBHOOK)$", re.I)
# Payload keys never sent, whatever their value (`max_tokens` and `tokens` are fine).
_SECRET_KEY = re.compile(r"(^|_)(api_?key|secret|password|authorization|token)$", re.I)
# Secrets that may sit in an error message without being in this process's environment.
_SECRET_TEXT = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"Bearer\s+\S+", re.I),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"),  # user:password@ in a URL
]


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-named variables, longest first so no secret is half-replaced."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 4}
    return sorted(values, key=len, reverse=True)


def redact(value: Any, secrets: list[str]) -> Any:
    """A copy of value (str, number, list, dict) with secrets and secret-named keys removed."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        for pattern in _SECRET_TEXT:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {str(k): redact(v, secrets) for k, v in value.items()
                if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value), secrets)


def build_alert(kind: str, title: str, details: Mapping[str, Any],
                env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A JSON-ready alert; `text` makes it readable in Slack/Teams-style incoming webhooks."""
    secrets = secret_values(env)
    title = redact(title, secrets)
    return {"source": "llmops-pipelines", "kind": kind, "title": title,
            "text": f"[llmops] {title}", "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "details": redact(dict(details), secrets)}


def post_alert(url: str, payload: Mapping[str, Any], timeout_s: float = 5.0) -> str | None:
    """POST the payload as JSON; return None when delivered, else why not (never raises)."""
    body = json.dumps(payload, default=str).encode("utf-8")
    try:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    # A bad URL is a ValueError; refused, reset or timed out connections are OSErrors.
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        # The URL itself may hold a token (Slack, Teams): never echo it.
        return redact(f"the webhook is unreachable: {type(exc).__name__}: {reason}", [url])
