"""Kill the evaluating process midway (SIGKILL: no cleanup runs), then re-run: nothing re-billed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_evaluation_engine import Harness, assert_one_row_each
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
# The child evaluates with the same harness the in-process re-run uses (same keys, same cache).
CHILD = """
import sys
from pathlib import Path
import pytest
from tests.integration.test_evaluation_engine import Harness
from tests.support.openai_server import FakeOpenAIServer

class Remote(FakeOpenAIServer):
    base_url = sys.argv[1]

harness = Harness(Remote(), Path(sys.argv[2]), pytest.MonkeyPatch(), n=int(sys.argv[3]))
harness.run(concurrency=4)
print("finished", flush=True)
"""


def answered(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as conn:  # WAL: reads while the child writes
        try:
            return conn.execute("SELECT COUNT(*) FROM calls WHERE kind = 'chat'").fetchone()[0]
        except sqlite3.OperationalError:  # the child has not created the table yet
            return 0


def test_killed_run_loses_nothing_and_rebills_no_finished_row(tmp_path, monkeypatch) -> None:
    n = 60  # 120 answers at 4 in flight and 50 ms each: ~1.5 s of calls, killed a third in
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAIServer(latency_s=0.05) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.base_url, str(tmp_path), str(n)],
                                 cwd=REPO, env={**os.environ, "OPENAI_API_KEY": "test-key"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while answered(cache) < 40 and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == -signal.SIGKILL, err[-2000:]
        # Requests the child had in flight still finish at the server: let them, before counting.
        while server.counts["chat"] < server.attempts["chat"] and time.monotonic() < deadline:
            time.sleep(0.01)
        done_before = answered(cache)
        billed_before = server.counts["chat"]
        assert 40 <= done_before < 2 * n, "the child was not killed midway"
        server.reset()
        harness = Harness(server, tmp_path, monkeypatch, n=n)
        rows = harness.run(concurrency=4)
    assert_one_row_each(rows, harness)
    assert rows["error"].isna().all()
    # Every answer that came back before the kill was stored: the re-run asks only for the rest.
    assert server.counts["chat"] == harness.total - done_before
    asked_again = {str(body["messages"]) for kind, body in server.requests if kind == "chat"}
    assert len(asked_again) == server.counts["chat"]  # and none of them twice
    assert rows["cached"].sum() == done_before
    # Calls in flight at the kill may have been billed without an answer reaching us: at most
    # one per concurrent slot.
    assert billed_before - done_before <= 4
