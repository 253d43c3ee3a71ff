"""A token-checking reverse proxy in front of a real Chroma server, like a team's gateway.

    with ChromaServer(tmp_path / "chroma") as chroma, TokenProxy(chroma.url, "s3cret") as proxy:
        os.environ["LLMOPS_CHROMA_URL"] = proxy.url

Requests without the expected header get 401 with Chroma's own error body, so the client
raises what a token-protected Chroma server makes it raise; the rest are forwarded unchanged.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class TokenProxy:
    """Forwards to `upstream` only requests whose `header` carries the token."""

    def __init__(self, upstream: str, token: str, header: str = "Authorization") -> None:
        self.upstream = urlsplit(upstream)
        self.header = header
        self.expected = f"Bearer {token}" if header == "Authorization" else token
        self.forwarded = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                return

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get(proxy.header) != proxy.expected:
                    with proxy._lock:
                        proxy.refused += 1
                    self._reply(401, json.dumps({"error": "AuthorizationError",
                                                 "message": "missing or wrong token"}).encode(),
                                {"Content-Type": "application/json"})
                    return
                with proxy._lock:
                    proxy.forwarded += 1
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1",
                                                  proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                    self._reply(reply.status, data, {k: v for k, v in reply.getheaders()
                                                     if k.lower() not in HOP_BY_HOP})
                finally:
                    conn.close()

            def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _relay

        return Handler

    def __enter__(self) -> TokenProxy:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
