"""A deterministic, local OpenAI-compatible HTTP server for tests and benchmarks.

The official ``openai`` client (3.x) talks through httpx2, which HTTP-mocking libraries do not
intercept, so tests point the real client at a real socket instead. Standard library only; every
answer is a pure function of the request (and ``seed`` for injected faults).

    with FakeOpenAIServer(latency_s=0.01) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON = dict[str, Any]
# A list payload is sent as server-sent events rather than one JSON document.
Reply = tuple[int, JSON | list[JSON]]

IDK = "I don't know."
# What a silently swapped model answers when `drifted` is set: fluent, confident, ungrounded.
DRIFTED = "Our 1987 catalogue lists 42 hovercraft models in seven colours."
_CONTEXT_RE = re.compile(r"<context>(.*?)</context>", re.DOTALL)
# Synthetic Q&A generation (assets/generators/synthetic_qa.prompty) sends a <passage>.
_PASSAGE_RE = re.compile(r"<passage>(.*?)</passage>", re.DOTALL)
_TAG_RE = re.compile(r"^\s*\[[^\]]*\]\s*")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"[a-z0-9]+")
_BEARER_RE = re.compile(r"Bearer\s+\S+")
_LEXICON: dict[str, tuple[str, ...]] = {
    "kill": ("violence",), "bomb": ("violence",), "weapon": ("violence",),
    "attack": ("violence",), "hate": ("hate", "harassment"), "suicide": ("self-harm",),
}
# The client's Moderation model declares every one of these as required.
_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
_TERMINAL = ("succeeded", "failed", "cancelled")
_JSON_FORMATS = ("json_object", "json_schema")
_SERVER_ERROR = ("server_error", "internal_server_error")  # (type, code) of injected 500s
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), key)
    for method, pattern, key in (
        ("POST", r"/v1/chat/completions", "chat"),
        ("POST", r"/v1/embeddings", "embeddings"),
        ("POST", r"/v1/moderations", "moderations"),
        ("GET", r"/v1/models", "models"),
        ("POST", r"/v1/files", "files"),
        ("POST", r"/v1/fine_tuning/jobs", "ft_create"),
        ("GET", r"/v1/fine_tuning/jobs", "ft_list"),
        ("GET", r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)", "ft_retrieve"),
        ("GET", r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/events", "ft_events"),
        ("POST", r"/v1/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel", "ft_cancel"),
    )
]


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _error(status: int, message: str, type_: str, code: str, param: str | None = None) -> Reply:
    return status, {"error": {"message": message, "type": type_, "code": code, "param": param}}


def _text_of(content: Any) -> str:
    # Content is either a string or a list of typed parts (text, image_url, ...).
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _answer(messages: list[Any], response_format: Any, salt: str = "", drifted: bool = False) -> str:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if drifted and _CONTEXT_RE.search(_text_of(content)):
            return DRIFTED
        if found := _CONTEXT_RE.search(_text_of(content)):
            lines = (_TAG_RE.sub("", line).strip() for line in found.group(1).splitlines())
            text = " ".join(line for line in lines if line)
            return _SENTENCE_RE.split(text, maxsplit=1)[0].strip()[:300].strip() or IDK
        if found := _PASSAGE_RE.search(_text_of(content)):
            first = _SENTENCE_RE.split(" ".join(found.group(1).split()), maxsplit=1)[0][:300]
            topic = " ".join(first.split()[:4]).rstrip(".,:;")
            return f"Q: What does the article say about {topic}?\nA: {first}"
    if isinstance(response_format, dict) and response_format.get("type") in _JSON_FORMATS:
        score = int(_sha(json.dumps(messages, sort_keys=True) + salt), 16) % 5 + 1
        return json.dumps({"score": score, "reason": "fake judge"})
    return IDK


def _embed(text: str, dim: int) -> bytes:
    """Hashed bag of words as little-endian float32, so shared words mean high cosine similarity."""
    vec = [0.0] * dim
    for token in _WORD_RE.findall(text.lower()):
        digest = hashlib.sha256(token.encode()).digest()
        # The sign comes from the top bit of byte 0, independent of the low bits picking the bucket.
        vec[int.from_bytes(digest, "big") % dim] += 1.0 if digest[0] & 0x80 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    vec = [v / norm for v in vec] if norm else [1.0] + [0.0] * (dim - 1)
    return struct.pack(f"<{dim}f", *vec)


def _parse_multipart(raw: bytes, content_type: str) -> JSON:
    """Fields as str; file parts as (filename, bytes). Enough for what the openai client sends."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if not boundary:
        raise ValueError("multipart body without a boundary")
    fields: JSON = {}
    for part in raw.split(b"--" + boundary.group(1).encode())[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        name = re.search(rb'(?<![a-z])name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name:
            key = name.group(1).decode()
            fields[key] = (filename.group(1).decode(), content) if filename else content.decode()
    return fields


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    # The default backlog of 5 drops SYNs under a concurrent burst, costing a 1 s retransmit.
    request_queue_size = 128
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out (hang injection) or drop pooled sockets are routine here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 because the client pools connections; every reply therefore carries a length.
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    timeout = 60  # bounds idle keep-alive threads of clients that are never closed
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        # Drain the body first: unread bytes would corrupt the next request on this connection.
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        for method, pattern, key in _ROUTES:
            if method == self.command and (match := pattern.fullmatch(path)) \
                    and key not in self.server.fake.routes_off:
                params = {**dict(parse_qsl(url.query)), **match.groupdict()}
                status, payload, headers = self.server.fake._handle(key, params, raw, self.headers)
                break
        else:
            status, payload = _error(404, f"Unknown route {self.command} {path}",
                                     "invalid_request_error", "unknown_url")
            headers = {}
        try:
            if isinstance(payload, list):
                self._send_events(payload, headers)
            else:
                self._send_json(status, payload, headers)
        except OSError:  # the client gave up (timeout) while we were answering
            self.close_connection = True

    def _send_json(self, status: int, payload: JSON, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, events: list[JSON], headers: dict[str, str]) -> None:
        # Chunked encoding keeps the connection reusable, unlike ending the stream with a close.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        delay = self.server.fake.stream_delay_s  # type: ignore[attr-defined]
        for event in [*(json.dumps(e) for e in events), "[DONE]"]:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if delay:  # a model generating token by token
                self.wfile.flush()
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")


class FakeOpenAIServer:
    """OpenAI-compatible endpoints on 127.0.0.1 with deterministic answers and injectable faults."""

    def __init__(self, *, latency_s: float = 0.0, error_rate: float = 0.0,
                 rate_limit_rps: float | None = None, hang_rate: float = 0.0, hang_s: float = 5.0,
                 fail_first: int = 0, seed: int = 0, embedding_dim: int = 64,
                 rate_limit_routes: tuple[str, ...] | None = None, flaky_judge: bool = False,
                 finetune_steps: int = 2, finetune_outcome: str = "succeeded",
                 port: int = 0, route_latency_s: dict[str, float] | None = None,
                 api_key: str | None = None, routes_off: tuple[str, ...] = (),
                 keep_raw: bool = False, bucket_starts_empty: bool = False,
                 rate_limit_headers: bool = False) -> None:
        if finetune_outcome not in _TERMINAL:
            raise ValueError(f"finetune_outcome must be one of {_TERMINAL}")
        if rate_limit_rps is not None and rate_limit_rps <= 0:
            raise ValueError("rate_limit_rps must be positive")
        self.latency_s, self.error_rate, self.rate_limit_rps = latency_s, error_rate, rate_limit_rps
        self.hang_rate, self.hang_s, self.fail_first = hang_rate, hang_s, fail_first
        # Real endpoints limit each model separately: None caps every route together.
        self.rate_limit_routes = rate_limit_routes
        # A bucket that is empty when the first capped request arrives (a busy shared key),
        # instead of full: a short run cannot then borrow a second's worth of burst.
        self.bucket_starts_empty = bucket_starts_empty
        # x-ratelimit-limit/remaining/reset-requests on every capped route's reply, as OpenAI
        # and Azure send them.
        self.rate_limit_headers = rate_limit_headers
        self._bucket_started = False
        self.flaky_judge = flaky_judge  # judge scores vary between identical calls
        self.drifted = False  # set it to make RAG answers ignore their context (model drift)
        self.stream_delay_s = 0.0  # set it for a pause between streamed chunks
        self.faults: Counter[str] = Counter()  # injected: "500", "429", "hang" (by route too)
        self.embedding_dim, self.finetune_steps = embedding_dim, finetune_steps
        self.finetune_outcome, self._port = finetune_outcome, port
        # Extra latency for some routes only (e.g. {"embeddings": 2.0}: slow scoring, fast chat).
        self.route_latency_s = dict(route_latency_s or {})
        # keep_raw: every request as received (path, headers but Authorization, body bytes),
        # whatever its status, for tests that grep what reached the endpoint.
        self.keep_raw = keep_raw
        self.raw_requests: list[tuple[str, str, bytes]] = []
        # api_key: only this key is accepted (401 otherwise); routes_off: route keys answered
        # 404 as a server without them would (e.g. ("models",): no GET /v1/models).
        self.api_key, self.routes_off = api_key, tuple(routes_off)
        self.counts: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.requests: list[tuple[str, JSON]] = []
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, JSON] = {}
        self._events: dict[str, list[JSON]] = {}
        self._retrieves: Counter[str] = Counter()
        self._models: dict[str, None] = {"fake-chat": None, "fake-embed": None}  # ordered set
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._seen = 0  # authenticated requests, for fail_first
        self._tokens = 0.0
        self._refilled_at = 0.0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping = threading.Event()
        self._tokens, self._refilled_at = max(1.0, self.rate_limit_rps or 1.0), time.monotonic()
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.fake = self
        # A short poll interval keeps stop() fast; the default makes shutdown() wait up to 0.5 s.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai-server", daemon=True)
        self._httpd = httpd
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()  # wakes handlers sleeping in latency/hang injection
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive handlers would otherwise linger until their timeout
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.attempts.clear()
            self.requests.clear()
            self.faults.clear()
            self._bucket_started = False  # an empty-starting bucket starts empty again

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- request pipeline ----------------------------------------------------------------------

    def _handle(self, key: str, params: dict[str, str], raw: bytes,
                headers: Message) -> tuple[int, JSON | list[JSON], dict[str, str]]:
        with self._lock:
            self.attempts[key] += 1
            extra = {"x-request-id": f"req_{sum(self.attempts.values()):08d}"}
            if self.keep_raw:
                shown = "".join(f"{k}: {v}\n" for k, v in headers.items()
                                if k.lower() != "authorization")
                self.raw_requests.append((key, shown, raw))
        given = str(headers.get("Authorization", "")).strip()
        if not _BEARER_RE.fullmatch(given) or (
                self.api_key is not None and given != f"Bearer {self.api_key}"):
            return (*_error(401, "Missing or invalid bearer token.", "invalid_request_error",
                            "invalid_api_key"), extra)
        if fault := self._inject_fault(key, extra):
            status, payload, fault_headers = fault
            return status, payload, {**extra, **fault_headers}
        try:
            body = self._parse_body(raw, str(headers.get("Content-Type", "")))
        except ValueError as exc:
            return (*_error(400, str(exc), "invalid_request_error", "invalid_body"), extra)
        status, payload = getattr(self, f"_ep_{key}")(body, params)
        if 200 <= status < 300:
            logged = {k: {"filename": v[0], "bytes": len(v[1])} if isinstance(v, tuple) else v
                      for k, v in {**params, **body}.items()}
            with self._lock:
                self.counts[key] += 1
                self.requests.append((key, logged))
        return status, payload, extra

    def _inject_fault(self, key: str, ok_headers: dict[str, str] | None = None
                      ) -> tuple[int, JSON, dict[str, str]] | None:
        with self._lock:
            self._seen += 1
            if self._seen <= self.fail_first:
                self._count_fault("500", key)
                return (*_error(500, "Injected failure (fail_first).", *_SERVER_ERROR), {})
            limited = self.rate_limit_rps is not None and (
                self.rate_limit_routes is None or key in self.rate_limit_routes)
            wait = self._take_token() if limited else 0.0
            if limited and self.rate_limit_headers and ok_headers is not None:
                ok_headers.update(self._bucket_headers())
            if limited and wait > 0:
                # Round up: a client sleeping slightly too little would just be refused again.
                ms = math.ceil(wait * 1000)
                seconds = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
                headers = {"Retry-After": seconds, "retry-after-ms": str(ms),
                           **(self._bucket_headers() if self.rate_limit_headers else {})}
                status, payload = _error(429, "Rate limit reached (fake).", "requests",
                                         "rate_limit_exceeded")
                self._count_fault("429", key)
                return status, payload, headers
            if self.error_rate > 0 and self._rng.random() < self.error_rate:
                self._count_fault("500", key)
                return (*_error(500, "Injected failure (error_rate).", *_SERVER_ERROR), {})
            hang = self.hang_rate > 0 and self._rng.random() < self.hang_rate
            if hang:
                self._count_fault("hang", key)
        # Sleep outside the lock so concurrent requests overlap; stop() cuts the sleep short.
        if hang:
            self._stopping.wait(self.hang_s)
        if self.latency_s > 0:
            self._stopping.wait(self.latency_s)
        if self.route_latency_s.get(key, 0) > 0:
            self._stopping.wait(self.route_latency_s[key])
        return None

    def _count_fault(self, kind: str, key: str) -> None:
        self.faults[kind] += 1
        self.faults[f"{kind}:{key}"] += 1

    def _bucket_headers(self) -> dict[str, str]:
        """The bucket as OpenAI reports it: size, whole requests left, time until it is full."""
        rps = self.rate_limit_rps or 1.0
        size = max(1.0, rps)
        reset_ms = math.ceil(max(0.0, size - self._tokens) / rps * 1000)
        reset = f"{reset_ms}ms" if reset_ms < 1000 else f"{reset_ms / 1000:.3f}s"
        return {"x-ratelimit-limit-requests": str(int(size)),
                "x-ratelimit-remaining-requests": str(int(self._tokens)),
                "x-ratelimit-reset-requests": reset}

    def _take_token(self) -> float:
        """Token bucket; returns 0 when a token was taken, else the seconds until one is due."""
        rps = self.rate_limit_rps or 1.0
        now = time.monotonic()
        if self.bucket_starts_empty and not self._bucket_started:
            self._tokens, self._refilled_at = 0.0, now
        self._bucket_started = True
        self._tokens = min(max(1.0, rps), self._tokens + (now - self._refilled_at) * rps)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rps

    @staticmethod
    def _parse_body(raw: bytes, content_type: str) -> JSON:
        if not raw:
            return {}
        if content_type.startswith("multipart/form-data"):
            return _parse_multipart(raw, content_type)
        body = json.loads(raw)  # JSONDecodeError is a ValueError
        if not isinstance(body, dict):
            raise ValueError("Request body must be a JSON object.")
        return body

    def _see_model(self, name: Any) -> None:
        if isinstance(name, str) and name:
            with self._lock:
                self._models.setdefault(name, None)

    # -- endpoints -----------------------------------------------------------------------------

    def _ep_chat(self, body: JSON, params: dict[str, str]) -> Reply:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array.", "invalid_request_error",
                          "invalid_value", "messages")
        model = str(body.get("model") or "fake-chat")
        self._see_model(model)
        # A flaky judge: the same rubric and row score differently on each call.
        salt = str(self.counts["chat"]) if self.flaky_judge else ""
        answer, finish = _answer(messages, body.get("response_format"), salt, self.drifted), "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and len(words := answer.split()) > limit:
            answer, finish = " ".join(words[:limit]), "length"
        prompt = sum(len(_text_of(m.get("content")).split()) + 4
                     for m in messages if isinstance(m, dict))
        completion = max(1, len(answer.split()))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        head = {"id": "chatcmpl-" + _sha(json.dumps(messages, sort_keys=True))[:24],
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": answer, "refusal": None}
            return 200, {**head, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        deltas: list[tuple[JSON, str | None]] = [({"role": "assistant"}, None)]
        deltas += [({"content": piece}, None) for piece in re.findall(r"\s*\S+", answer)]
        deltas.append(({}, finish))
        chunks: list[JSON] = [
            {**head, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
             **({"usage": None} if with_usage else {})}
            for delta, reason in deltas]
        if with_usage:
            chunks.append({**head, "object": "chat.completion.chunk", "choices": [],
                           "usage": usage})
        return 200, chunks

    def _ep_embeddings(self, body: JSON, params: dict[str, str]) -> Reply:
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            texts = [str(raw)]  # one pre-tokenised input
        elif isinstance(raw, list) and raw:
            texts = [x if isinstance(x, str) else str(x) for x in raw]
        else:
            return _error(400, "'input' must be a non-empty string or array.",
                          "invalid_request_error", "invalid_value", "input")
        dim = body.get("dimensions") or self.embedding_dim
        fmt = body.get("encoding_format") or "float"
        if not isinstance(dim, int) or dim < 1 or fmt not in ("float", "base64"):
            return _error(400, "Invalid 'dimensions' or 'encoding_format'.",
                          "invalid_request_error", "invalid_value")
        model = str(body.get("model") or "fake-embed")
        self._see_model(model)
        data = []
        for index, text in enumerate(texts):
            packed = _embed(text, dim)
            # Floats are the float32 values too, so both formats decode to identical vectors.
            vector = base64.b64encode(packed).decode() if fmt == "base64" else \
                list(struct.unpack(f"<{dim}f", packed))
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(_WORD_RE.findall(t.lower())) for t in texts)
        return 200, {"object": "list", "data": data, "model": model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _ep_moderations(self, body: JSON, params: dict[str, str]) -> Reply:
        raw = body.get("input")
        items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if not items:
            return _error(400, "'input' must be a non-empty string or array.",
                          "invalid_request_error", "invalid_value", "input")
        results = []
        for item in items:
            text = _text_of([item] if isinstance(item, dict) else item)  # multimodal parts
            words = set(_WORD_RE.findall(text.lower()))
            hits = {category for word in words & _LEXICON.keys() for category in _LEXICON[word]}
            results.append({
                "flagged": bool(hits),
                "categories": {c: c in hits for c in _CATEGORIES},
                "category_scores": {c: 0.9 if c in hits else 0.01 for c in _CATEGORIES},
                "category_applied_input_types": {c: ["text"] for c in _CATEGORIES},
            })
        model = str(body.get("model") or "omni-moderation-latest")
        self._see_model(model)
        moderation_id = "modr-" + _sha(json.dumps(items))[:24]
        return 200, {"id": moderation_id, "model": model, "results": results}

    def _ep_models(self, body: JSON, params: dict[str, str]) -> Reply:
        with self._lock:
            names = list(self._models)
        return 200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in names]}

    def _ep_files(self, body: JSON, params: dict[str, str]) -> Reply:
        upload, purpose = body.get("file"), body.get("purpose")
        if not isinstance(upload, tuple) or not isinstance(purpose, str):
            return _error(400, "Expected multipart fields 'file' and 'purpose'.",
                          "invalid_request_error", "invalid_value", "file")
        filename, content = upload
        file_id = "file-" + _sha(content)[:24]
        with self._lock:
            self.files[file_id] = content
        return 200, {"id": file_id, "object": "file", "bytes": len(content),
                     "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                     "status": "processed", "status_details": None}

    def _ep_ft_create(self, body: JSON, params: dict[str, str]) -> Reply:
        model, training_file = body.get("model"), body.get("training_file")
        if not isinstance(model, str) or not model:
            return _error(400, "'model' is required.", "invalid_request_error", "invalid_value",
                          "model")
        with self._lock:
            if training_file not in self.files:
                return _error(400, f"Invalid file: {training_file!r} was not uploaded.",
                              "invalid_request_error", "invalid_file", "training_file")
            job_id = f"ftjob-{len(self.jobs) + 1:06d}"
            self.jobs[job_id] = {
                "id": job_id, "object": "fine_tuning.job", "status": "validating_files",
                "model": model, "training_file": training_file, "validation_file": None,
                "fine_tuned_model": None, "created_at": int(time.time()), "finished_at": None,
                "error": None, "result_files": [], "trained_tokens": None, "seed": 0,
                "hyperparameters": body.get("hyperparameters") or {"n_epochs": "auto"},
                "organization_id": "org-fake",
                "user_provided_suffix": body.get("suffix"), "method": body.get("method"),
            }
            self._events[job_id] = []
            self._event(job_id, f"Validating training file: {training_file}")
            job = dict(self.jobs[job_id])
        self._see_model(model)
        return 200, job

    def _ep_ft_list(self, body: JSON, params: dict[str, str]) -> Reply:
        with self._lock:
            jobs = [dict(job) for job in reversed(self.jobs.values())]
        return self._page(jobs, params)

    def _ep_ft_retrieve(self, body: JSON, params: dict[str, str]) -> Reply:
        job_id = params["job_id"]
        with self._lock:
            if (job := self.jobs.get(job_id)) is None:
                return self._no_job(job_id)
            if job["status"] not in _TERMINAL:
                # Each poll advances the simulation, so tests control progress without clocks.
                self._retrieves[job_id] += 1
                if self._retrieves[job_id] <= self.finetune_steps:
                    self._set_status(job, "running", "Fine-tuning job started")
                else:
                    self._finish(job)
            snapshot = dict(job)
        if snapshot["fine_tuned_model"]:
            self._see_model(snapshot["fine_tuned_model"])
        return 200, snapshot

    def _ep_ft_events(self, body: JSON, params: dict[str, str]) -> Reply:
        with self._lock:
            if params["job_id"] not in self.jobs:
                return self._no_job(params["job_id"])
            events = list(reversed(self._events[params["job_id"]]))
        return self._page(events, params)

    def _ep_ft_cancel(self, body: JSON, params: dict[str, str]) -> Reply:
        with self._lock:
            if (job := self.jobs.get(params["job_id"])) is None:
                return self._no_job(params["job_id"])
            if job["status"] in _TERMINAL:
                return _error(400, f"Job has already {job['status']}.", "invalid_request_error",
                              "job_already_completed")
            self._set_status(job, "cancelled", "Fine-tuning job cancelled")
            return 200, dict(job)

    # -- fine-tuning helpers (called with the lock held) -----------------------------------------

    def _finish(self, job: JSON) -> None:
        outcome = self.finetune_outcome
        if outcome == "succeeded":
            suffix = job.get("user_provided_suffix") or "model"
            job["fine_tuned_model"] = f"ft:{job['model']}:fake:{suffix}:{job['id'][-6:]}"
            job["finished_at"] = int(time.time())
            content = self.files[job["training_file"]].decode(errors="replace")
            job["trained_tokens"] = len(content.split())
            self._set_status(job, outcome, "The job has successfully completed")
        elif outcome == "failed":
            job["error"] = {"code": "invalid_training_file",
                            "message": "fake failure: training loss diverged", "param": None}
            self._set_status(job, outcome, "fake failure: training loss diverged", level="error")
        else:
            self._set_status(job, outcome, "Fine-tuning job cancelled")

    def _set_status(self, job: JSON, status: str, message: str, level: str = "info") -> None:
        if job["status"] != status:
            job["status"] = status
            self._event(job["id"], message, level)

    def _event(self, job_id: str, message: str, level: str = "info") -> None:
        events = self._events[job_id]
        events.append({"object": "fine_tuning.job.event",
                       "id": f"ftevent-{job_id[-6:]}-{len(events) + 1}",
                       "created_at": int(time.time()), "level": level, "message": message,
                       "data": {}, "type": "message"})

    @staticmethod
    def _page(items: list[JSON], params: dict[str, str]) -> Reply:
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 20
        if after := params.get("after"):  # cursor paging, as the API does: items after that id
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return 200, {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

    @staticmethod
    def _no_job(job_id: str) -> Reply:
        return _error(404, f"No fine-tuning job found with id {job_id!r}.", "invalid_request_error",
                      "fine_tune_not_found", "fine_tuning_job_id")


def serve_forever_cli() -> None:
    """`python -m tests.support.openai_server --port 8765 --latency 0.2 --rps 50`."""
    parser = argparse.ArgumentParser(description="Local deterministic OpenAI-compatible server.")
    # (flag, constructor keyword, type, default)
    options: list[tuple[str, str, type, Any]] = [
        ("--port", "port", int, 0), ("--latency", "latency_s", float, 0.0),
        ("--rps", "rate_limit_rps", float, None), ("--error-rate", "error_rate", float, 0.0),
        ("--hang-rate", "hang_rate", float, 0.0), ("--hang-s", "hang_s", float, 5.0),
        ("--fail-first", "fail_first", int, 0), ("--seed", "seed", int, 0),
        ("--embedding-dim", "embedding_dim", int, 64),
        ("--finetune-steps", "finetune_steps", int, 2),
        ("--finetune-outcome", "finetune_outcome", str, "succeeded"),
    ]
    for flag, dest, type_, default in options:
        parser.add_argument(flag, dest=dest, type=type_, default=default)
    server = FakeOpenAIServer(**vars(parser.parse_args())).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    serve_forever_cli()
