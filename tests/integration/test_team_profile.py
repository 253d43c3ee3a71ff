"""The whole lifecycle on the team profile, on real engines: Dagster on PostgreSQL, each step on
a Dask worker process, our state in PostgreSQL, a Chroma server, tables on a shared folder, the
endpoint a test server capped at 40 requests/s."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.integration.test_lifecycle import lenient_gates
from tests.support.openai_server import FakeOpenAIServer
from tests.support.postgres import pg_bin
from tests.support.team import DAGSTER, PASSWORD_SENTINEL, TeamDeployment

pytestmark = [
    pytest.mark.team,
    pytest.mark.skipif(pg_bin() is None, reason="no PostgreSQL server binaries (make install)"),
    pytest.mark.timeout(900),
]
QUESTIONS, SHARD_QUESTIONS = 6, 3


def _configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lenient_gates(tmp_path, monkeypatch)
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", str(QUESTIONS))
    monkeypatch.setenv("LLMOPS_EVAL_SHARD_QUESTIONS", str(SHARD_QUESTIONS))
    monkeypatch.setenv("LLMOPS_EVAL_CONCURRENCY", "2")


def _shard_workers(run_id: str) -> dict[str, str]:
    """Step key -> the Dask worker its output metadata names, for the evaluation shards."""
    from dagster import DagsterEventType, DagsterInstance

    found = {}
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
            data = record.dagster_event.event_specific_data if record.dagster_event else None
            worker = data.metadata.get("worker") if data is not None else None
            if worker is not None and record.step_key:
                found[record.step_key] = str(worker.value)
    return found


def _shard_spans(run_id: str) -> list[tuple[float, float]]:
    """(start, end) of each evaluation shard step of a run, by start."""
    from dagster import DagsterEventType, DagsterInstance

    starts, ends = {}, {}
    with DagsterInstance.get() as instance:
        for record in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START,
                                                         DagsterEventType.STEP_SUCCESS}):
            key = record.step_key or ""
            if ".evaluate_shard_" in key:
                kind = record.dagster_event.event_type if record.dagster_event else None
                (starts if kind == DagsterEventType.STEP_START else ends)[key] = record.timestamp
    return sorted((starts[k], ends[k]) for k in starts)


def _last_run(team: TeamDeployment) -> str:
    with team.connect("dagster") as conn:
        return str(conn.execute(sa.text("SELECT run_id FROM runs ORDER BY id DESC LIMIT 1"))
                   .scalar_one())


def _chat_bodies(server: FakeOpenAIServer) -> Counter[str]:
    return Counter(repr((body.get("model"), body.get("messages")))
                   for key, body in server.requests if key == "chat")


def _rows(team: TeamDeployment) -> pd.DataFrame:
    return pd.read_parquet(team.tables / "evaluation_rows.parquet")


def test_team_lifecycle_on_postgres_dask_and_chroma_server(tmp_path, monkeypatch) -> None:
    _configure(monkeypatch, tmp_path)  # before the workers start: they inherit it
    # Answers take 0.4 s, so the kill below lands while shards are answering.
    with FakeOpenAIServer(rate_limit_rps=40, route_latency_s={"chat": 0.4}) as server, \
            TeamDeployment(tmp_path, monkeypatch, server) as team:
        # 1. SIGKILL of one Dask worker mid-evaluation.
        killed = team.materialize(background=True)
        deadline = time.monotonic() + 400
        while server.counts["chat"] < 6 and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert killed.poll() is None, ("the run ended before the evaluation started",
                                       killed.communicate()[0][-3000:])
        os.kill(sorted(team.worker_pids().values())[0], signal.SIGKILL)
        output, _ = killed.communicate(timeout=600)
        # The step on the dead worker failed its health check (the run failed, naming why), or
        # Dask ran the lost task again on the other worker (the nanny restarts the dead one).
        assert killed.returncode == 0 or "worker died" in output, output[-3000:]

        # 2. The lifecycle again: it completes, re-asking only what was in flight when the
        # worker died (answered by the server, never returned to the worker).
        done = team.materialize()
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        asked = _chat_bodies(server)
        rebilled = sum(1 for n in asked.values() if n > 1)
        assert rebilled <= 2, asked.most_common(3)  # LLMOPS_EVAL_CONCURRENCY in flight
        print(f"killed worker: that run exited {killed.returncode}; {sum(asked.values())} answers "
              f"asked in all, {rebilled} twice")

        # Dagster's runs and events are in PostgreSQL.
        with team.connect("dagster") as conn:
            runs = conn.execute(sa.text("SELECT run_id FROM runs ORDER BY id")).scalars().all()
            events = conn.execute(sa.text("SELECT COUNT(*) FROM event_logs WHERE run_id = :r"),
                                  {"r": runs[-1]}).scalar_one()
        assert len(runs) == 2 and events > 50

        # The shards ran as separate steps on both worker processes.
        workers = _shard_workers(runs[-1])
        rows = _rows(team)
        candidates = rows["candidate_id"].nunique()
        assert len(workers) == candidates * (QUESTIONS // SHARD_QUESTIONS), workers
        assert len(set(workers.values())) == 2, workers

        # Every question x candidate exactly once.
        assert rows["row_id"].is_unique and len(rows) == QUESTIONS * candidates
        assert rows.groupby("candidate_id")["qa_id"].nunique().eq(QUESTIONS).all()
        assert not list((Path(os.environ["LLMOPS_HOME"]) / "tables").glob("*.parquet"))

        # Our registry and call cache are in PostgreSQL, nothing in SQLite under LLMOPS_HOME.
        with team.connect("llmops") as conn:
            cached = conn.execute(sa.text("SELECT COUNT(*) FROM calls")).scalar_one()
            history = conn.execute(sa.text("SELECT COUNT(*) FROM history")).scalar_one()
        assert cached >= len(rows) and history >= 1
        assert not list(Path(os.environ["LLMOPS_HOME"]).glob("*.sqlite"))

        # 3. With the endpoint's pool at 1 (as the README says to set it), another run of the
        # whole lifecycle runs its shards one at a time across both workers and calls no model
        # (what it may still ask: the model list and whether fine-tuning exists, free probes).
        pool = subprocess.run([DAGSTER, "instance", "concurrency", "set", "llm_endpoint_openai",
                               "1"], env=dict(os.environ), capture_output=True, text=True)
        assert pool.returncode == 0, pool.stderr[-2000:]
        before = Counter(server.counts)
        again = team.materialize()
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        asked_again = Counter(server.counts) - before
        assert set(asked_again) <= {"models", "ft_list"}, asked_again
        spans = _shard_spans(_last_run(team))
        assert len(spans) == len(workers)
        assert all(start >= end for (_, end), (start, _) in zip(spans, spans[1:], strict=False)), \
            spans

        # The database password never reaches Dagster's event log, the tables or the output.
        with team.connect("dagster") as conn:
            logged = conn.execute(sa.text("SELECT COUNT(*) FROM event_logs WHERE event LIKE :p"),
                                  {"p": f"%{PASSWORD_SENTINEL}%"}).scalar_one()
        assert logged == 0
        assert PASSWORD_SENTINEL not in output + done.stdout + done.stderr + again.stdout
        for path in [*team.tables.rglob("*"), *Path(os.environ["LLMOPS_HOME"]).rglob("*")]:
            if path.is_file():
                assert PASSWORD_SENTINEL.encode() not in path.read_bytes(), path
