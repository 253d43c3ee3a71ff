"""The connect-time check of an OpenAI-compatible endpoint: once, before the first call.

A wrong OPENAI_BASE_URL otherwise shows up as "Connection error." after the client's retries,
or, for a server that accepts and never answers, as nothing at all for minutes. The check logs
the client's timeout and retries, asks GET /models (a 1-token chat on servers without it) with
a short timeout, and fails with the URL and the cause; the key is never part of a message.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import openai

from llmops_pipelines.errors import ProviderError, TransientProviderError

log = logging.getLogger("llmops_pipelines.providers.openai_provider")
CHECK_TIMEOUT_S = 10.0  # an endpoint that cannot list its models in 10 s is not answering


def cause(exc: BaseException) -> str:
    """The innermost reason of a client error (e.g. '[Errno 111] Connection refused')."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for inner in reversed(seen):
        text = str(inner).strip()
        if text and text not in ("Connection error.", "Request timed out."):
            return text
    return type(seen[-1]).__name__


def where(client: openai.OpenAI | openai.AsyncOpenAI) -> str:
    """How messages name the endpoint: the variable and its value (a URL holds no key)."""
    return f"OPENAI_BASE_URL={client.base_url}"


class EndpointCheck:
    """Run once per provider; a refused connection or a rejected key is remembered, a timeout not."""

    def __init__(self, client: openai.OpenAI, chat_model: str, timeout_s: float,
                 retries: int, *, label: str | None = None,
                 key_env: str = "OPENAI_API_KEY") -> None:
        self.client, self.chat_model = client, chat_model
        # How messages name this endpoint, and the variable its key comes from.
        self.label, self.key_env = label or where(client), key_env
        self.timeout_s, self.retries = timeout_s, retries
        self.passed = False
        self._failure: ProviderError | None = None
        self._lock = threading.Lock()
        self._logged = False

    def ensure(self) -> None:
        """Return once the endpoint answered; raise ProviderError naming the URL otherwise."""
        if self.passed:
            return
        with self._lock:
            if self.passed:
                return
            if self._failure is not None:
                raise self._failure
            if not self._logged:
                self._logged = True
                log.info("OpenAI-compatible endpoint %s: client timeout %gs, %d retries per call "
                         "(evaluation calls are retried by the runner instead: "
                         "LLMOPS_EVAL_MAX_ATTEMPTS)", self.client.base_url, self.timeout_s,
                         self.retries)
            self._probe()
            self.passed = True

    async def aensure(self) -> None:
        """The same check from async code, off the event loop."""
        if not self.passed:
            await asyncio.to_thread(self.ensure)

    def _probe(self) -> None:
        timeout = min(self.timeout_s, CHECK_TIMEOUT_S)
        probe = self.client.with_options(timeout=timeout, max_retries=0)
        for _ in range(self.retries + 1):
            try:
                try:
                    probe.models.list()
                except openai.NotFoundError:  # vLLM, llama.cpp and Ollama mostly have it; not all
                    probe.chat.completions.create(model=self.chat_model, max_tokens=1,
                                                  messages=[{"role": "user", "content": "ping"}])
                return
            except openai.APITimeoutError:
                log.warning("%s: no answer within %gs", self.label, timeout)
                continue
            except openai.APIConnectionError as exc:
                self._failure = ProviderError(f"cannot reach {self.label}: {cause(exc)} "
                                              "(is the server running, and is the URL right?)")
                raise self._failure from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                self._failure = ProviderError(
                    f"{self.label} refused the API key ({exc.status_code}): check "
                    f"{self.key_env} for this endpoint")
                raise self._failure from exc
            except openai.APIStatusError:
                return  # it answered: reachable; the real call reports its own error
        # Not remembered: a server that was only slow gets another check on the next call.
        raise TransientProviderError(f"{self.label}: no answer within {timeout:g}s "
                                     f"({self.retries + 1} tries): the server accepts "
                                     "connections but does not respond")
