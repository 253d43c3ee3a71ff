"""Where the evaluation report lives under LLMOPS_HOME, and writing it so no reader sees half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmops_pipelines.errors import LlmopsError

REPORT_PARTS = ("reports", "evaluation_report.html")


def report_path(home: Path) -> Path:
    """LLMOPS_HOME/reports/evaluation_report.html (nothing is created)."""
    return Path(home).joinpath(*REPORT_PARTS)


def write_atomic(path: Path, text: str) -> int:
    """Write UTF-8 text beside the target, then rename over it; returns the size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    # A name of its own per writer: two runs writing at once never share a temporary file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from the rest of the team
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)


def latest_report(home: Path) -> Path:
    """The report's path, or an error naming what to materialize when there is none."""
    path = report_path(home)
    if not path.is_file():
        raise LlmopsError(
            f"no evaluation report at {path} yet: materialize the `evaluation_report` asset "
            "(group evaluation; it reads evaluation_rows and evaluation_summary), e.g. `dagster "
            "asset materialize -m llmops_pipelines.definitions --select evaluation_report`, or "
            "`make demo`")
    return path
