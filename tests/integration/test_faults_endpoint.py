"""A bad OPENAI_BASE_URL fails fast and says so: the URL (never the key) and the cause, the
client's timeout and retries logged before the first call, one connect-time check per provider.

Real sockets only: a port nobody listens on, a listener that accepts and never answers, and
the OpenAI-compatible test server (with a required key, or without GET /models).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.settings import Settings
from tests.support.openai_server import FakeOpenAIServer

KEY = "sk-sentinel-key-0123456789abcdef"
LOGGER = "llmops_pipelines.providers.openai_provider"


def provider(base_url: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> OpenAIProvider:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return OpenAIProvider(Settings.from_env({
        "LLMOPS_PROVIDER": "openai", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url,
        "LLMOPS_OPENAI_MAX_RETRIES": "0", **env}))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listener that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_unreachable_url_names_the_url_and_the_cause(monkeypatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    p = provider(url, monkeypatch, LLMOPS_OPENAI_MAX_RETRIES="4")
    for call in (lambda: p.chat([{"role": "user", "content": "hi"}]),
                 lambda: p.embed(["hi"]),
                 lambda: asyncio.run(p.achat([{"role": "user", "content": "hi"}]))):
        with pytest.raises(ProviderError) as err:
            call()
        message = str(err.value)
        assert url in message and "OPENAI_BASE_URL" in message, message
        assert "refused" in message.lower(), message
        assert KEY not in message


def test_silent_endpoint_fails_with_the_url_after_logging_timeout_and_retries(
        monkeypatch, silent_url: str, caplog) -> None:
    p = provider(silent_url, monkeypatch, LLMOPS_OPENAI_TIMEOUT_S="0.5",
                 LLMOPS_OPENAI_MAX_RETRIES="1")
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(ProviderError) as err:
        p.chat([{"role": "user", "content": "hi"}])
    message = str(err.value)
    assert silent_url in message and "no answer within 0.5s" in message, message
    assert KEY not in message
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any(silent_url in line and "timeout 0.5s" in line and "1 retries" in line
               for line in lines), lines
    assert all(KEY not in line for line in lines)


def test_wrong_key_fails_at_the_check_naming_the_url_not_the_key(monkeypatch) -> None:
    with FakeOpenAIServer(api_key="the-right-key") as server:
        p = provider(server.base_url, monkeypatch)
        with pytest.raises(ProviderError) as err:
            p.embed(["hi"])
        assert server.base_url in str(err.value) and "401" in str(err.value)
        assert KEY not in str(err.value)
        assert server.counts["embeddings"] == 0  # the check stopped it before any real call


def test_the_check_runs_once_before_the_first_call(monkeypatch, caplog) -> None:
    with FakeOpenAIServer() as server, caplog.at_level(logging.INFO, logger=LOGGER):
        p = provider(server.base_url, monkeypatch)
        p.chat([{"role": "user", "content": "hi"}])
        p.embed(["a", "b"])
        asyncio.run(p.achat([{"role": "user", "content": "hi"}]))
        assert [kind for kind, _ in server.requests] == ["models", "chat", "embeddings", "chat"]
        url = server.base_url
    assert sum(url in r.getMessage() and "timeout 60s" in r.getMessage()
               for r in caplog.records) == 1


def test_a_server_without_models_gets_a_one_token_chat(monkeypatch) -> None:
    with FakeOpenAIServer(routes_off=("models",)) as server:
        p = provider(server.base_url, monkeypatch)
        p.embed(["hi"])
        kinds = [kind for kind, _ in server.requests]
        assert kinds == ["chat", "embeddings"]
        assert server.requests[0][1]["max_tokens"] == 1


def test_errors_of_real_calls_name_the_url(monkeypatch) -> None:
    with FakeOpenAIServer() as server:
        p = provider(server.base_url, monkeypatch)
        p.embed(["warm"])  # the check passes
        server.error_rate = 1.0
        with pytest.raises(ProviderError) as err:
            p.chat([{"role": "user", "content": "hi"}])
        assert server.base_url in str(err.value) and "500" in str(err.value)
