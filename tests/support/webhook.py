"""A local webhook receiver on a free port, and the secrets alert tests plant in the environment."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_ENV = {"OPENAI_API_KEY": "sk-live-abcdefghijklmnop", "LLMOPS_SERVE_TOKEN": "serve-tok-123456",
              "LLMOPS_ALERT_WEBHOOK": "https://hooks.example/T0/secret-path",
              "LLMOPS_MAX_TOKENS": "2000", "HOME": "/home/someone"}


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_webhook() -> Iterator[tuple[str, type[Hook]]]:
    """A local webhook receiver on a free port: (url, handler class holding what it received)."""
    handler = type("Hook", (Hook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()
