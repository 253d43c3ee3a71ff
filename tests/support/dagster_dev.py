"""`dagster dev` as the tests start it: its own session, logged to a file, stopped whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_ui import free_port

REPO = Path(__file__).resolve().parents[2]


class DagsterDev:
    """`dagster dev` in its own session, so the webserver, daemon and code server stop together."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port, self.log = free_port(), log
        dagster = str(Path(sys.executable).parent / "dagster")
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the server
            self.process = subprocess.Popen(
                [dagster, "dev", "-h", "127.0.0.1", "-p", str(self.port),
                 "-m", "llmops_pipelines.definitions"],
                cwd=REPO, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, done: Callable[[], object], what: str, timeout_s: float = 300) -> object:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.tail()
            value = done()
            if value:
                return value
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
