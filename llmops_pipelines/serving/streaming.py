"""`stream=true`: the champion's answer as Server-Sent Events, chunk for chunk as OpenAI sends them.

The model runs in a thread of its own (llama.cpp and the sync openai client block) and hands its
deltas to the event loop through a queue; a client that goes away sets `stop`, so the thread
closes the model's stream (the local model's lock is released) at the next delta. The record
is written once, when the stream ends for whatever reason, and says whether it was cut.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from llmops_pipelines.providers.base import ChatResult
from llmops_pipelines.serving.champion_app import ChampionApp, Prepared, Served, exchange_record
from llmops_pipelines.serving.log_records import LogStore
from llmops_pipelines.tracing import Trace

_END = object()


def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None,
           extra: dict[str, Any] | None = None) -> str:
    return json.dumps({**head, "object": "chat.completion.chunk", **(extra or {}), "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})


def _produce(app: ChampionApp, prepared: Prepared, trace: Trace, put: Callable[[Any], None],
             stop: threading.Event) -> None:
    stream = app.stream(prepared, trace)
    try:
        for item in stream:
            put(item)
            if stop.is_set():
                break
    except Exception as exc:  # noqa: BLE001 (handed to the response: it becomes an error event)
        put(exc)
    finally:
        stream.close()
        put(_END)


def stream_response(app: ChampionApp, prepared: Prepared, trace: Trace, exchange_id: str, *,
                    include_usage: bool, production_log: LogStore,
                    served_ids: set[str] | Any) -> EventSourceResponse:
    """The SSE response for a prepared turn; `[DONE]` ends it as the OpenAI API's does."""
    d = prepared.deployment
    head = {"id": exchange_id, "created": int(time.time()), "model": d.model,
            "system_fingerprint": None}
    extras = {"llmops": {"deployment_id": d.deployment_id, "candidate_id": d.candidate_id,
                         "context_doc_ids": [c.doc_id for c in prepared.contexts],
                         **({"warning": prepared.warning} if prepared.warning else {})}}
    started = time.perf_counter()

    async def events() -> AsyncIterator[dict[str, str]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        threading.Thread(target=_produce, daemon=True, name=f"stream-{exchange_id[-8:]}",
                         args=(app, prepared, trace,
                               lambda item: loop.call_soon_threadsafe(queue.put_nowait, item),
                               stop)).start()
        parts: list[str] = []
        result: ChatResult | None = None
        error: Exception | None = None
        ttft_ms: float | None = None
        finished = False
        logged: list[bool] = []

        async def record_once() -> None:
            nonlocal result
            if logged:
                return
            logged.append(True)
            text = "".join(parts)
            if result is None:  # cut or failed: what was sent, counted as the deltas sent
                result = ChatResult(text=text.strip(), model=d.model, input_tokens=0,
                                    output_tokens=len(parts),
                                    latency_ms=(time.perf_counter() - started) * 1000,
                                    ttft_ms=ttft_ms, finish_reason="cut" if not error else "error")
            record = exchange_record(exchange_id, prepared.turn.question,
                                     Served(d, result, prepared.contexts, prepared.warning,
                                            prepared, trace))
            record.update({"stream": True, "cut": not finished and error is None,
                           "ttft_ms": ttft_ms, "model_ttft_ms": result.ttft_ms,
                           **({"error": type(error).__name__} if error else {})})
            record["total_ms"] = trace.end(error="upstream_error" if error else None)
            # Shielded: a disconnect cancels this generator, and the record must still land.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(production_log.append, record)
            served_ids.add(exchange_id)

        finished = False
        try:
            yield {"data": _chunk(head, {"role": "assistant", "content": ""}, None, extras)}
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    error = item
                elif isinstance(item, ChatResult):
                    result = item
                else:
                    ttft_ms = ttft_ms or (time.perf_counter() - started) * 1000
                    parts.append(item)
                    yield {"data": _chunk(head, {"content": item})}
            if error is not None:
                yield {"data": json.dumps({"error": {
                    "message": f"the champion's model failed: {error}", "type": "server_error",
                    "code": "upstream_error", "param": None}})}
            else:
                yield {"data": _chunk(head, {}, (result and result.finish_reason) or "stop")}
                if include_usage and result is not None:
                    yield {"data": json.dumps({**head, "object": "chat.completion.chunk",
                                               "choices": [], "usage": _usage(result)})}
            finished = True
            await record_once()  # before [DONE]: a client that saw the end can rate it at once
            yield {"data": "[DONE]"}
        finally:
            stop.set()
            await record_once()

    return EventSourceResponse(events(), ping=15)


def _usage(result: ChatResult) -> dict[str, int]:
    return {"prompt_tokens": result.input_tokens, "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens}
