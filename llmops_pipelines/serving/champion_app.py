"""The champion's RAG app, resolved from the registry on every request (a new champion needs no restart).

It answers with the same functions evaluation scores: rag_app.retrieve -> rag_app.render ->
the provider's chat with rag_app.chat_params, so what was measured is what is served.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.candidates import RETRIEVAL_PARAMS
from llmops_pipelines.evaluation.lineup import CATALOG_FILE, assets_file
from llmops_pipelines.promotion.deploy import snapshot_prompt
from llmops_pipelines.promotion.registry import Deployment, Registry
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers import Provider, make_provider
from llmops_pipelines.providers.base import ChatResult, Message
from llmops_pipelines.providers.catalog import load_catalog
from llmops_pipelines.providers.endpoints import EndpointProviders, endpoint_keys
from llmops_pipelines.rag.app import chat_params, retrieve
from llmops_pipelines.rag.conversation import (
    REWRITE_MAX_TOKENS,
    Turn,
    history_budget,
    render_turn,
    standalone_query,
    trim_history,
)
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings
from llmops_pipelines.tracing import Trace, chat_attributes

log = logging.getLogger(__name__)


class NoChampionError(LlmopsError):
    """Nothing is deployed yet."""


@dataclass(frozen=True)
class Prepared:
    """A turn ready for the model: who answers, the rendered messages and what was retrieved."""

    deployment: Deployment
    provider: Provider
    messages: list[Message]
    params: dict[str, Any]
    contexts: list[Retrieved]
    turn: Turn
    query: str  # what retrieval searched for (the question, or the standalone query)
    history_used: int
    history_dropped: int  # oldest messages trimmed to fit LLMOPS_CONTEXT_TOKENS
    warning: str | None = None  # set when the answer had no index to retrieve from


@dataclass(frozen=True)
class Served:
    deployment: Deployment
    result: ChatResult
    contexts: list[Retrieved]
    warning: str | None = None  # set when the answer had no index to retrieve from
    prepared: Prepared | None = None
    trace: Trace | None = None


class ChampionApp:
    """Answers questions with whatever deployment the champion alias points at right now."""

    def __init__(self, settings: Settings, provider: Provider | None = None) -> None:
        self.settings = settings
        self.registry = Registry.from_settings(settings)
        self.provider = provider or make_provider(settings)
        self._index: ChromaIndex | None = None
        self._prompts: dict[str, Prompt] = {}
        # One llama.cpp model is not safe across threads; a remote endpoint takes many calls.
        self._model_lock = threading.Lock()  # held around local (llama.cpp) calls only
        self._endpoints: EndpointProviders | None = None

    def index(self) -> ChromaIndex:
        if self._index is None:
            self._index = ChromaIndex.from_settings(self.settings, self.provider.embed)
        else:  # a long-lived server follows the syncs: each one makes a new version live
            self._index.refresh()
        return self._index

    def index_state(self) -> dict[str, Any]:
        """The index serving retrieves from: its count and version, and what is wrong, if anything."""
        try:
            index = self.index()
            count, version = index.collection.count(), index.index_version
        except Exception as exc:  # noqa: BLE001 (any store failure is reported, not raised: /health)
            return {"count": 0, "version": None, "problem": f"index unavailable: {type(exc).__name__}"}
        problem = None
        if count == 0:
            problem = (f"index {index.name} is empty: answering without retrieved context; "
                       "materialize rag_index")
        elif version == "syncing":
            problem = "a sync is under way or was interrupted: answers use the chunks present"
        return {"count": count, "version": version, "collection": index.name, "problem": problem}

    def chat_provider(self, deployment: Deployment) -> Provider:
        """Who answers for a deployment: the endpoint it was evaluated on (models.yaml)."""
        endpoint = deployment.summary.get("endpoint") or self.settings.provider
        if endpoint == self.settings.provider:
            return self.provider
        if self._endpoints is None:
            catalog = load_catalog(assets_file(self.settings, CATALOG_FILE))
            self._endpoints = EndpointProviders(self.settings, catalog, self.provider,
                                                endpoint_keys(catalog, os.environ))
        return self._endpoints.provider(endpoint)

    def champion(self) -> tuple[Deployment, Prompt]:
        deployment = self.registry.get("champion")
        if deployment is None:
            raise NoChampionError("no champion is deployed: materialize the pipeline or run "
                                  "`llmops promote <candidate> --reason ...`")
        if deployment.deployment_id not in self._prompts:
            self._prompts[deployment.deployment_id] = snapshot_prompt(self.settings, deployment)
        return deployment, self._prompts[deployment.deployment_id]

    def prepare(self, turn: Turn, trace: Trace) -> Prepared:
        """Everything before the answer: standalone query, retrieval, history trimming, render."""
        # Timed as a stage of its own: the registry read and the index count are part of
        # every request, so the stages add up to the request's time.
        with trace.stage("lookup"):
            deployment, prompt = self.champion()
            state = self.index_state()
            provider = self.chat_provider(deployment)
        stored = json.loads(deployment.params or "{}")
        params: dict[str, Any] = {**chat_params(prompt, {"max_tokens": self.settings.max_tokens}),
                                  **{k: v for k, v in stored.items() if k not in RETRIEVAL_PARAMS}}
        trace.set(**{"llmops.deployment_id": deployment.deployment_id,
                     "llmops.candidate_id": deployment.candidate_id,
                     "llmops.history_messages": len(turn.history)})

        def rewrite(messages: list[Message]) -> str:
            with trace.stage("rewrite", **{"gen_ai.request.model": deployment.model}):
                return self.call(provider, messages, model=deployment.model, temperature=0.0,
                                 max_tokens=REWRITE_MAX_TOKENS).text

        query = standalone_query(turn, self.settings.conversation_query, rewrite)
        # The candidate's own retrieval (an experiment's top_k / mode), as it was evaluated.
        # An empty or missing index answers without context (and says so) instead of failing:
        # the index is never emptied by a sync on purpose (see ChromaIndex.sync's guard).
        top_k = int(stored.get("top_k") or self.settings.top_k)
        with trace.stage("retrieve", **{"llmops.top_k": top_k}) as span:
            contexts = [] if state["count"] == 0 else retrieve(
                self.provider, self.index(), [query], top_k,
                mode=str(stored.get("retrieval") or self.settings.retrieval))[0]
            trace.set(span, **{"llmops.context_doc_ids": [c.doc_id for c in contexts]})
        with trace.stage("render", **{"llmops.prompt_version": deployment.prompt_version}):
            bare = render_turn(prompt, turn.question, (), contexts)
            budget = history_budget(self.settings.context_tokens, int(params["max_tokens"]), bare)
            history, dropped = trim_history(turn.history, budget)
            messages = render_turn(prompt, turn.question, history, contexts)
        if dropped:
            log.info("conversation history trimmed: %d oldest of %d messages dropped to fit "
                     "LLMOPS_CONTEXT_TOKENS=%d", dropped, len(turn.history),
                     self.settings.context_tokens)
        trace.set_content(question=turn.question, query=query)
        return Prepared(deployment, provider, messages, params, contexts, turn, query,
                        len(history), dropped,
                        state["problem"] if state["count"] == 0 else None)

    def call(self, provider: Provider, messages: list[Message], **params: Any) -> ChatResult:
        """One chat call; the local model takes one at a time (llama.cpp is not thread-safe)."""
        if provider.name != "local":
            return provider.chat(messages, **params)
        with self._model_lock:
            return provider.chat(messages, **params)

    def answer(self, turn: Turn | str, trace: Trace | None = None) -> Served:
        """Retrieve, render and chat, exactly as evaluation does for this deployment."""
        turn = Turn(turn) if isinstance(turn, str) else turn
        trace = trace or Trace("llmops.request", content=self.settings.trace_content)
        prepared = self.prepare(turn, trace)
        with trace.stage("chat") as span:
            result = self.call(prepared.provider, prepared.messages,
                               model=prepared.deployment.model, **prepared.params)
            trace.set(span, **chat_attributes(result.model, result.input_tokens,
                                              result.output_tokens, result.finish_reason))
        trace.set_content(answer=result.text)
        return Served(prepared.deployment, result, prepared.contexts, prepared.warning, prepared,
                      trace)

    def stream(self, prepared: Prepared, trace: Trace) -> Generator[str | ChatResult, None, None]:
        """Text deltas then one ChatResult; the local model's lock is held for the whole stream."""
        with trace.stage("chat") as span:
            lock = self._model_lock if prepared.provider.name == "local" else nullcontext()
            with lock:
                chunks = prepared.provider.chat_stream(  # type: ignore[attr-defined]
                    prepared.messages, model=prepared.deployment.model,
                    temperature=prepared.params.get("temperature", 0.0),
                    max_tokens=prepared.params.get("max_tokens", 256))
                try:
                    for item in chunks:
                        if isinstance(item, ChatResult):
                            trace.set(span, **chat_attributes(
                                item.model, item.input_tokens, item.output_tokens,
                                item.finish_reason))
                            trace.set_content(answer=item.text)
                        yield item
                finally:
                    chunks.close()


def exchange_record(exchange_id: str, question: str, served: Served) -> dict[str, Any]:
    """One production-log line: what the monitoring asset scores later."""
    r, d, p = served.result, served.deployment, served.prepared
    record = {
        "type": "exchange", "id": exchange_id, "at": time.time(), "question": question,
        "answer": r.text, "contexts": [{"chunk_id": c.chunk_id, "doc_id": c.doc_id,
                                        "text": c.text} for c in served.contexts],
        "model": r.model, "requested_model": d.model, "deployment_id": d.deployment_id,
        "candidate_id": d.candidate_id, "prompt_version": d.prompt_version,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "latency_ms": r.latency_ms, "ttft_ms": r.ttft_ms, "finish_reason": r.finish_reason,
    }
    if p is not None:
        record.update({"history": list(p.turn.history), "history_used": p.history_used,
                       "history_dropped": p.history_dropped,
                       **({"query": p.query} if p.query != question else {})})
    if served.trace is not None:
        record.update({"trace_id": served.trace.trace_id, "stages_ms": served.trace.summary()})
    return record
