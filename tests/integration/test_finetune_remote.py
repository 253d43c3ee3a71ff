"""The remote fine-tune flow in real Dagster, through the official openai client, against the
local test server's fine-tuning endpoints: success, reuse, re-attach, failure, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.finetune.remote import RemoteFineTune
from llmops_pipelines.finetune.tokens import chat_token_counter
from llmops_pipelines.finetune.training_file import training_spec
from tests.support.finetune_files import (
    chat_line,
    failure,
    materialize_model,
    model_output,
    stage_training_file,
)
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
BASE = "gpt-4o-mini-2024-07-18"


def jobs_state(home: Path) -> dict:
    return json.loads((home / "finetune" / "remote" / "jobs.json").read_text())


def test_success_uploads_creates_polls_and_streams_events(openai_env: FakeOpenAIServer,
                                                          isolated_home: Path) -> None:
    server = openai_env
    path = stage_training_file(isolated_home, [chat_line(n) for n in range(12)])

    result, logs = materialize_model()

    assert result.success, failure(result)
    # files.create with purpose fine-tune, then jobs.create with hyperparameters and suffix.
    calls = [key for key, _ in server.requests if key in ("files", "ft_create")]
    assert calls == ["files", "ft_create"]
    upload = next(body for key, body in server.requests if key == "files")
    assert upload["purpose"] == "fine-tune"
    assert server.files[next(iter(server.files))] == path.read_bytes()
    create = next(body for key, body in server.requests if key == "ft_create")
    assert create["model"] == BASE and create["suffix"] == "llmops"
    assert create["hyperparameters"] == {"n_epochs": 2}
    assert server.counts["ft_retrieve"] == server.finetune_steps + 1

    value = model_output(isolated_home)
    assert value["model_id"] == f"ft:{BASE}:fake:llmops:000001"
    assert value["backend"] == "openai" and value["job_id"] == "ftjob-000001"
    assert value["reused"] is False and value["base_model"] == BASE

    # The cost estimate (tokens x epochs x training price) is logged before anything is spent.
    spec = training_spec(REPO / "assets" / "pricing.yaml", BASE)
    count = chat_token_counter("openai", BASE)
    tokens = sum(count(json.loads(line)["messages"]) for line in path.read_text().splitlines())
    assert value["training_tokens"] == tokens
    assert value["estimated_cost_usd"] == pytest.approx(tokens * 2 * spec.usd_per_m_tokens / 1e6)
    estimate = next(i for i, m in enumerate(logs) if m.startswith("estimated fine-tune cost"))
    created = next(i for i, m in enumerate(logs) if m.startswith("created fine-tune job"))
    assert estimate < created and f"{tokens} tokens x 2 epochs" in logs[estimate]
    # The job's events reach the Dagster log, in order, once each.
    events = [m for m in logs if m.startswith("[ftjob-000001]")]
    assert events == ["[ftjob-000001] info: Validating training file: "
                      f"{create['training_file']}",
                      "[ftjob-000001] info: Fine-tuning job started",
                      "[ftjob-000001] info: The job has successfully completed"]
    metadata = result.asset_materializations_for_node("finetuned_model")[0].metadata
    assert metadata["model_id"].value == value["model_id"]
    assert metadata["estimated_cost_usd"].value == value["estimated_cost_usd"]


def test_unchanged_data_model_and_hyperparameters_reuse_the_model(
        openai_env: FakeOpenAIServer, isolated_home: Path, monkeypatch) -> None:
    server = openai_env
    stage_training_file(isolated_home, [chat_line(n) for n in range(12)])
    assert materialize_model()[0].success
    first = model_output(isolated_home)
    server.reset()

    result, logs = materialize_model()

    assert result.success
    assert server.counts["files"] == 0 and server.counts["ft_create"] == 0
    again = model_output(isolated_home)
    assert again["model_id"] == first["model_id"] and again["reused"] is True
    assert any(m.startswith("reusing fine-tuned model") for m in logs)

    # Any one of the three changing is a new job: here the hyperparameters.
    monkeypatch.setenv("LLMOPS_FINETUNE_EPOCHS", "3")
    assert materialize_model()[0].success
    assert server.counts["ft_create"] == 1
    assert model_output(isolated_home)["model_id"] != first["model_id"]


def test_a_rematerialization_while_the_job_runs_reattaches(
        openai_env: FakeOpenAIServer, isolated_home: Path, monkeypatch) -> None:
    server = openai_env
    server.finetune_steps = 3
    stage_training_file(isolated_home, [chat_line(n) for n in range(12)])
    # The first run gives up while the job is still running (as a killed or timed-out run would).
    monkeypatch.setenv("LLMOPS_FINETUNE_DEADLINE_S", "0.000001")
    result, _ = materialize_model()
    assert not result.success
    assert "ftjob-000001 still running" in failure(result)
    assert "re-run to re-attach" in failure(result)
    assert server.counts["ft_create"] == 1 and model_output(isolated_home) is None
    state = jobs_state(isolated_home)
    assert [entry["job_id"] for entry in state.values()] == ["ftjob-000001"]
    assert next(iter(state.values()))["status"] == "running"
    server.reset()
    monkeypatch.delenv("LLMOPS_FINETUNE_DEADLINE_S")

    result, logs = materialize_model()

    assert result.success, failure(result)
    assert server.counts["ft_create"] == 0 and server.counts["files"] == 0
    assert any(m.startswith("re-attaching to job ftjob-000001") for m in logs)
    assert model_output(isolated_home)["job_id"] == "ftjob-000001"
    assert len(server.jobs) == 1


@pytest.mark.parametrize(("outcome", "message"), [
    ("failed", "fake failure: training loss diverged"),
    ("cancelled", "Fine-tuning job cancelled")])
def test_a_failed_or_cancelled_job_is_an_error_and_never_a_model(
        openai_env: FakeOpenAIServer, isolated_home: Path, outcome: str, message: str) -> None:
    server = openai_env
    server.finetune_outcome = outcome
    stage_training_file(isolated_home, [chat_line(n) for n in range(12)])

    result, _ = materialize_model()

    assert not result.success
    assert f"fine-tune job ftjob-000001 {outcome}: {message}; no model was produced" \
        in failure(result)
    assert model_output(isolated_home) is None
    assert not any(e.get("model_id") for e in jobs_state(isolated_home).values())
    assert not result.asset_materializations_for_node("finetuned_model")

    # A finished failure is not re-attached to: the next run starts a new job.
    server.finetune_outcome = "succeeded"
    server.reset()
    result, _ = materialize_model()
    assert result.success and server.counts["ft_create"] == 1
    assert model_output(isolated_home)["job_id"] == "ftjob-000002"


def test_invalid_training_lines_are_rejected_before_upload(openai_env: FakeOpenAIServer,
                                                           isolated_home: Path) -> None:
    server = openai_env
    lines = [chat_line(n) for n in range(12)]
    lines[2] = chat_line(2, answer=" ")
    lines[6] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    path = stage_training_file(isolated_home, lines)

    result, _ = materialize_model()

    assert not result.success
    message = failure(result)
    assert f"{path}:3: message 3 (assistant): content is empty" in message
    assert f"{path}:7: the last message must be from the assistant" in message
    assert server.counts["files"] == 0 and server.counts["ft_create"] == 0
    assert model_output(isolated_home) is None


def test_a_cost_over_the_cap_is_refused_before_upload(openai_env: FakeOpenAIServer,
                                                      isolated_home: Path, monkeypatch) -> None:
    server = openai_env
    stage_training_file(isolated_home, [chat_line(n) for n in range(12)])
    monkeypatch.setenv("LLMOPS_FINETUNE_MAX_COST_USD", "0.0001")

    result, logs = materialize_model()

    assert not result.success
    assert "exceeds LLMOPS_FINETUNE_MAX_COST_USD=$0.0001; nothing was uploaded" in failure(result)
    assert any(m.startswith("estimated fine-tune cost") for m in logs)
    assert server.counts["files"] == 0 and server.counts["ft_create"] == 0


def client_for(server: FakeOpenAIServer):
    import openai

    return openai.OpenAI(base_url=server.base_url, api_key="test-key-not-secret", max_retries=0)


def test_polling_backs_off_up_to_a_ceiling(openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    openai_server.finetune_steps = 5
    path = stage_training_file(tmp_path, [chat_line(n) for n in range(12)])
    waits: list[float] = []
    job = RemoteFineTune(client_for(openai_server), tmp_path / "state", log=lambda _: None,
                         poll_s=0.5, max_poll_s=3.0, sleep=waits.append)

    outcome = job.run(path, base_model=BASE, hyperparameters={"n_epochs": 1}, suffix="s", key="k")

    assert outcome.model_id == f"ft:{BASE}:fake:s:000001" and not outcome.reused
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_burst_of_events_between_two_polls_is_logged_whole_and_in_order(
        openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    openai_server.finetune_steps = 3
    path = stage_training_file(tmp_path, [chat_line(n) for n in range(12)])
    lines: list[str] = []

    def burst(_: float) -> None:  # while "asleep", the job writes 3 pages' worth of events
        if not any("step 120" in line for line in lines):
            with openai_server._lock:
                for step in range(1, 121):
                    openai_server._event("ftjob-000001", f"step {step}")

    job = RemoteFineTune(client_for(openai_server), tmp_path / "state", log=lines.append,
                         poll_s=0.01, sleep=burst)
    job.run(path, base_model=BASE, hyperparameters={"n_epochs": 1}, suffix="s", key="k")

    steps = [line.split("step ")[1] for line in lines if "] info: step " in line]
    assert steps == [str(n) for n in range(1, 121)]  # each once, oldest first


def test_the_deadline_bounds_the_wait(openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    openai_server.finetune_steps = 100
    path = stage_training_file(tmp_path, [chat_line(n) for n in range(12)])
    clock = iter(range(0, 10_000, 7))
    job = RemoteFineTune(client_for(openai_server), tmp_path / "state", log=lambda _: None,
                         poll_s=1.0, max_poll_s=60.0, deadline_s=20.0, sleep=lambda _: None,
                         clock=lambda: float(next(clock)))

    with pytest.raises(FineTuneError, match=r"still running after \d+s \(deadline 20s\)"):
        job.run(path, base_model=BASE, hyperparameters={"n_epochs": 1}, suffix="s", key="k")
    assert openai_server.counts["ft_retrieve"] == 3  # at 7, 14, 21 s of the fake clock


def test_the_job_runner_itself_refuses_a_bad_file(openai_server: FakeOpenAIServer,
                                                  tmp_path: Path) -> None:
    path = stage_training_file(tmp_path, [chat_line(n) for n in range(12)] + ["not json"])
    job = RemoteFineTune(client_for(openai_server), tmp_path / "state", log=lambda _: None)

    with pytest.raises(FineTuneError, match=r"train\.jsonl:13: not valid JSON"):
        job.run(path, base_model=BASE, hyperparameters={"n_epochs": 1}, suffix="s", key="k")
    assert openai_server.counts["files"] == 0 and openai_server.counts["ft_create"] == 0
