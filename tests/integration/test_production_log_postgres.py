"""Acceptance (team profile): two `llmops serve` processes log into one PostgreSQL table under
concurrent load; every exchange is there exactly once and the monitoring asset reads them all."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import openai
import pytest
import sqlalchemy as sa

from llmops_pipelines.definitions import defs
from llmops_pipelines.monitoring.cursor import MonitorCursor
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.serving.production_log import ProductionLog
from llmops_pipelines.serving.production_log_pg import APPEND_LOCK
from llmops_pipelines.settings import Settings
from llmops_pipelines.state.engine import shared_engine
from tests.integration.test_serving import TOKEN, free_port, metadata, monitor
from tests.support.postgres import PostgresServer, pg_bin

pytestmark = [pytest.mark.team,
              pytest.mark.skipif(pg_bin() is None, reason="no PostgreSQL server binaries")]
REPO = Path(__file__).resolve().parents[2]
PER_SERVER = 30


@pytest.fixture
def database(openai_env, monkeypatch) -> Iterator[str]:
    with PostgresServer() as pg:
        url = pg.create_database("llmops")
        monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
        yield url


def deploy_champion() -> None:
    """The shipped grounded_concise prompt on the test server's model, in the shared registry."""
    prompt = next(p for p in load_prompts(REPO / "assets" / "prompts")
                  if p.name == "grounded_concise")
    Registry.from_settings(Settings.from_env()).promote(
        {"candidate_id": f"{prompt.name}@gpt-4o-mini#{prompt.version[:8]}",
         "prompt_name": prompt.name, "prompt_version": prompt.version, "model": "gpt-4o-mini",
         "quality": 0.5}, {"index": "i", "data": "d"}, reason="test deploys", actor="ci")


def start_server(stack: ExitStack, log: Path) -> str:
    port = free_port()
    out = stack.enter_context(log.open("w"))
    server = subprocess.Popen([sys.executable, "-m", "llmops_pipelines.cli", "serve", "--port",
                               str(port)], cwd=REPO, env=dict(os.environ), stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(server.wait, 30)
    stack.callback(server.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return url
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


def test_two_servers_one_log(database, isolated_home, tmp_path, monkeypatch) -> None:
    result = dg.materialize([*defs.assets, *defs.asset_checks],
                            selection=dg.AssetSelection.groups("curation", "rag"),
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    deploy_champion()
    monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
    with ExitStack() as stack:
        urls = [start_server(stack, tmp_path / f"serve-{i}.log") for i in range(2)]
        clients = [openai.OpenAI(base_url=f"{u}/v1", api_key=TOKEN, max_retries=0) for u in urls]
        questions = [f"How do I clean the tent? (request {i})" for i in range(2 * PER_SERVER)]

        def ask(i: int) -> str:
            reply = clients[i % 2].chat.completions.create(
                model="champion", messages=[{"role": "user", "content": questions[i]}])
            return reply.id

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(ask, range(len(questions))))
        # Feedback on the other server than the one that answered: it finds the id in the table.
        for i in range(4):
            clients[(i + 1) % 2].post("/feedback", body={"id": ids[i], "rating": "up"},
                                      cast_to=object)
        with pytest.raises(openai.NotFoundError):  # never served by anyone
            clients[0].post("/feedback", body={"id": "chatcmpl-nobody", "rating": "up"},
                            cast_to=object)
        for i in range(2):
            assert TOKEN not in (tmp_path / f"serve-{i}.log").read_text()

        settings = Settings.from_env()
        window = ProductionLog.from_settings(settings).read_since(0)
        assert window.rejects == []
        assert Counter(e["question"] for e in window.exchanges) == Counter(questions)
        assert sorted(e["id"] for e in window.exchanges) == sorted(ids)
        assert [f["id"] for f in window.feedback] == ids[:4]
        assert not (isolated_home / "production" / "exchanges.jsonl").exists()

        monitored = monitor()
        assert monitored.success
        meta = metadata(monitored)
        assert (meta["exchanges"], meta["feedback"]) == (2 * PER_SERVER, 4)
        assert meta["log_ids"] == f"0..{window.end}"
        assert MonitorCursor(settings).load() == window.end  # in the database, not a file
        assert not (isolated_home / "monitoring" / "cursor.json").exists()

        clients[1].chat.completions.create(model="champion",
                                           messages=[{"role": "user", "content": "Hi?"}])
        later = monitor()
        assert metadata(later)["exchanges"] == 1


def test_ids_become_visible_in_order(database) -> None:
    """An append that started first (took its id) holds the later ones back until it commits,
    so a reader that saved cursor N never meets a row < N committing afterwards."""
    log = ProductionLog.from_settings(Settings.from_env())
    log.append({"type": "feedback", "id": "chatcmpl-0", "at": 1.0, "rating": 1})
    engine = shared_engine(database)
    with engine.connect() as slow:  # an appender stalled between its INSERT and its COMMIT
        slow.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})
        slow.execute(sa.text("INSERT INTO production_log (kind, record) VALUES ('feedback', "
                             "'{\"type\": \"feedback\", \"id\": \"chatcmpl-1\", \"at\": 2, "
                             "\"rating\": -1}')"))
        later = threading.Thread(target=log.append, args=(
            {"type": "feedback", "id": "chatcmpl-2", "at": 3.0, "rating": 1},))
        later.start()
        later.join(1.0)
        assert later.is_alive()  # queued behind the stalled one, its id not yet taken
        first = log.read_since(0)
        assert [f["id"] for f in first.feedback] == ["chatcmpl-0"]
        slow.commit()
    later.join(30)
    rest = log.read_since(first.end)
    assert [f["id"] for f in rest.feedback] == ["chatcmpl-1", "chatcmpl-2"]
    with engine.begin() as conn:  # a bad row is rejected with its reason and row id
        conn.execute(sa.text("INSERT INTO production_log (kind, record) VALUES ('x', 'not json')"))
    bad = log.read_since(rest.end)
    assert bad.rejects[0]["line"] == rest.end + 1 and "not JSON" in bad.rejects[0]["reason"]
    assert bad.end == rest.end + 1 and log.version() == str(bad.end)
