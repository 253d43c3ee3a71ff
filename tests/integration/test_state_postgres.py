"""The team profile's state on a real PostgreSQL: call cache, registry, migrations, errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.settings import Settings
from llmops_pipelines.state import tables
from llmops_pipelines.state.engine import create_engine, shared_engine
from llmops_pipelines.state.migrations import MIGRATIONS, current_version, migrate
from llmops_pipelines.status import status
from tests.support.postgres import PostgresServer, pg_bin

pytestmark = [pytest.mark.team,
              pytest.mark.skipif(pg_bin() is None, reason="no PostgreSQL server binaries")]
REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"index": "idx", "data": "data"}
KEYS = [f"key-{i}" for i in range(40)]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def url(pg: PostgresServer) -> str:
    return pg.create_database(f"t_{uuid.uuid4().hex[:12]}")


def settings_for(url: str) -> Settings:
    return Settings.from_env({"LLMOPS_DATABASE_URL": url})


def summary(candidate: str, quality: float = 0.5) -> dict[str, Any]:
    return {"candidate_id": candidate, "prompt_name": "p", "model": "m", "quality": quality}


def test_cache_operations(url: str) -> None:
    cache = CallCache.from_settings(settings_for(url))
    assert cache.path is None  # not the SQLite file
    assert cache.get("a") is None and cache.misses == 1
    cache.put("a", "chat", {"text": "first"})
    cache.put("a", "chat", {"text": "second"})  # insert-if-absent: the first answer stays
    cache.put("b", "judge", {"score": 1})
    assert cache.get("a") == {"text": "first"} and cache.hits == 1
    assert cache.get_many(["a", "b", "c"]) == {"a": {"text": "first"}, "b": {"score": 1}}
    assert (cache.hits, cache.misses) == (3, 2)
    assert cache.adopt({"a2": "a", "z": "missing"}) == {"a2": {"text": "first"}}
    assert (cache.count(), cache.count("chat"), cache.count("judge")) == (3, 2, 1)
    assert CallCache.from_settings(settings_for(url)).get("a2") == {"text": "first"}


def _put_all(url: str, worker: int) -> None:
    cache = CallCache.from_settings(settings_for(url))
    for key in KEYS:
        cache.put(key, "chat", {"worker": worker, "key": key})


def _spawn(target: Any, args_list: list[tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_puts_of_the_same_keys(url: str) -> None:
    _spawn(_put_all, [(url, w) for w in range(4)])
    with create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT key, COUNT(*) FROM calls GROUP BY key")).all()
    assert sorted(rows) == sorted((k, 1) for k in KEYS)


def _use_inherited_cache(url: str) -> None:
    cache = CallCache.from_settings(settings_for(url))
    assert cache.get("parent") == {"v": 1}
    cache.put("child", "chat", {"v": 2})


def test_a_forked_worker_does_not_share_its_parents_connections(url: str) -> None:
    cache = CallCache.from_settings(settings_for(url))
    cache.put("parent", "chat", {"v": 1})
    child = multiprocessing.get_context("fork").Process(target=_use_inherited_cache, args=(url,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert cache.get_many(["parent", "child"]) == {"parent": {"v": 1}, "child": {"v": 2}}


def test_registry_promote_rollback_history(url: str) -> None:
    registry = Registry.from_settings(settings_for(url))
    assert registry.get() is None and registry.history() == []
    a = registry.promote(summary("A"), VERSIONS, reason="first", actor="ci",
                         rows=[{"qa_id": "q1", "quality": 0.5}])
    b = registry.promote(summary("B", 0.7), VERSIONS, reason="second", actor="ci")
    with pytest.raises(LlmopsError, match="already is the champion"):
        registry.promote(summary("B", 0.7), VERSIONS, reason="again", actor="ci")
    assert registry.promote_once(summary("B", 0.7), VERSIONS, reason="again") == (b, False)
    registry.record("reject", summary("C", 0.1), VERSIONS, reason="worse", actor="ci")
    assert registry.get().deployment_id == b
    assert registry.rollback(reason="oops", actor="ci") == a
    assert registry.get().candidate_id == "A"
    with pytest.raises(LlmopsError, match="no previous deployment"):
        registry.rollback()
    assert registry.rows(a) == [{"qa_id": "q1", "quality": 0.5}]
    assert registry.find("C") is not None and registry.find("nobody") is None
    events = registry.history()
    assert [e["action"] for e in events] == ["rollback", "reject", "promote", "promote"]
    assert events[0]["previous_deployment_id"] == b and events[-1]["metrics"]["quality"] == 0.5
    assert events[1]["candidate_id"] == "C"
    reader = Registry.from_settings(settings_for(url), read_only=True)
    assert reader.get().deployment_id == a and len(reader.history()) == 4


def _promote_many(url: str, worker: int) -> None:
    registry = Registry.from_settings(settings_for(url))
    for i in range(10):
        registry.promote_once(summary(f"w{worker}-{i}"), VERSIONS, reason=f"{worker}:{i}",
                              actor=f"worker-{worker}")


def test_two_processes_promoting_at_once(url: str) -> None:
    _spawn(_promote_many, [(url, 0), (url, 1)])
    registry = Registry.from_settings(settings_for(url))
    moves = list(reversed(registry.history(limit=100)))
    assert len(moves) == 20
    # Serialised: each promotion saw the alias as the one before it left it.
    assert moves[0]["previous_deployment_id"] is None
    for before, after in zip(moves, moves[1:], strict=False):
        assert after["previous_deployment_id"] == before["deployment_id"]
    assert registry.get().deployment_id == moves[-1]["deployment_id"]


def test_read_only_registry_on_a_fresh_database_reads_empty(url: str) -> None:
    reader = Registry.from_settings(settings_for(url), read_only=True)
    assert reader.get() is None and reader.history() == [] and reader.rows("x") is None
    assert current_version(create_engine(url)) == 0  # reading migrated nothing


def _open(url: str) -> None:
    shared_engine(url)


def test_migrations_are_idempotent_and_race_free(url: str) -> None:
    _spawn(_open, [(url,), (url,)])  # two workers open a new database at once
    engine = create_engine(url)
    assert current_version(engine) == MIGRATIONS[-1][0]
    assert migrate(engine) == []  # opening again applies nothing
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM schema_version")) == len(MIGRATIONS)
        inspector = sa.inspect(conn)
        for table in tables.metadata.sorted_tables:  # tables.py and the migrations agree
            assert {c["name"] for c in inspector.get_columns(table.name)} == \
                {c.name for c in table.columns}, table.name


def test_an_unreachable_server_is_named_without_its_password(pg: PostgresServer) -> None:
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    url = f"postgresql+psycopg2://llmops:sentinel-pw-123@127.0.0.1:{closed}/llmops"
    with pytest.raises(LlmopsError) as caught:
        CallCache.from_settings(settings_for(url))
    message = str(caught.value)
    assert "LLMOPS_DATABASE_URL" in message and f"127.0.0.1:{closed}" in message
    assert "sentinel-pw-123" not in message and "***" in message
    assert "sentinel-pw-123" not in repr(settings_for(url))
    chained = [caught.value.__cause__, caught.value.__context__]
    assert all("sentinel-pw-123" not in str(e) for e in chained if e is not None)


def test_a_missing_driver_is_named(pg: PostgresServer) -> None:
    with pytest.raises(LlmopsError, match="LLMOPS_DATABASE_URL=.*no driver") as caught:
        create_engine("postgresql+nosuchdriver://u:sentinel-pw-123@127.0.0.1:1/x")
    assert "sentinel-pw-123" not in str(caught.value)


# The child promotes B over A and stops dead at `stop`, where the test SIGKILLs it.
CHILD = textwrap.dedent("""
    import sys, time
    from llmops_pipelines.promotion.registry import Registry
    from llmops_pipelines.settings import Settings

    url, stop = sys.argv[1], sys.argv[2]

    def hook(step):
        if step == stop:
            print(step, flush=True)
            time.sleep(600)

    Registry.from_settings(Settings.from_env({"LLMOPS_DATABASE_URL": url}), step_hook=hook).promote(
        {"candidate_id": "B", "prompt_name": "p", "model": "m", "quality": 0.9},
        {"index": "idx", "data": "data"}, reason="B is better", actor="ci",
        rows=[{"qa_id": "q1", "quality": 0.9}])
""")


@pytest.mark.parametrize("stop", ["registered", "alias-moved", "history-written"])
def test_a_promotion_killed_midway_keeps_the_old_champion(url: str, stop: str) -> None:
    registry = Registry.from_settings(settings_for(url))
    registry.promote(summary("A"), VERSIONS, reason="first", actor="ci")
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, stop], cwd=REPO,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == stop
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    # The server rolled the dead session's transaction back and released its table lock.
    assert registry.get().candidate_id == "A" and registry.find("B") is None
    assert [h["reason"] for h in registry.history()] == ["first"]
    registry.promote(summary("C"), VERSIONS, reason="next", actor="ci")  # not blocked
    assert registry.get().candidate_id == "C"


def test_the_cli_reads_and_rolls_back_the_shared_registry(url: str, isolated_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    registry = Registry.from_settings(Settings.from_env())
    registry.promote(summary("A"), VERSIONS, reason="first", actor="ci")
    registry.promote(summary("B"), VERSIONS, reason="second", actor="ci")
    assert status(Settings.from_env())["champion"]["id"] == "B"
    assert llmops_main(["rollback", "--reason", "bad answers"]) == 0
    assert llmops_main(["history", "--json"]) == 0
    events = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert [(e["action"], e["candidate_id"]) for e in events][:2] == [("rollback", "A"),
                                                                       ("promote", "B")]
    assert status(Settings.from_env())["champion"]["id"] == "A"
    assert not (isolated_home / "registry.sqlite").exists()  # nothing went to SQLite
