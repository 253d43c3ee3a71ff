"""A tiny OTLP/HTTP trace collector, run as its own process: `python -m tests.support.otlp_collector
PORT OUT.jsonl`. POST /v1/traces (protobuf ExportTraceServiceRequest, or its JSON form) appends one
JSON line per span: name, trace/span/parent ids (hex), start/end ns and attributes."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def spans(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """The request's spans as plain dicts."""
    out = []
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for s in scope.spans:
                out.append({"name": s.name, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex() or None,
                            "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano,
                            "attributes": {a.key: _value(a.value) for a in s.attributes}})
    return out


def _decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if "json" in content_type:
        # OTLP/JSON spells ids as hex; protobuf's JSON mapping expects base64 bytes.
        data = json.loads(body)
        for rs in data.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if s.get(key):
                            import base64
                            s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
        json_format.ParseDict(data, request)
    else:
        request.ParseFromString(body)
    return request


def serve(port: int, out: Path) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype = self.headers.get("Content-Type") or ""
            try:
                decoded = spans(_decode(body, ctype))
            except Exception as exc:  # a malformed export is the client's bug: say why
                self.send_error(400, f"undecodable export: {exc}")
                return
            with lock, out.open("a", encoding="utf-8") as f:
                for span in decoded:
                    f.write(json.dumps(span) + "\n")
            reply = ExportTraceServiceResponse()
            payload = json_format.MessageToJson(reply).encode() if "json" in ctype \
                else reply.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if "json" in ctype
                             else "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 (a readiness probe)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def read_spans(path: Path) -> list[dict[str, Any]]:
    """What the collector wrote so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
