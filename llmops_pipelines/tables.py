"""Tables on any filesystem: LLMOPS_HOME/tables by default, or any fsspec URL (LLMOPS_TABLES_URI).

Every reader and writer of asset outputs goes through here, so s3://, gs://, memory:// and a
shared folder all behave the same and no caller needs to know which one it has.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
from upath import UPath
from upath.implementations.cloud import CloudPath

# A table's location: a local Path (the default) or a UPath from LLMOPS_TABLES_URI.
TablePath = Path | UPath

_LOCAL = ("", "file", "local")


def masked(location: TablePath | str) -> str:
    """The location with any user:password@ and query values replaced by ***: safe for logs."""
    text = str(location)
    parts = urlsplit(text)
    if not parts.scheme or "://" not in text:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{kv.split('=', 1)[0]}=***" if "=" in kv else kv
                     for kv in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _local(path: TablePath) -> Path | None:
    """The plain local path behind a location (file:// included), None for remote filesystems."""
    if isinstance(path, UPath) and path.protocol not in _LOCAL:
        return None
    return Path(path.path if isinstance(path, UPath) else path)


def exists(path: TablePath) -> bool:
    """Whether a table (or folder) is there."""
    local = _local(path)
    return local.exists() if local is not None else path.exists()


def write_bytes(path: TablePath, data: bytes) -> None:
    """Write so no reader (pandas, duckdb, `llmops status`, another worker) sees half a file."""
    local = _local(path)
    if local is None:
        # Object stores publish an object on one put, whole or not at all; folders there are
        # only key prefixes, so there is nothing to create first.
        if not isinstance(path, CloudPath):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two runs writing at once never share a temporary file.
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


def read_bytes(path: TablePath) -> bytes:
    """The whole file."""
    local = _local(path)
    return local.read_bytes() if local is not None else path.read_bytes()


def write_table(path: TablePath, frame: pd.DataFrame) -> None:
    """A DataFrame as Parquet (no index), written whole."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes(path, buffer.getvalue())


def read_table(path: TablePath, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet table, optionally only some columns."""
    local = _local(path)
    if local is not None:
        return pd.read_parquet(local, columns=columns)
    with path.open("rb") as handle:
        return pd.read_parquet(handle, columns=columns)


def write_json(path: TablePath, value: Any) -> None:
    """A value as indented JSON (what pandas cannot hold: dicts, lists)."""
    write_bytes(path, json.dumps(value, indent=2, default=str).encode("utf-8"))


def read_json(path: TablePath) -> Any:
    """A JSON file written by write_json."""
    return json.loads(read_bytes(path).decode("utf-8"))


def names(folder: TablePath, pattern: str) -> list[str]:
    """The file names in a folder matching a glob pattern, sorted; none when it does not exist."""
    local = _local(folder)
    if local is not None:
        return sorted(p.name for p in local.glob(pattern))
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.glob(pattern))
