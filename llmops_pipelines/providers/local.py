"""The embedded offline default: SmolLM2 on llama.cpp, MiniLM on ONNX, a lexicon harm scorer."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers.base import ChatResult, Message, ModerationResult, ProviderStats
from llmops_pipelines.providers.harm_lexicon import lexicon_verdict
from llmops_pipelines.providers.local_embed import MAX_TOKENS as EMBED_MAX_TOKENS
from llmops_pipelines.providers.local_embed import MiniLMEmbedder
from llmops_pipelines.providers.local_files import (
    GGUF_NAME,
    LOCAL_FT_PREFIX,
    local_model_dir,
    smollm2_gguf,
)
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)

BASE_CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2-int8"
CONTEXT_TOKENS = 2048
# A 135M model loops on headings without it ("Theft Protection" x40); part of the cache key.
REPEAT_PENALTY = 1.1

# One llama.cpp model object is not thread-safe: every call on it goes through its lock.
_LOCKS: dict[str, threading.Lock] = {}


@functools.lru_cache(maxsize=4)
def _load_llama(path: str) -> Any:
    from llama_cpp import Llama

    if not _LOCKS:
        # Free the models while the interpreter is still whole: llama.cpp's own __del__ at
        # shutdown finds its bindings already torn down and prints tracebacks.
        atexit.register(_close_models)

    started = time.perf_counter()
    model = Llama(model_path=path, n_ctx=CONTEXT_TOKENS, n_threads=os.cpu_count() or 2,
                  seed=0, verbose=False)
    log.info("loaded %s in %.1fs", Path(path).name, time.perf_counter() - started)
    _LOCKS.setdefault(path, threading.Lock())
    return model


def _close_models() -> None:
    for path in list(_LOCKS):
        with _LOCKS[path]:
            _load_llama(path).close()
    _load_llama.cache_clear()


@functools.lru_cache(maxsize=1)
def _load_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=os.cpu_count() or 2)


class LocalProvider:
    """Runs everything on this machine's CPU; nothing is downloaded."""

    name = "local"
    # The embedder truncates longer inputs: chunks must fit (see rag_chunks).
    max_input_tokens = EMBED_MAX_TOKENS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.chat_model = settings.chat_model
        self.embedding_model = settings.embedding_model
        self.stats = ProviderStats()
        # Answers depend on decoding settings too: a change must not reuse cached answers.
        self.cache_namespace = f"local:repeat_penalty={REPEAT_PENALTY}"

    def model_path(self, model: str) -> Path:
        """The GGUF file behind a local model name."""
        if model == BASE_CHAT_MODEL:
            return smollm2_gguf()
        if model.startswith(LOCAL_FT_PREFIX):
            path = local_model_dir(self.settings, model) / GGUF_NAME
            if not path.is_file():
                raise ProviderError(f"fine-tuned model {model!r} has no weights at {path}; "
                                    "materialize finetuned_model first")
            return path
        raise ProviderError(
            f"unknown local chat model {model!r}; expected {BASE_CHAT_MODEL!r} "
            "(set LLMOPS_CHAT_MODEL or use LLMOPS_PROVIDER=openai)")

    def chat(self, messages: Sequence[Message], *, model: str | None = None,
             temperature: float = 0.0, max_tokens: int = 256,
             response_format: dict[str, Any] | None = None) -> ChatResult:
        """Greedy by default, so a cached answer and a fresh one agree."""
        model = model or self.chat_model
        path = str(self.model_path(model))
        llama = _load_llama(path)
        started = time.perf_counter()
        with self.stats.running(), _LOCKS[path]:
            response = llama.create_chat_completion(
                messages=list(messages), temperature=temperature, max_tokens=max_tokens,
                seed=0, repeat_penalty=REPEAT_PENALTY)
        latency_ms = (time.perf_counter() - started) * 1000
        self.stats.record("chat")
        usage = response.get("usage") or {}
        choice = response["choices"][0]
        return ChatResult(
            text=(choice["message"].get("content") or "").strip(),
            model=model,
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
        )

    def chat_stream(self, messages: Sequence[Message], *, model: str | None = None,
                    temperature: float = 0.0, max_tokens: int = 256
                    ) -> Iterator[str | ChatResult]:
        """Text deltas, then one ChatResult; the model's lock is held for the whole stream."""
        model = model or self.chat_model
        path = str(self.model_path(model))
        llama = _load_llama(path)
        started = time.perf_counter()
        parts: list[str] = []
        ttft_ms = finish = None
        usage: dict[str, Any] = {}
        with self.stats.running(), _LOCKS[path]:
            chunks = llama.create_chat_completion(
                messages=list(messages), temperature=temperature, max_tokens=max_tokens,
                seed=0, repeat_penalty=REPEAT_PENALTY, stream=True)
            try:
                for chunk in chunks:
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            if ttft_ms is None:
                                ttft_ms = (time.perf_counter() - started) * 1000
                            parts.append(delta)
                            yield delta
                        finish = choice.get("finish_reason") or finish
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            text = "".join(parts)
            output_tokens = int(usage.get("completion_tokens") or 0) or (
                len(llama.tokenize(text.encode(), add_bos=False, special=True)) if text else 0)
        self.stats.record("chat")
        yield ChatResult(text=text.strip(), model=model,
                         input_tokens=int(usage.get("prompt_tokens") or 0),
                         output_tokens=output_tokens,
                         latency_ms=(time.perf_counter() - started) * 1000, ttft_ms=ttft_ms,
                         finish_reason=finish)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedding_model != EMBEDDING_MODEL:
            raise ProviderError(f"unknown local embedding model {self.embedding_model!r}; "
                                f"the local provider embeds with {EMBEDDING_MODEL!r}")
        vectors = _load_embedder()(list(texts))
        self.stats.record("embed", len(texts))
        return vectors

    def count_tokens(self, text: str) -> int:
        return _load_embedder().count_tokens(text)

    def moderate(self, texts: Sequence[str]) -> list[ModerationResult]:
        # No offline harm classifier exists on the registries: an honest, labelled heuristic.
        self.stats.record("moderate", len(texts))
        return [lexicon_verdict(t) for t in texts]
