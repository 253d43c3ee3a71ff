"""Pure fine-tune logic: the training file, its validation, and a remote job with a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.rag_app import render
from llmops_pipelines.vectorstore import Retrieved

ROLES = {"system", "user", "assistant"}
MIN_EXAMPLES = 10
TERMINAL = {"succeeded", "failed", "cancelled"}


def training_examples(prompt: Prompt, questions: Sequence[str], answers: Sequence[str],
                      contexts: Sequence[list[Retrieved]]) -> list[dict[str, Any]]:
    """Chat examples rendered with the same prompt that evaluation and serving use."""
    return [{"messages": [*render(prompt, q, ctx), {"role": "assistant", "content": a}]}
            for q, a, ctx in zip(questions, answers, contexts, strict=True) if a]


def write_jsonl(examples: list[dict[str, Any]], path: Path) -> str:
    """Write the file and return its content hash (the training data's version)."""
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return content_hash(text)


def validate_training_file(path: Path, *, min_examples: int = MIN_EXAMPLES,
                           count_tokens: Callable[[str], int] | None = None,
                           max_tokens: int | None = None) -> list[str]:
    """Every problem in the file, each naming its line; an empty list means it is valid."""
    problems: list[str] = []
    good = 0
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            messages = json.loads(raw)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            problems.append(f"{where}: not a JSON object with a 'messages' list")
            continue
        if not isinstance(messages, list) or not messages:
            problems.append(f"{where}: 'messages' must be a non-empty list")
            continue
        bad = [m for m in messages if not isinstance(m, dict) or m.get("role") not in ROLES]
        if bad:
            problems.append(f"{where}: role must be one of {sorted(ROLES)}, found {bad[0]!r:.60}")
            continue
        if messages[-1]["role"] != "assistant":
            problems.append(f"{where}: the last message must be from the assistant")
            continue
        if any(not str(m.get("content") or "").strip() for m in messages):
            problems.append(f"{where}: a message has empty content")
            continue
        if count_tokens and max_tokens:
            tokens = sum(count_tokens(m["content"]) for m in messages)
            if tokens > max_tokens:
                problems.append(f"{where}: {tokens} tokens exceed the context limit {max_tokens}")
                continue
        good += 1
    if good < min_examples:
        problems.append(f"{path}: {good} valid examples, at least {min_examples} are needed")
    return problems


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    model_id: str
    trained_tokens: int | None
    reused: bool


class RemoteFineTune:
    """OpenAI / Azure fine-tuning: upload, create, poll with a deadline, re-attach after restarts."""

    def __init__(self, client: Any, state_dir: Path, *, log: Callable[[str], None] = print,
                 poll_s: float = 5.0, max_poll_s: float = 60.0, deadline_s: float = 6 * 3600,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.log, self.sleep = client, log, sleep
        self.state_path = Path(state_dir) / "jobs.json"
        self.poll_s, self.max_poll_s, self.deadline_s = poll_s, max_poll_s, deadline_s

    def _state(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def _save(self, key: str, entry: dict[str, Any]) -> None:
        state = self._state()
        state[key] = entry
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def run(self, training_file: Path, *, base_model: str, hyperparameters: dict[str, Any],
            suffix: str, key: str) -> JobOutcome:
        """The fine-tuned model for this content key: reused, re-attached, or trained anew."""
        entry = self._state().get(key, {})
        if entry.get("model_id"):
            self.log(f"reusing fine-tuned model {entry['model_id']} (same data and settings)")
            return JobOutcome(entry["job_id"], entry["model_id"], entry.get("trained_tokens"), True)
        if entry.get("job_id") and entry.get("status") not in TERMINAL:
            self.log(f"re-attaching to running job {entry['job_id']}")
            job_id = entry["job_id"]
        else:
            with open(training_file, "rb") as handle:
                uploaded = self.client.files.create(file=handle, purpose="fine-tune")
            job = self.client.fine_tuning.jobs.create(
                model=base_model, training_file=uploaded.id, suffix=suffix,
                hyperparameters=hyperparameters)
            job_id = job.id
            self._save(key, {"job_id": job_id, "file_id": uploaded.id, "status": job.status})
            self.log(f"created fine-tune job {job_id} on {base_model}")
        return self._poll(job_id, key)

    def _poll(self, job_id: str, key: str) -> JobOutcome:
        started, interval, seen = time.monotonic(), self.poll_s, set()
        while True:
            job = self.client.fine_tuning.jobs.retrieve(job_id)
            events = self.client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=50)
            for event in reversed(list(events.data)):
                if event.id not in seen:
                    seen.add(event.id)
                    self.log(f"[{job_id}] {event.message}")
            self._save(key, {**self._state().get(key, {}), "job_id": job_id, "status": job.status})
            if job.status == "succeeded":
                if not job.fine_tuned_model:
                    raise FineTuneError(f"job {job_id} succeeded without a model id")
                self._save(key, {"job_id": job_id, "status": job.status,
                                 "model_id": job.fine_tuned_model,
                                 "trained_tokens": job.trained_tokens})
                return JobOutcome(job_id, job.fine_tuned_model, job.trained_tokens, False)
            if job.status in ("failed", "cancelled"):
                message = job.error.message if job.error else "no error message"
                raise FineTuneError(f"fine-tune job {job_id} {job.status}: {message}")
            if time.monotonic() - started > self.deadline_s:
                raise FineTuneError(f"fine-tune job {job_id} still {job.status} after "
                                    f"{self.deadline_s:.0f}s; re-run to re-attach to it")
            self.sleep(interval)
            interval = min(interval * 1.5, self.max_poll_s)
