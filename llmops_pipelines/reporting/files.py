"""Where the evaluation report lives under LLMOPS_HOME, and writing it so no reader sees half."""

from __future__ import annotations

import os
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
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
