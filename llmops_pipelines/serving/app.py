"""The OpenAI-compatible HTTP surface: POST /v1/chat/completions and /v1/feedback, bearer auth."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmops_pipelines.errors import LlmopsError, ProviderError
from llmops_pipelines.rag.conversation import ConversationError, parse_messages
from llmops_pipelines.serving.champion_app import ChampionApp, NoChampionError, exchange_record
from llmops_pipelines.serving.log_records import LogStore
from llmops_pipelines.serving.streaming import stream_response
from llmops_pipelines.tracing import Trace

log = logging.getLogger(__name__)
RATINGS = {"up": 1, "down": -1, "1": 1, "-1": -1}
MAX_BODY_BYTES = 1 << 20  # LLMOPS_SERVE_MAX_BODY_BYTES


class BodyTooLarge(Exception):
    """A request body over the limit: answered 413 before it is read whole."""


def _error(status: int, message: str, code: str, type_: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "code": code,
                                   "param": None}}, status_code=status)


def create_app(app: ChampionApp, token: str, production_log: LogStore, *,
               max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The ASGI app; every route but /health needs `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()
    served_ids = production_log.served_ids()
    trace_content = app.settings.trace_content

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    def refuse() -> JSONResponse:
        # Says what is wrong, never echoes what was sent.
        return _error(401, "missing or wrong bearer token (set LLMOPS_SERVE_TOKEN on the "
                           "server and send it as the API key)", "invalid_api_key")

    def too_large() -> JSONResponse:
        return _error(413, f"request body over LLMOPS_SERVE_MAX_BODY_BYTES={max_body_bytes} "
                           "bytes", "request_too_large")

    async def body_of(request: Request) -> Any:
        # Checked on the declared length and again while reading (chunked bodies declare none),
        # so an oversized body is never held in memory.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise BodyTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return None

    async def chat(request: Request) -> Response:
        if not authorised(request):
            return refuse()
        try:
            body = await body_of(request)
        except BodyTooLarge:
            return too_large()
        streaming = isinstance(body, dict) and body.get("stream") is True
        try:
            turn = parse_messages(body.get("messages") if isinstance(body, dict) else None)
        except ConversationError as exc:
            return _error(400, f"the request needs a 'messages' list ending in a non-empty user "
                               f"message: {exc}", "invalid_messages")
        trace = Trace("llmops.request", {"llmops.stream": streaming}, content=trace_content)
        try:
            if streaming:  # errors before the first byte are JSON errors with their status
                prepared = await run_in_threadpool(app.prepare, turn, trace)
                options = body.get("stream_options")
                return stream_response(
                    app, prepared, trace, f"chatcmpl-{uuid.uuid4().hex}",
                    include_usage=isinstance(options, dict) and options.get("include_usage") is True,
                    production_log=production_log, served_ids=served_ids)
            served = await run_in_threadpool(app.answer, turn, trace)
        except NoChampionError as exc:
            trace.end(error="no_champion")
            return _error(503, str(exc), "no_champion", "server_error")
        except ProviderError as exc:
            trace.end(error="upstream_error")
            return _error(502, f"the champion's model failed: {exc}", "upstream_error",
                          "server_error")
        except LlmopsError as exc:
            trace.end(error="llmops_error")
            return _error(500, str(exc), "llmops_error", "server_error")
        exchange_id = f"chatcmpl-{uuid.uuid4().hex}"
        trace.set(**{"llmops.exchange_id": exchange_id})
        record = exchange_record(exchange_id, turn.question, served)
        record["total_ms"] = trace.end()
        await run_in_threadpool(production_log.append, record)
        served_ids.add(exchange_id)
        r = served.result
        return JSONResponse({
            "id": exchange_id, "object": "chat.completion", "created": int(time.time()),
            "model": r.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r.text},
                         "finish_reason": r.finish_reason or "stop", "logprobs": None}],
            "usage": {"prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
                      "total_tokens": r.input_tokens + r.output_tokens},
            # Extra fields the official client keeps on the response (model_extra).
            "llmops": {"deployment_id": served.deployment.deployment_id,
                       "candidate_id": served.deployment.candidate_id,
                       "context_doc_ids": [c.doc_id for c in served.contexts],
                       **({"warning": served.warning} if served.warning else {})},
        })

    async def feedback(request: Request) -> JSONResponse:
        if not authorised(request):
            return refuse()
        try:
            body = await body_of(request)
        except BodyTooLarge:
            return too_large()
        body = body if isinstance(body, dict) else {}
        exchange_id, rating = body.get("id"), RATINGS.get(str(body.get("rating")).lower())
        if not isinstance(exchange_id, str) or not exchange_id.startswith("chatcmpl-"):
            return _error(400, "'id' must be the chat completion id being rated", "invalid_id")
        if rating is None:
            return _error(400, f"'rating' must be one of {sorted(RATINGS)}", "invalid_rating")
        # A made-up id would count as a rating of nothing, and could trigger retraining.
        if not await run_in_threadpool(served_ids.__contains__, exchange_id):
            return _error(404, f"exchange {exchange_id!r} was not served here: rate the 'id' of "
                               "a chat completion this server returned", "unknown_exchange")
        comment = body.get("comment")
        await run_in_threadpool(production_log.append, {
            "type": "feedback", "id": exchange_id, "at": time.time(), "rating": rating,
            "comment": str(comment)[:2000] if comment else None})
        return JSONResponse({"id": exchange_id, "rating": rating, "recorded": True})

    async def models(request: Request) -> JSONResponse:
        if not authorised(request):
            return refuse()
        try:
            deployment, _ = await run_in_threadpool(app.champion)
        except NoChampionError:
            return JSONResponse({"object": "list", "data": []})
        return JSONResponse({"object": "list", "data": [
            {"id": deployment.model, "object": "model", "created": int(deployment.created_at),
             "owned_by": deployment.deployment_id}]})

    async def health(request: Request) -> JSONResponse:
        # Unauthenticated, so counts and versions only: never a question, a path or a secret.
        index = await run_in_threadpool(app.index_state)
        return JSONResponse({"status": "degraded" if index["problem"] else "ok", "index": index})

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ])
