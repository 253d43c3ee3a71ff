"""Start the server (`llmops serve`) and talk to it (`llmops chat`)."""

from __future__ import annotations

import signal
import sys
from typing import Any, TextIO

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.serving.production_log import ProductionLog
from llmops_pipelines.settings import Settings
from llmops_pipelines.state.engine import masked


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run uvicorn in the foreground until interrupted."""
    import uvicorn

    from llmops_pipelines.serving.app import create_app
    from llmops_pipelines.serving.champion_app import ChampionApp

    if not settings.serve_token:
        raise SettingsError("llmops serve needs LLMOPS_SERVE_TOKEN: clients must send it as "
                            "their API key (bearer token); set it in the environment")
    # Checked before anything starts: uvicorn would take 0 as "any free port" and the banner
    # would name a port nobody listens on. (LLMOPS_SERVE_PORT is checked by Settings.)
    if port is not None and not 1 <= port <= 65535:
        raise SettingsError(f"--port {port} is out of range: expected 1..65535")
    host, port = host or settings.serve_host, port or settings.serve_port
    log = ProductionLog.from_settings(settings)
    app = create_app(ChampionApp(settings), settings.serve_token, log,
                     max_body_bytes=settings.serve_max_body_bytes)
    # A database URL is shown with its password masked, never as given.
    registry = masked(settings.database_url) if settings.database_url else settings.registry_path
    print(f"llmops serve: http://{host}:{port}/v1 (champion from {registry}; "
          f"log {log.where})", flush=True)
    # uvicorn re-raises SIGTERM once shut down: as SystemExit the batched spans are still flushed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        # Spans still batched for the OTLP exporter go out before the process exits.
        from llmops_pipelines import tracing

        tracing.flush()


def chat(settings: Settings, url: str, once: str | None = None,
         stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """A terminal client over the official openai client; `/up` or `/down` rates the last answer."""
    import openai

    if not settings.serve_token:
        raise SettingsError("llmops chat needs LLMOPS_SERVE_TOKEN (the server's token)")
    client = openai.OpenAI(base_url=url, api_key=settings.serve_token, max_retries=0)
    last_id = None
    history: list[Any] = []  # the official client's message dicts
    questions = [once] if once is not None else (line.strip() for line in stdin)
    if once is None:
        print("ask a question; /up or /down rates the last answer; Ctrl-D quits", file=stdout)
    for question in questions:
        if not question:
            continue
        if question in ("/up", "/down"):
            if last_id is None:
                print("nothing to rate yet", file=stdout)
                continue
            client.post("/feedback", body={"id": last_id, "rating": question[1:]},
                        cast_to=object)
            print(f"rated {question[1:]}", file=stdout)
            continue
        # The whole conversation goes each time: the server answers follow-ups in context.
        history.append({"role": "user", "content": question})
        stream = client.chat.completions.create(model="champion", messages=history,
                                                stream=True)
        parts, sources, model = [], "", ""
        for chunk in stream:
            last_id, model = chunk.id, chunk.model or model
            extra = (chunk.model_extra or {}).get("llmops") or {}
            sources = ", ".join(extra.get("context_doc_ids", [])) or sources
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                print(chunk.choices[0].delta.content, end="", file=stdout, flush=True)
        history.append({"role": "assistant", "content": "".join(parts).strip()})
        print(file=stdout)
        print(f"  [{model}; sources: {sources or 'none'}]", file=stdout, flush=True)
    return 0
