"""A real Chroma server (`chroma run`, shipped with chromadb) on a free local port, for tests.

    with ChromaServer(tmp_path / "chroma") as server:
        os.environ["LLMOPS_CHROMA_URL"] = server.url
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

STARTUP_S = 30.0


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chroma_cli() -> Path:
    """The `chroma` executable next to this interpreter (the venv's, installed by chromadb)."""
    path = Path(sys.executable).with_name("chroma")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: install chromadb into this environment")
    return path


class ChromaServer:
    """Starts `chroma run` in its own session, waits for its heartbeat, stops it by pid."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = self.path.with_name(f"{self.path.name}.log")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(chroma_cli()), "run", "--path", str(self.path), "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        self._wait_for_heartbeat()
        return self

    def _wait_for_heartbeat(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"`chroma run` did not answer on {self.url} within {STARTUP_S:.0f}s; "
                           f"its log:\n{self._log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        # Its own session: the signal reaches the server and nothing else of ours.
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
