"""Alerts reach a real local webhook; a failing or unreachable one never raises nor leaks the URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops_pipelines.automation import alerts
from tests.support.webhook import Hook, serve_webhook


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[Hook]]]:
    with serve_webhook() as served:
        yield served


def test_post_alert_delivers_json(webhook) -> None:
    url, hook = webhook
    assert alerts.post_alert(url, {"kind": "x", "n": 1}) is None
    assert hook.received == [{"kind": "x", "n": 1}]


def test_post_alert_never_raises_and_hides_the_url(webhook, tmp_path: Path) -> None:
    url, hook = webhook
    hook.status = 500
    assert alerts.post_alert(url, {}) == "the webhook answered HTTP 500"
    closed = url.rsplit(":", 1)[0] + ":1/hook?token=abc"  # nothing listens on port 1
    error = alerts.post_alert(closed, {}, timeout_s=2)
    assert error is not None and "unreachable" in error and "token=abc" not in error
    error = alerts.post_alert("not a url with secret-xyz", {})
    assert error is not None and "secret-xyz" not in error
