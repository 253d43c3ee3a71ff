"""The Chroma client of a run: a local persistent store, or a server with optional token auth."""

from __future__ import annotations

import re
from typing import Any

from llmops_pipelines.errors import SettingsError
from llmops_pipelines.tables import masked

TOKEN_HEADERS = ("Authorization", "X-Chroma-Token")  # what chromadb's token auth sends


def chroma_client(*, path: str | None, url: str | None, token: str | None = None,
                  token_header: str = "Authorization") -> Any:
    """HttpClient for LLMOPS_CHROMA_URL (sending LLMOPS_CHROMA_TOKEN on every request), else a
    PersistentClient at `path`."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    if not url:
        if not path:
            raise SettingsError("a Chroma index needs a local path or LLMOPS_CHROMA_URL")
        return chromadb.PersistentClient(path=path,
                                         settings=ChromaSettings(anonymized_telemetry=False))
    match = re.match(r"^(https?)://([^:/@]+)(?::(\d+))?/?$", url)
    if not match:
        raise SettingsError(f"LLMOPS_CHROMA_URL={masked(url)!r} is not http(s)://host[:port] "
                            "(the token goes in LLMOPS_CHROMA_TOKEN, not in the URL)")
    options: dict[str, Any] = {"anonymized_telemetry": False}
    if token:
        if token_header not in TOKEN_HEADERS:
            raise SettingsError(f"LLMOPS_CHROMA_TOKEN_HEADER={token_header!r}: expected one of "
                                f"{TOKEN_HEADERS}")
        # chromadb's own token provider: "Authorization: Bearer <token>" or "X-Chroma-Token:
        # <token>" on every request, the token kept as a SecretStr inside the client.
        options.update(chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
                       chroma_client_auth_credentials=token,
                       chroma_auth_token_transport_header=token_header)
    return chromadb.HttpClient(host=match.group(2), port=int(match.group(3) or 8000),
                               ssl=match.group(1) == "https", settings=ChromaSettings(**options))
